"""Small files keep their bytes in their blob's database row (`Blob.data`, `inline_blob_bytes`):
stored by one commit with no file written, served whole, by range and to HEAD, shared between
repositories, collected with their row, linked (a registry mount), read by formats, exported and
backed up; larger files stay in the blob store. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from artifactory.settings import Settings
from artifactory.testing.cli import run_cli
from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import LiveServer
from artifactory.testing.stored import blob_file, database_url
from tests.artifactory.repository.upstream import running

LIMIT = Settings().inline_blob_bytes


@pytest.fixture
def admin(any_server: LiveServer) -> Iterator[httpx.Client]:
    with any_server.client() as client:
        yield client


def blob_row(server: LiveServer, sha256: str) -> tuple[int, bytes | None] | None:
    """(size, data) of the blob's row, or None."""
    engine = create_engine(database_url(server))
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT size, data FROM blob WHERE sha256 = :sha"), {"sha": sha256}
            ).first()
    finally:
        engine.dispose()
    return None if row is None else (row[0], None if row[1] is None else bytes(row[1]))


def files_named(server: LiveServer, sha256: str) -> list[Path]:
    """The blob store's file of `sha256`, if it has one."""
    return [path for path in [blob_file(server, sha256)] if path.is_file()]


def cli(server: LiveServer, *args: str) -> dict:
    result = run_cli(*args, "--data-dir", str(server.data_dir), database_url=server.database_url)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def test_a_small_upload_is_kept_in_its_row_and_served_whole_by_range_and_to_head(any_server, admin):
    raw = any_server.create_repo("raw")
    data = os.urandom(LIMIT)  # the largest size kept in a row
    sha256 = hashlib.sha256(data).hexdigest()
    assert admin.put(f"/repository/{raw}/small.bin", content=data).status_code == 201

    assert blob_row(any_server, sha256) == (LIMIT, data)
    assert files_named(any_server, sha256) == []
    got = admin.get(f"/repository/{raw}/small.bin")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-length"] == str(LIMIT)
    ranged = admin.get(f"/repository/{raw}/small.bin", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == data[10:20]
    assert ranged.headers["content-range"] == f"bytes 10-19/{LIMIT}"
    tail = admin.get(f"/repository/{raw}/small.bin", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]
    beyond = admin.get(f"/repository/{raw}/small.bin", headers={"Range": f"bytes={LIMIT}-"})
    assert beyond.status_code == 416
    head = admin.head(f"/repository/{raw}/small.bin")
    assert head.status_code == 200 and head.headers["content-length"] == str(LIMIT)
    etag = got.headers["etag"]
    assert admin.get(f"/repository/{raw}/small.bin", headers={"If-None-Match": etag}).status_code == 304


def test_a_file_one_byte_larger_goes_to_the_blob_store(any_server, admin):
    raw = any_server.create_repo("raw")
    data = os.urandom(LIMIT + 1)
    sha256 = hashlib.sha256(data).hexdigest()
    assert admin.put(f"/repository/{raw}/large.bin", content=data).status_code == 201
    assert blob_row(any_server, sha256) == (LIMIT + 1, None)
    assert len(files_named(any_server, sha256)) == 1
    assert admin.get(f"/repository/{raw}/large.bin").content == data


def test_identical_small_files_share_one_row_and_outlive_one_another(any_server, admin):
    first, second = any_server.create_repo("raw"), any_server.create_repo("raw")
    data = b"the same small bytes in two repositories"
    sha256 = hashlib.sha256(data).hexdigest()
    assert admin.put(f"/repository/{first}/a.txt", content=data).status_code == 201
    assert admin.put(f"/repository/{second}/b.txt", content=data).status_code == 201
    assert blob_row(any_server, sha256) == (len(data), data)
    assert admin.delete(f"/repository/{first}/a.txt").status_code == 204
    cli(any_server, "gc", "--json", "--grace", "0")
    assert admin.get(f"/repository/{second}/b.txt").content == data  # still used: kept
    assert admin.delete(f"/repository/{second}/b.txt").status_code == 204
    report = cli(any_server, "gc", "--json", "--grace", "0")
    assert report["blobs"] >= 1
    assert blob_row(any_server, sha256) is None


def test_a_group_serves_small_files_from_their_rows(any_server, admin):
    """A group's member probe reads the bytes with the asset, as the hosted lookup does (an asset
    read without them is served through BlobResponse's fallback: tests/artifactory/http)."""
    raw = any_server.create_repo("raw")
    group = any_server.create_repo("raw", "group", members=[raw])
    data = b"served through a group"
    assert admin.put(f"/repository/{raw}/dir/g.txt", content=data).status_code == 201
    assert admin.get(f"/repository/{group}/dir/g.txt").content == data
    ranged = admin.get(f"/repository/{group}/dir/g.txt", headers={"Range": "bytes=0-5"})
    assert ranged.status_code == 206 and ranged.content == data[:6]


def test_a_small_file_exports_and_imports(any_server, admin, tmp_path):
    raw = any_server.create_repo("raw")
    data = b"exported from a row"
    sha256 = hashlib.sha256(data).hexdigest()
    assert admin.put(f"/repository/{raw}/e.txt", content=data).status_code == 201
    archive = tmp_path / "raw.tar"
    cli(any_server, "export", raw, str(archive), "--json")
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(sha256))
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == data
    cli(any_server, "import", str(archive), "--as", f"{raw}-copy", "--json")
    assert admin.get(f"/repository/{raw}-copy/e.txt").content == data


