"""A failed proxy fetch lets go of its path before its client hears of the failure, on SQLite and
PostgreSQL: the request that client sends next asks the upstream again instead of joining the
failed fetch or following its lease to the same failure (the engine, in process, no HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from artifactory.repository.model import Streaming
from artifactory.security.principal import Principal
from tests.artifactory.repository.upstream import running

ADMIN = Principal("admin", frozenset({"admin"}))
# Longer than a client takes to send its next request after the failure.
SLOW_RELEASE_SECONDS = 0.3


async def drained(content: object) -> bytes:
    assert isinstance(content, Streaming)
    return b"".join([chunk async for chunk in content.chunks])


@pytest.mark.parametrize("stream", [True, False])
def test_the_next_request_after_a_digest_mismatch_asks_the_upstream_again(state, monkeypatch, stream):  # noqa: F811
    real, fake = b"the real bytes", b"the fake bytes"  # the same length
    path = f"app/blobs/sha256:{hashlib.sha256(real).hexdigest()}"
    engine = state.engine
    # The release of the lease takes its time (a busy database): a client must not hear of the
    # failure before it is done.
    release = engine.proxy._finish_alone

    async def slow_release(*args):
        await asyncio.sleep(SLOW_RELEASE_SECONDS)
        await release(*args)

    monkeypatch.setattr(engine.proxy, "_finish_alone", slow_release)
    with running() as upstream:
        upstream.put(f"v2/{path}", fake)
        name = f"oci{os.urandom(4).hex()}"
        engine.repos.create({"name": name, "format": "oci", "type": "proxy", "url": upstream.url})
        repo = engine.repository(name)

        async def scenario() -> None:
            try:
                for _attempt in range(3):
                    with pytest.raises(Exception):  # noqa: B017 - refused however it surfaces
                        content = await engine.get(repo, path, ADMIN, stream=stream)
                        if stream:
                            await drained(content)
                    assert engine.lookup(repo, path) is None
                upstream.put(f"v2/{path}", real)
                content = await engine.get(repo, path, ADMIN, stream=stream)
                assert (await drained(content) if stream else content.sha256) == (
                    real if stream else hashlib.sha256(real).hexdigest()
                )
            finally:
                await engine.close()

        asyncio.run(scenario())
        assert upstream.count(f"v2/{path}") == 4
