"""Every way a proxy fetch can end lets go of its lease, on SQLite (the node's lease file: no
descriptor left held, no byte left locked) and PostgreSQL (no row left): a file stored, whole or
streamed, a 404, a 500, a connection closed or cut short, bytes that fail their digest, a client
that goes away mid-stream. A lease left held would make every later miss of the path, in every
process, wait for a fetch that never ends (in-process, the engine, no HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from artifactory.repository import proxy as proxy_module
from artifactory.repository.model import Streaming
from artifactory.security.principal import Principal
from tests.artifactory.repository.leases import leases_left
from tests.artifactory.repository.upstream import running

ADMIN = Principal("admin", frozenset({"admin"}))
DATA = os.urandom(300 * 1024)


@pytest.mark.parametrize("stream", [False, True])
def test_no_fetch_leaves_its_lease_held(state, stream):
    good_sha = hashlib.sha256(DATA).hexdigest()
    cases = {
        "stored.bin": None,
        "missing.bin": "404",
        "broken.bin": "500",
        "closed.bin": "close",
        "short.bin": "truncate",
        f"blobs/sha256:{good_sha}": None,  # raw states no digest: any path is just a file
    }
    with running() as upstream:
        for path, failure in cases.items():
            if failure != "404":
                upstream.put(path, DATA)
            if failure not in (None, "404"):
                upstream.fail[path] = failure
        name = f"p{os.urandom(4).hex()}"
        state.engine.repos.create(
            {"name": name, "format": "raw", "type": "proxy", "url": upstream.url, "negative_cache_seconds": 0}
        )
        repo = state.engine.repository(name)

        async def one(path: str) -> None:
            try:
                content = await state.engine.get(repo, path, ADMIN, stream=stream)
                if isinstance(content, Streaming):
                    async for _chunk in content.chunks:
                        pass
            except Exception:  # noqa: BLE001, S110 - the failures are the point; only the lease matters
                pass

        async def gone_mid_stream(path: str) -> None:
            content = await state.engine.get(repo, path, ADMIN, stream=True)
            if isinstance(content, Streaming):
                async for _chunk in content.chunks:
                    break  # the client goes away after its first chunk
                await content.chunks.aclose()

        async def scenario() -> None:
            try:
                await asyncio.gather(*(one(path) for path in cases))
                upstream.put("abandoned.bin", DATA)
                upstream.trickle["abandoned.bin"] = 0.01
                await gone_mid_stream("abandoned.bin")
                # The background commits and releases run to their end.
                for _ in range(500):
                    if not state.engine.proxy._tasks and not state.engine.proxy._held:
                        break
                    await asyncio.sleep(0.01)
            finally:
                await state.engine.close()

        asyncio.run(scenario())
        assert leases_left(state, repo, [*cases, "abandoned.bin"]) == []
        assert state.engine.lookup(repo, "stored.bin") is not None
        assert state.engine.lookup(repo, "abandoned.bin") is not None  # finished into the cache


def test_a_digest_mismatch_lets_go_of_the_lease(state):
    real, fake = b"the real bytes", b"the fake bytes"
    path = f"app/blobs/sha256:{hashlib.sha256(real).hexdigest()}"
    with running() as upstream:
        upstream.put(f"v2/{path}", fake)
        name = f"oci{os.urandom(4).hex()}"
        state.engine.repos.create({"name": name, "format": "oci", "type": "proxy", "url": upstream.url})
        repo = state.engine.repository(name)

        async def scenario() -> None:
            try:
                for stream in (False, True):
                    with pytest.raises(Exception):  # noqa: B017 - refused however it surfaces
                        content = await state.engine.get(repo, path, ADMIN, stream=stream)
                        if isinstance(content, Streaming):
                            async for _chunk in content.chunks:
                                pass
            finally:
                await state.engine.close()

        asyncio.run(scenario())
        assert leases_left(state, repo, [path]) == []
        assert state.engine.lookup(repo, path) is None


@pytest.mark.parametrize("stream", [False, True])
def test_a_fetch_slower_than_its_lease_keeps_it_and_lets_go_at_its_end(state, stream, monkeypatch):
    """An upstream may take `timeout_seconds` for its headers and the transfer timeout for its body:
    while it does, the fetch's lease stays held (on PostgreSQL its row is refreshed), so another
    process follows the fetch rather than taking the lease for an abandoned one and asking again."""
    monkeypatch.setattr(proxy_module, "LEASE_SECONDS", 1)
    monkeypatch.setattr(proxy_module, "LEASE_REFRESH_SECONDS", 0.2)
    with running() as upstream:
        upstream.put("slow.bin", DATA)
        upstream.delay["slow.bin"] = 1.5  # before the status line: longer than the lease
        upstream.trickle["slow.bin"] = 0.2  # and a body of five chunks after it
        name = f"p{os.urandom(4).hex()}"
        state.engine.repos.create(
            {"name": name, "format": "raw", "type": "proxy", "url": upstream.url, "timeout_seconds": 10}
        )
        repo = state.engine.repository(name)
        held: list[bool] = []

        async def fetch() -> None:
            content = await state.engine.get(repo, "slow.bin", ADMIN, stream=stream)
            if isinstance(content, Streaming):
                async for _chunk in content.chunks:
                    pass

        async def scenario() -> None:
            try:
                fetching = asyncio.create_task(fetch())
                for _ in range(12):  # 2.4 s: the headers' wait and most of the body's
                    await asyncio.sleep(0.2)
                    held.append(state.engine.proxy._lease_held(repo.id, "slow.bin"))
                await fetching
                for _ in range(500):  # the background commit and release
                    if not state.engine.proxy._tasks and not state.engine.proxy._held:
                        break
                    await asyncio.sleep(0.01)
                assert state.engine.proxy._leases.held == []
            finally:
                await state.engine.close()

        asyncio.run(scenario())
        assert held[:10] == [True] * 10  # 2 s of a fetch of 2.5, against a lease of 1
        assert upstream.hits[("GET", "slow.bin")] == 1
        assert leases_left(state, repo, ["slow.bin"]) == []
        assert state.engine.lookup(repo, "slow.bin") is not None
