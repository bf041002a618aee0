"""Byte ranges on proxied files, cold as warm: uv sends HEAD first and reads a wheel's METADATA with
range requests only when the answer says `Accept-Ranges: bytes`; once an index's answer does not, it
streams every wheel of the session whole for its metadata. HTTP tests and uv, on SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from tests.formats.pypi.conftest import fresh_venv, imported, uv_install
from tests.formats.pypi.dists import wheel_bytes
from tests.formats.pypi.fake_index import FakeFile, FakeIndex

NO_RANGES = "Range requests not supported"  # uv's verbose log, once it gave up on ranges


@pytest.fixture
def index() -> Iterator[FakeIndex]:
    fake = FakeIndex(html_only=True)  # as a static index: no PEP 658 metadata, so uv reads the wheel
    content = wheel_bytes("ranged", "1.0", requires=["ranged-dep"])
    fake.projects["ranged"] = [FakeFile("ranged-1.0-py3-none-any.whl", content, "1.0")]
    dep = wheel_bytes("ranged-dep", "1.0", module="ranged_dep")
    fake.projects["ranged-dep"] = [FakeFile("ranged_dep-1.0-py3-none-any.whl", dep, "1.0")]
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def test_a_cold_head_of_a_proxied_wheel_says_accept_ranges_and_a_range_after_it_is_answered_206(
    any_server, index
):
    proxy = any_server.create_repo("pypi", "proxy", url=index.index_url)
    group = any_server.create_repo("pypi", "group", members=[any_server.create_repo("pypi"), proxy])
    base = any_server.repo_url(group)
    assert httpx.get(f"{base}simple/ranged/").status_code == 200
    url = f"{base}packages/ranged/ranged-1.0-py3-none-any.whl"
    content = index.projects["ranged"][0].content

    head = httpx.head(url)  # the first request of the file: a cold miss
    assert head.status_code == 200
    assert head.headers["accept-ranges"] == "bytes"
    assert head.headers["content-length"] == str(len(content))
    assert head.headers["etag"] == f'"{hashlib.sha256(content).hexdigest()}"'

    tail = httpx.get(url, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206
    assert tail.content == content[-100:]
    assert tail.headers["content-range"] == f"bytes {len(content) - 100}-{len(content) - 1}/{len(content)}"
    whole = httpx.get(url)
    assert (whole.status_code, whole.content, whole.headers["accept-ranges"]) == (200, content, "bytes")
    assert index.fetched("ranged-1.0-py3-none-any.whl") == 1


def test_a_cold_get_of_a_proxied_wheel_says_accept_ranges_as_a_warm_one_does(any_server, index):
    proxy = any_server.create_repo("pypi", "proxy", url=index.index_url)
    url = f"{any_server.repo_url(proxy)}packages/ranged-dep/ranged_dep-1.0-py3-none-any.whl"
    assert httpx.get(f"{any_server.repo_url(proxy)}simple/ranged-dep/").status_code == 200
    cold, warm = httpx.get(url), httpx.get(url)
    assert cold.status_code == warm.status_code == 200
    assert cold.content == warm.content == index.projects["ranged-dep"][0].content
    assert cold.headers["accept-ranges"] == warm.headers["accept-ranges"] == "bytes"


def test_uv_reads_cold_proxied_wheels_with_range_requests_through_a_group(any_server, index, tmp_path, env):
    proxy = any_server.create_repo("pypi", "proxy", url=index.index_url)
    group = any_server.create_repo("pypi", "group", members=[any_server.create_repo("pypi"), proxy])
    python = fresh_venv(tmp_path / "venv")
    result = uv_install(python, f"{any_server.repo_url(group)}simple/", env, "--no-cache", "-v", "ranged")
    assert result.returncode == 0, result.stderr
    assert NO_RANGES not in result.stderr, result.stderr
    assert imported(python, "ranged_dep") == "ranged-dep 1.0"
    assert (
        index.fetched("ranged-1.0-py3-none-any.whl") == index.fetched("ranged_dep-1.0-py3-none-any.whl") == 1
    )


def test_a_range_of_a_cold_proxied_wheel_is_answered_206_from_the_checked_bytes(any_server, index):
    proxy = any_server.create_repo("pypi", "proxy", url=index.index_url)
    url = f"{any_server.repo_url(proxy)}packages/ranged-dep/ranged_dep-1.0-py3-none-any.whl"
    assert httpx.get(f"{any_server.repo_url(proxy)}simple/ranged-dep/").status_code == 200
    content = index.projects["ranged-dep"][0].content
    cold = httpx.get(url, headers={"Range": "bytes=-100"})
    assert cold.status_code == 206 and cold.content == content[-100:]
    assert cold.headers["content-range"] == f"bytes {len(content) - 100}-{len(content) - 1}/{len(content)}"
    beyond = httpx.get(url, headers={"Range": f"bytes={len(content) + 10}-"})
    assert beyond.status_code == 416