@pytest.mark.parametrize("size", [100, LIMIT + 100])
def test_a_pushed_blob_mounts_into_another_repository(any_server, admin, size):
    """A registry's cross-repository mount links the blob, whichever store keeps its bytes."""
    source, target = any_server.create_repo("oci"), any_server.create_repo("oci")
    data = os.urandom(size)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = admin.post(f"/v2/{source}/img/blobs/uploads/?digest={digest}", content=data)
    assert started.status_code == 201, started.text
    mounted = admin.post(f"/v2/{target}/img/blobs/uploads/?mount={digest}&from={source}/img")
    assert mounted.status_code == 201, mounted.text
    assert admin.get(f"/v2/{target}/img/blobs/{digest}").content == data


def test_a_proxied_small_file_is_cached_in_its_row(any_server, admin):
    data = b"fetched through a proxy from a loopback upstream"
    sha256 = hashlib.sha256(data).hexdigest()
    with running() as upstream:
        upstream.put("p/f.txt", data)
        proxy = any_server.create_repo("raw", "proxy", url=upstream.url)
        assert admin.get(f"/repository/{proxy}/p/f.txt").content == data
        assert admin.get(f"/repository/{proxy}/p/f.txt").content == data
        assert upstream.count("p/f.txt") == 1
    assert blob_row(any_server, sha256) == (len(data), data)
    assert files_named(any_server, sha256) == []


@pytest.fixture(params=DATABASES)
def files_first(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """A server that stores small files in the blob store (inline_blob_bytes 0), as one from before
    rows kept bytes did; the test restarts it with the default."""
    with live_server(request, "files-first", env={"ARTIFACTORY_INLINE_BLOB_BYTES": "0"}) as server:
        yield server


def test_bytes_stored_as_a_file_before_gain_a_row_copy_and_both_go_with_gc(files_first):
    server = files_first
    raw = server.create_repo("raw")
    data = b"stored as a file, then uploaded again once rows keep small files"
    sha256 = hashlib.sha256(data).hexdigest()
    with server.client() as admin:
        assert admin.put(f"/repository/{raw}/old.txt", content=data).status_code == 201
    assert blob_row(server, sha256) == (len(data), None) and len(files_named(server, sha256)) == 1

    server.extra_env.pop("ARTIFACTORY_INLINE_BLOB_BYTES")
    server.restart()
    with server.client() as admin:
        assert admin.get(f"/repository/{raw}/old.txt").content == data  # from its file
        assert admin.put(f"/repository/{raw}/new.txt", content=data).status_code == 201
        assert blob_row(server, sha256) == (len(data), data)  # the row took the bytes as well
        for path in ("old.txt", "new.txt"):
            assert admin.get(f"/repository/{raw}/{path}").content == data
            assert admin.delete(f"/repository/{raw}/{path}").status_code == 204
    cli(server, "gc", "--json", "--grace", "0")
    assert blob_row(server, sha256) is None and files_named(server, sha256) == []


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.one_of(st.integers(0, 64), st.integers(LIMIT - 64, LIMIT + 64), st.integers(0, 3 * LIMIT)),
    seed=st.binary(min_size=16, max_size=16),
    span=st.tuples(st.integers(0, 3 * LIMIT), st.integers(0, 3 * LIMIT)),
)
def test_any_size_reads_back_whole_and_by_range_from_the_store_its_size_chooses(
    any_server, admin, size, seed, span
):
    raw = inline_repo(any_server)
    data = (seed * (size // 16 + 1))[:size]
    sha256 = hashlib.sha256(data).hexdigest()
    path = f"sizes/{sha256[:16]}-{size}.bin"
    assert admin.put(f"/repository/{raw}/{path}", content=data).status_code == 201
    row = blob_row(any_server, sha256)
    assert row is not None and row[0] == size
    assert (row[1] is not None) == (size <= LIMIT)  # kept in the row exactly up to the limit
    assert admin.get(f"/repository/{raw}/{path}").content == data
    first, last = sorted(span)
    ranged = admin.get(f"/repository/{raw}/{path}", headers={"Range": f"bytes={first}-{last}"})
    if first < size:
        assert ranged.status_code == 206 and ranged.content == data[first : last + 1]
    else:
        assert ranged.status_code == 416


_INLINE_REPOS: dict[str, str] = {}


def inline_repo(server: LiveServer) -> str:
    """One raw repository per server for the examples (creating one per example costs more)."""
    if server.url not in _INLINE_REPOS:
        _INLINE_REPOS[server.url] = server.create_repo("raw")
    return _INLINE_REPOS[server.url]
