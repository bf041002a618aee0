"""Proxies of a strict index (tests/formats/pypi/fake_index.py), on SQLite and PostgreSQL: negotiation
by Accept as pip and uv do it, every per-file fact passed on, upstream digests enforced, and hostile
names and links in an upstream page rendered harmless."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import lxml.html
import pytest
from artifactory_formats.pypi.format import UPSTREAM_ACCEPT

from artifactory.testing.server import LiveServer
from tests.formats.pypi.conftest import fresh_venv, imported, post_upload, uv_install
from tests.formats.pypi.dists import metadata_text, wheel_bytes
from tests.formats.pypi.fake_index import FakeFile, FakeIndex

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def index() -> Iterator[FakeIndex]:
    fake = FakeIndex().start()
    try:
        yield fake
    finally:
        fake.stop()


def wheel(name: str, version: str, **facts: object) -> FakeFile:
    requires_python = facts.pop("requires_python", None)
    content = wheel_bytes(name, version, requires_python=requires_python)  # type: ignore[arg-type]
    return FakeFile(
        filename=f"{name.replace('-', '_')}-{version}-py3-none-any.whl",
        content=content,
        version=version,
        requires_python=requires_python,  # type: ignore[arg-type]
        metadata=metadata_text(name, version, requires_python=requires_python).encode(),  # type: ignore[arg-type]
        **facts,  # type: ignore[arg-type]
    )


def get(server: LiveServer, repo: str, path: str, accept: str | None = None) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return httpx.get(f"{server.repo_url(repo)}{path}", headers=headers, timeout=30)


def proxy_of(server: LiveServer, index: FakeIndex, **config: Any) -> str:
    return server.create_repo("pypi", "proxy", url=index.index_url, **config)


# -- negotiation and the facts passed on (issue 10 item 8) -------------------------------------------
def test_the_proxy_negotiates_by_accept_like_pip_and_uv_and_passes_on_every_per_file_fact(any_server, index):
    files = [
        wheel("facts", "1.0", upload_time="2021-02-03T04:05:06.123456Z", requires_python=">=3.8"),
        wheel("facts", "1.1", upload_time="2022-02-03T04:05:06.000000Z", yanked="broken <build>"),
    ]
    index.projects["facts"] = files
    proxy = proxy_of(any_server, index)

    page = get(any_server, proxy, "simple/facts/", JSON)
    assert page.status_code == 200, page.text
    # Asked as pip and uv ask: Accept and nothing else (a strict index ignores ?format=).
    asked = [r for r in index.page_requests() if r.path.startswith("/simple/facts")]
    assert [(r.path, r.accept) for r in asked] == [("/simple/facts/", UPSTREAM_ACCEPT)]
    by_name = {f["filename"]: f for f in page.json()["files"]}
    assert sorted(by_name) == [f.filename for f in files]
    for f in files:
        mine = by_name[f.filename]
        assert mine["hashes"] == f.hashes()  # sha256 and sha512, as the upstream published them
        assert mine["size"] == len(f.content)
        assert mine["upload-time"] == f.upload_time
        metadata_digest = {"sha256": hashlib.sha256(f.metadata or b"").hexdigest()}
        assert mine["core-metadata"] == metadata_digest
        assert mine["dist-info-metadata"] == metadata_digest
        assert mine["url"] == f"{any_server.repo_url(proxy)}packages/facts/{f.filename}"
    assert by_name[files[0].filename]["requires-python"] == ">=3.8"
    assert by_name[files[0].filename]["yanked"] is False
    assert by_name[files[1].filename]["yanked"] == "broken <build>"
    assert page.json()["versions"] == ["1.0", "1.1"]

    html = get(any_server, proxy, "simple/facts/")
    anchors = {a.text: a for a in lxml.html.fromstring(html.content).iter("a")}
    for f in files:
        anchor = anchors[f.filename]
        assert anchor.get("href").endswith(f"#sha256={f.hashes()['sha256']}")
        expected = f"sha256={hashlib.sha256(f.metadata or b'').hexdigest()}"
        assert anchor.get("data-core-metadata") == expected
        assert anchor.get("data-dist-info-metadata") == expected
    assert anchors[files[0].filename].get("data-requires-python") == ">=3.8"
    assert anchors[files[1].filename].get("data-yanked") == "broken <build>"
    assert anchors[files[0].filename].get("data-yanked") is None

    root = get(any_server, proxy, "simple/", JSON)
    assert root.json()["projects"] == [{"name": "facts"}]
    assert [(r.path, r.accept) for r in index.page_requests() if r.path == "/simple/"] == [
        ("/simple/", UPSTREAM_ACCEPT)
    ]


def test_an_html_only_upstream_keeps_what_html_carries_and_its_legacy_metadata_attribute(any_server, index):
    index.html_only = True
    f = wheel("plain", "1.0", requires_python=">=3.9", yanked="")
    index.projects["plain"] = [f]
    proxy = proxy_of(any_server, index)
    entry = get(any_server, proxy, "simple/plain/", JSON).json()["files"][0]
    assert entry["hashes"] == {"sha256": f.hashes()["sha256"]}
    assert entry["requires-python"] == ">=3.9"
    assert entry["yanked"] is True
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(f.metadata or b"").hexdigest()}
    assert "size" not in entry and "upload-time" not in entry  # HTML carries neither: none invented


def test_uv_exclude_newer_resolves_through_a_group_with_the_upstreams_upload_times(
    server, index, tmp_path, env
):
    index.projects["timely"] = [
        wheel("timely", "1.0", upload_time="2021-01-01T00:00:00Z"),
        wheel("timely", "2.0", upload_time="2023-06-01T00:00:00Z"),
    ]
    hosted = server.create_repo("pypi")
    assert (
        post_upload(server, hosted, "other-1.0-py3-none-any.whl", wheel_bytes("other", "1.0")).status_code
        == 200
    )
    group = server.create_repo("pypi", "group", members=[hosted, proxy_of(server, index)])
    python = fresh_venv(tmp_path / "venv")
    result = uv_install(
        python, f"{server.repo_url(group)}simple/", env, "--exclude-newer", "2022-01-01T00:00:00Z", "timely"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert imported(python, "timely") == "timely 1.0"


# -- upstream digests are enforced (issue 10 item 5) -------------------------------------------------
def failed(url: str) -> bool:
    """Whether a GET ended in an error: an error status, or a stream broken off after its headers."""
    try:
        response = httpx.get(url, timeout=30)
    except httpx.TransportError:
        return True
    return response.status_code >= 400


@pytest.mark.parametrize("through", ["proxy", "group"])
def test_a_proxied_file_that_does_not_match_its_page_fails_every_time_and_is_never_cached(
    any_server, index, through
):
    tampered = wheel("tampered", "1.0")
    tampered.served = wheel_bytes("tampered", "1.0", requires=["evil"])
    metadata_lie = wheel("metalie", "1.0")
    metadata_lie.metadata_served = (
        b"Metadata-Version: 2.1\nName: metalie\nVersion: 1.0\nRequires-Dist: evil\n"
    )
    index.projects.update(tampered=[tampered], metalie=[metadata_lie])
    proxy = proxy_of(any_server, index, block_after_failures=0)
    repo = proxy if through == "proxy" else any_server.create_repo("pypi", "group", members=[proxy])
    for project, f in (("tampered", tampered), ("metalie", metadata_lie)):
        assert get(any_server, repo, f"simple/{project}/").status_code == 200
    file_url = f"{any_server.repo_url(repo)}packages/tampered/{tampered.filename}"
    metadata_url = f"{any_server.repo_url(repo)}packages/metalie/{metadata_lie.filename}.metadata"

    assert [failed(file_url) for _ in range(3)] == [True, True, True]
    assert index.fetched(tampered.filename) == 3  # nothing was cached: each request asked again
    assert [failed(metadata_url) for _ in range(2)] == [True, True]
    assert index.fetched(metadata_lie.filename + ".metadata") == 2

    # Once the upstream serves what its page declares, the file is fetched, served and cached.
    tampered.served = None
    assert httpx.get(file_url).content == tampered.content
    assert httpx.get(file_url).content == tampered.content
    assert index.fetched(tampered.filename) == 4


@pytest.mark.parametrize("through", ["proxy", "group"])
def test_a_cold_mismatching_file_is_a_502_in_the_pypi_error_shape_and_a_good_one_is_then_cached(
    any_server, index, through
):
    """No page was read first: the engine fetches the page that declares the file (declared_by) and
    verifies the file against it while it streams."""
    tampered = wheel("coldlie", "1.0")
    tampered.served = b"not the wheel the page declares"
    index.projects["coldlie"] = [tampered]
    proxy = proxy_of(any_server, index, block_after_failures=0)
    repo = proxy if through == "proxy" else any_server.create_repo("pypi", "group", members=[proxy])
    file_url = f"{any_server.repo_url(repo)}packages/coldlie/{tampered.filename}"

    for attempt in (1, 2):
        response = httpx.get(file_url, timeout=30)
        assert response.status_code == 502, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert set(response.json()) == {"error"} and response.json()["error"]
        assert index.fetched(tampered.filename) == attempt  # nothing cached: each request asks again
    assert [r.path for r in index.page_requests()].count("/simple/coldlie/") >= 1

    tampered.served = None
    assert httpx.get(file_url, timeout=30).content == tampered.content
    assert httpx.get(file_url, timeout=30).content == tampered.content
    assert index.fetched(tampered.filename) == 3  # verified, cached, then served from the cache


# -- hostile names and links in upstream pages (issue 9 item 13) -------------------------------------
HOSTILE = '"><script>alert(document.domain)</script>'


@pytest.mark.parametrize("html_only", [False, True], ids=["json-upstream", "html-upstream"])
def test_hostile_upstream_names_and_links_never_become_script_or_foreign_scheme_links(
    any_server, index, html_only
):
    index.html_only = html_only
    good = wheel("hostile", "2.0", yanked=HOSTILE, requires_python=HOSTILE)
    index.projects["hostile"] = [
        FakeFile(
            "hostile-1.0-py3-none-any.whl",
            b"x",
            "1.0",
            href="javascript:alert(document.domain)//hostile-1.0-py3-none-any.whl",
        ),
        FakeFile(
            "hostile-1.1-py3-none-any.whl",
            b"x",
            "1.1",
            href="data:text/html,<script>alert(1)</script>/hostile-1.1-py3-none-any.whl",
        ),
        FakeFile('hostile-1.2-py3-none-any.whl"onclick="alert(1)', b"x", "1.2"),
        good,
    ]
    index.root_names = ["javascript:alert(1)", HOSTILE, "../../etc", "fine-name"]
    proxy = proxy_of(any_server, index)
    group = any_server.create_repo("pypi", "group", members=[proxy])
    for repo in (proxy, group):
        for path in ("simple/hostile/", "simple/"):
            response = get(any_server, repo, path)
            assert response.status_code == 200, response.text
            assert "default-src 'none'" in response.headers["content-security-policy"]
            document = lxml.html.fromstring(response.content)
            assert not list(document.iter("script"))
            hrefs = [a.get("href") for a in document.iter("a")]
            assert hrefs
            for href in hrefs:
                parts = urlsplit(href)
                assert parts.scheme in ("http", "https"), href
                assert parts.netloc == urlsplit(any_server.url).netloc, href
                assert parts.path.startswith(f"/repository/{repo}/"), href
            assert b"javascript:" not in response.content and b"data:" not in response.content
        page = lxml.html.fromstring(get(any_server, repo, "simple/hostile/").content)
        anchors = list(page.iter("a"))
        assert [a.text for a in anchors] == [good.filename]  # the foreign-scheme links are left out
        assert anchors[0].get("data-yanked") == HOSTILE  # kept, as an attribute value
        assert anchors[0].get("data-requires-python") == HOSTILE
        root = lxml.html.fromstring(get(any_server, repo, "simple/").content)
        assert [a.text for a in root.iter("a")] == ["fine-name", "hostile"]
        entries = get(any_server, repo, "simple/hostile/", JSON).json()["files"]
        assert [e["url"] for e in entries] == [f"{any_server.repo_url(repo)}packages/hostile/{good.filename}"]
    assert index.fetched("hostile-1.0-py3-none-any.whl") == 0


def test_a_hostile_host_header_cannot_break_out_of_an_href(any_server):
    repo = any_server.create_repo("pypi")
    assert (
        post_upload(any_server, repo, "held-1.0-py3-none-any.whl", wheel_bytes("held", "1.0")).status_code
        == 200
    )
    for path in ("simple/held/", "simple/"):
        response = httpx.get(
            f"{any_server.repo_url(repo)}{path}", headers={"Host": 'h"><script>alert(1)</script>'}
        )
        if response.status_code == 400:  # the HTTP server refused the header itself: nothing rendered
            continue
        assert response.status_code == 200, response.text
        document = lxml.html.fromstring(response.content)
        assert not list(document.iter("script"))
        for anchor in document.iter("a"):
            assert urlsplit(anchor.get("href")).scheme == "http"
            assert "<" not in anchor.get("href") and '"' not in anchor.get("href")


@pytest.mark.parametrize("through", ["proxy", "group"])
def test_a_cold_file_is_answered_whole_and_a_cold_range_request_from_the_stored_file(
    any_server, index, through
):
    """A small file is answered from memory once checked (before the engine has made it durable);
    a range request (uv reads a wheel's METADATA so) waits for the stored file and gets its range."""
    whole, ranged = wheel("answered", "1.0"), wheel("ranged", "1.0")
    index.projects.update(answered=[whole], ranged=[ranged])
    proxy = proxy_of(any_server, index)
    repo = proxy if through == "proxy" else any_server.create_repo("pypi", "group", members=[proxy])
    base = f"{any_server.repo_url(repo)}packages"

    response = httpx.get(f"{base}/answered/{whole.filename}", timeout=30)
    assert response.status_code == 200 and response.content == whole.content
    assert response.headers["etag"] == f'"{hashlib.sha256(whole.content).hexdigest()}"'
    cached = httpx.get(f"{base}/answered/{whole.filename}", timeout=30)
    assert cached.content == whole.content and cached.headers["etag"] == response.headers["etag"]

    first = httpx.get(f"{base}/ranged/{ranged.filename}", headers={"Range": "bytes=0-9"}, timeout=30)
    assert first.status_code == 206 and first.content == ranged.content[:10]
    assert index.fetched(whole.filename) == 1 and index.fetched(ranged.filename) == 1
