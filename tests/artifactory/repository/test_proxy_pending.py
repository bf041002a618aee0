"""A request that joins a fetch under way (a range after a HEAD) is answered as soon as the fetched
bytes are verified, from memory, not once they are flushed to disk; once the fetch has committed
they are read from the blob store again. On SQLite and PostgreSQL, in process (the engine and the
application, no network but the loopback upstream)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import httpx
import pytest

from artifactory.app import Application
from artifactory.blobstore.store import BlobStore
from artifactory.repository.model import StoredAsset, Streaming
from artifactory.security.principal import Principal
from tests.artifactory.repository.upstream import running

ADMIN = Principal("admin", frozenset({"admin"}))
SLOW_FLUSH_SECONDS = 1.0


def proxy_of(state, fmt, url):
    """A new proxy repository of `fmt` for `url`: its name and its snapshot."""
    name = f"p{os.urandom(4).hex()}"
    state.engine.repos.create({"name": name, "format": fmt, "type": "proxy", "url": url})
    return name, state.engine.repository(name)


@pytest.fixture
def slow_flush(monkeypatch):
    """Placing bytes at their content address (a write and its flushes) takes a second: a busy disk."""
    place = BlobStore.place

    def slow_place(self, staged):
        time.sleep(SLOW_FLUSH_SECONDS)
        return place(self, staged)

    monkeypatch.setattr(BlobStore, "place", slow_place)


def test_a_request_joining_a_fetch_is_answered_before_its_bytes_are_flushed(state, slow_flush):
    data = os.urandom(200 * 1024)
    with running() as upstream:
        upstream.put("lib/file.bin", data)
        name, repo = proxy_of(state, "raw", upstream.url)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=Application(state)), base_url="http://t")

        async def scenario() -> tuple[float, bytes, bytes, bool]:
            try:
                first = await state.engine.get(repo, "lib/file.bin", ADMIN, stream=True)
                assert isinstance(first, Streaming)
                received = b"".join([chunk async for chunk in first.chunks])
                started = time.monotonic()
                joined = await state.engine.get(repo, "lib/file.bin", ADMIN, stream=False)
                url = f"/repository/{name}/lib/file.bin"
                ranged = await client.get(url, headers={"Range": "bytes=100-199"})
                waited = time.monotonic() - started
                assert isinstance(joined, StoredAsset) and ranged.status_code == 206
                await state.engine.proxy.landed(repo)  # the commit, after the slow flush
                held = state.engine.proxy.pending(joined.sha256) is not None
                return waited, received, ranged.content, held
            finally:
                await client.aclose()
                await state.engine.close()

        waited, received, ranged, held = asyncio.run(scenario())
        assert received == data and ranged == data[100:200]
        assert waited < SLOW_FLUSH_SECONDS / 2  # not behind the flush
        assert not held  # committed: no longer held in memory
        stored = state.engine.lookup(repo, "lib/file.bin")
        assert stored is not None and stored.size == len(data)
        assert upstream.count("lib/file.bin") == 1


def test_a_checked_file_is_answered_from_memory_before_its_bytes_are_flushed(state, slow_flush):
    """A Maven proxy checks each file against the upstream's .sha1 before anyone gets it: a small one
    is then answered from memory while its commit writes and flushes it, not after (the flush is
    not the client's to wait for). Bytes that fail the check are held nowhere and stored nowhere."""
    data = os.urandom(200 * 1024)
    jar, bad = "org/x/lib/1.0/lib-1.0.jar", "org/x/bad/1.0/bad-1.0.jar"
    with running() as upstream:
        upstream.put(jar, data)
        upstream.put(jar + ".sha1", hashlib.sha1(data).hexdigest().encode())  # noqa: S324 - Maven's
        upstream.put(bad, data)
        upstream.put(bad + ".sha1", b"0" * 40)
        name, repo = proxy_of(state, "maven", upstream.url)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=Application(state)), base_url="http://t")

        async def scenario() -> tuple[float, httpx.Response, httpx.Response, bool]:
            try:
                started = time.monotonic()
                got = await client.get(f"/repository/{name}/{jar}")
                waited = time.monotonic() - started
                refused = await client.get(f"/repository/{name}/{bad}")
                await state.engine.proxy.landed(repo)  # the commit, after the slow flush
                held = state.engine.proxy.pending(hashlib.sha256(data).hexdigest()) is not None
                return waited, got, refused, held
            finally:
                await client.aclose()
                await state.engine.close()

        waited, got, refused, held = asyncio.run(scenario())
        assert got.status_code == 200 and got.content == data
        assert waited < SLOW_FLUSH_SECONDS / 2  # not behind the flush
        assert refused.status_code == 502
        assert not held  # committed: no longer held in memory
        stored = state.engine.lookup(repo, jar)
        assert stored is not None and stored.size == len(data)
        assert state.engine.lookup(repo, bad) is None


def test_a_file_fetched_whole_without_a_check_is_answered_before_its_bytes_are_flushed(state, slow_flush):
    """A raw proxy's file fetched whole (a HEAD, which streams nothing) is answered from memory when
    it is small, its commit placing it afterwards, as a checked file is."""
    data = os.urandom(200 * 1024)
    with running() as upstream:
        upstream.put("lib/whole.bin", data)
        _name, repo = proxy_of(state, "raw", upstream.url)

        async def scenario() -> tuple[float, StoredAsset | None, bool]:
            try:
                started = time.monotonic()
                got = await state.engine.get(repo, "lib/whole.bin", ADMIN, stream=False)
                waited = time.monotonic() - started
                assert isinstance(got, StoredAsset)
                await state.engine.proxy.landed(repo)  # the commit, after the slow flush
                return waited, got, state.engine.proxy.pending(got.sha256) is not None
            finally:
                await state.engine.close()

        waited, got, held = asyncio.run(scenario())
        assert waited < SLOW_FLUSH_SECONDS / 2
        assert not held
        stored = state.engine.lookup(repo, "lib/whole.bin")
        assert stored is not None and stored.sha256 == hashlib.sha256(data).hexdigest()
        assert asyncio.run(state.engine.read_bytes(stored.sha256)) == data
