"""The PyPI-like format written out in docs/plugins.md works as printed: hosted, proxy and group
repositories of it serve pip, a proxied file that does not match its page is refused, and the group
guard holds, on SQLite and PostgreSQL. If this fails, the documentation is wrong."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from artifactory.testing.fixtures import DATABASES, live_server
from tests.artifactory.repository.upstream import running
from tests.formats.pypi.dists import wheel_bytes, wheel_name

ROOT = Path(__file__).resolve().parents[2]


def example_sources() -> dict[str, str]:
    """The documented files, by the `# acme_simple/<file>` line that opens each code block."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    found = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        first = block.splitlines()[0]
        if first.startswith("# acme_simple/"):
            found[first[2:].split("/", 1)[1]] = block
    assert set(found) == {"format.py", "plugin.py"}, found.keys()
    return found


@pytest.fixture(scope="module", params=DATABASES)
def live(request, tmp_path_factory):
    package = tmp_path_factory.mktemp("example") / "acme_simple"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, source in example_sources().items():
        (package / name).write_text(source)
    env = {"PYTHONPATH": str(package.parent), "ARTIFACTORY_PLUGINS": "acme_simple.plugin"}
    with live_server(request, "example", env=env) as server:
        yield server


def put(live, repo: str, name: str, data: bytes, filename: str) -> httpx.Response:
    with live.client() as admin:
        return admin.put(
            f"/repository/{repo}/packages/{name}/{filename}",
            content=data,
            headers={"X-Checksum-Sha256": hashlib.sha256(data).hexdigest()},
        )


def test_pip_installs_through_a_group_of_hosted_and_a_proxy_of_the_documented_format(live, tmp_path):
    upstream = live.create_repo("simple")
    hosted = live.create_repo("simple")
    proxy = live.create_repo("simple", "proxy", url=f"{live.url}/repository/{upstream}/simple/")
    group = live.create_repo("simple", "group", members=[hosted, proxy])
    assert (
        put(live, hosted, "inhouse", wheel_bytes("inhouse", "1.0"), wheel_name("inhouse", "1.0")).status_code
        == 201
    )
    assert (
        put(live, upstream, "public", wheel_bytes("public", "2.0"), wheel_name("public", "2.0")).status_code
        == 201
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--dest",
            str(tmp_path),
            "--no-cache-dir",
            "--index-url",
            f"{live.url}/repository/{group}/simple/",
            "inhouse",
            "public",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        wheel_name("inhouse", "1.0"),
        wheel_name("public", "2.0"),
    ]
    page = httpx.get(f"{live.url}/repository/{group}/simple/public/")
    assert page.status_code == 200 and "etag" in page.headers
    again = httpx.get(
        f"{live.url}/repository/{group}/simple/public/", headers={"If-None-Match": page.headers["etag"]}
    )
    assert again.status_code == 304


def test_the_group_guard_keeps_a_hosted_name_from_the_proxy(live):
    upstream = live.create_repo("simple")
    hosted = live.create_repo("simple")
    proxy = live.create_repo("simple", "proxy", url=f"{live.url}/repository/{upstream}/simple/")
    group = live.create_repo("simple", "group", members=[proxy, hosted])
    put(live, hosted, "shared", b"internal", "shared-1.0.tar.gz")
    put(live, upstream, "shared", b"lookalike", "shared-99.0.tar.gz")
    page = httpx.get(f"{live.url}/repository/{group}/simple/shared/")
    assert "shared-1.0.tar.gz" in page.text and "shared-99.0.tar.gz" not in page.text
    lookalike = httpx.get(f"{live.url}/repository/{group}/packages/shared/shared-99.0.tar.gz")
    assert lookalike.status_code == 404


def test_a_proxied_file_that_does_not_match_its_page_is_refused_and_not_cached(live):
    with running() as upstream:
        upstream.put(
            "lib/",
            f'<a href="../files/lib-1.0.tar.gz#sha256={"0" * 64}">lib-1.0.tar.gz</a>'.encode(),
        )
        upstream.put("files/lib-1.0.tar.gz", b"tampered bytes")
        proxy = live.create_repo("simple", "proxy", url=upstream.url)
        page = httpx.get(f"{live.url}/repository/{proxy}/simple/lib/")
        assert page.status_code == 200 and "lib-1.0.tar.gz" in page.text
        for attempt in (1, 2):
            # A streaming client gets its connection cut before the last byte, never a whole wrong file.
            try:
                response = httpx.get(f"{live.url}/repository/{proxy}/packages/lib/lib-1.0.tar.gz")
                assert response.status_code == 502, response.text
            except httpx.RemoteProtocolError:
                pass
            assert upstream.hits[("GET", "files/lib-1.0.tar.gz")] == attempt  # tried again: nothing cached
