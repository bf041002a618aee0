"""A proxy verifies fetched bytes against the digests a path states by itself (`Format.expected_digests`)
and those the upstream index document that lists it declared (`Parsed.files`), in process, on SQLite
and PostgreSQL."""

import asyncio
import hashlib
import json
import os

import pytest

from artifactory.blobstore.store import DigestMismatch
from artifactory.formats import FileRef, Format, IndexKey, Parsed, UpstreamDocument
from artifactory.http.errors import BadGateway
from artifactory.repository.model import Streaming
from tests.artifactory.engine.test_engine_api import ADMIN
from tests.artifactory.repository.upstream import running


class Pinned(Format):
    """Paths ending in a sha256 must hash to it, as an OCI blob fetched by digest must; and the
    upstream's `index.json` ({path: {algorithm: hex}}) declares what each file under files/ hashes to."""

    id = "pinned-test"

    def expected_digests(self, repo, path):
        name = path.rsplit("/", 1)[-1]
        return {"sha256": name} if len(name) == 64 else {}

    def declared_by(self, path):
        return IndexKey("all") if path.startswith("files/") else None

    def upstream_document(self, key):
        return UpstreamDocument("index.json")

    def parse(self, key, body, url):
        declared = json.loads(body)
        base = url.rsplit("/", 1)[0] + "/"
        return Parsed(declared, {path: FileRef(base + path, digests) for path, digests in declared.items()})


def proxy_of(state, upstream):
    if "pinned-test" not in state.formats:
        state.formats.add(Pinned())
    name = f"p{os.urandom(4).hex()}"
    state.engine.repos.create({"name": name, "format": "pinned-test", "type": "proxy", "url": upstream.url})
    return state.engine.repository(name)


async def drain(content):
    assert isinstance(content, Streaming)
    received = bytearray()
    try:
        async for chunk in content.chunks:
            received += chunk
    except (DigestMismatch, BadGateway) as exc:
        return bytes(received), exc
    return bytes(received), None


async def settled(engine):
    """Wait for the proxy's background commits (a client has its verified bytes before they commit)."""
    while engine.proxy._tasks:
        await asyncio.gather(*engine.proxy._tasks, return_exceptions=True)


def test_bytes_failing_the_digest_their_path_states_are_never_cached_nor_served_whole(state):
    good, bad = os.urandom(300 * 1024), os.urandom(300 * 1024)
    path = "library/app/blobs/" + hashlib.sha256(good).hexdigest()
    with running() as upstream:
        repo = proxy_of(state, upstream)
        upstream.put(path, bad)

        async def scenario():
            engine = state.engine
            try:
                with pytest.raises(BadGateway):  # a whole-body fetch (a group's merge, a HEAD)
                    await engine.get(repo, path, ADMIN, stream=False)
                received, failure = await drain(await engine.get(repo, path, ADMIN, stream=True))
                assert failure is not None and len(received) < len(bad)  # cut short of a whole file
                assert engine.lookup(repo, path) is None
                # The cut fetch releases its lease in the background just after the stream ends; a
                # request before that follows it (and shares its failure) instead of fetching anew.
                for _ in range(100):
                    if not engine.proxy._lease_held(repo.id, path):
                        break
                    await asyncio.sleep(0.05)
                upstream.put(path, good)
                received, failure = await drain(await engine.get(repo, path, ADMIN, stream=True))
                assert failure is None and received == good
                await settled(engine)
                assert engine.lookup(repo, path).sha256 == hashlib.sha256(good).hexdigest()
            finally:
                await engine.close()

        asyncio.run(scenario())
        assert upstream.count(path) == 3


def test_digests_an_upstream_document_declared_are_verified_and_disagreeing_ones_refused(state):
    good = os.urandom(70_000)
    plain, pinned = "files/plain.bin", "files/" + hashlib.sha256(good).hexdigest()
    with running() as upstream:
        repo = proxy_of(state, upstream)
        upstream.put(plain, good + b"tampered")
        upstream.put(pinned, good)
        declared = {
            plain: {"sha512": hashlib.sha512(good).hexdigest(), "blake2b_256": "ignored"},
            pinned: {"sha256": "0" * 64},  # disagrees with what the path itself states
        }
        upstream.put("index.json", json.dumps(declared).encode())

        async def scenario():
            engine = state.engine
            try:
                with pytest.raises(BadGateway):
                    await engine.get(repo, plain, ADMIN, stream=False)
                with pytest.raises(BadGateway, match="two different sha256"):
                    await engine.get(repo, pinned, ADMIN, stream=True)
                upstream.put(plain, good)
                stored = await engine.get(repo, plain, ADMIN, stream=False)
                assert stored.sha512 == hashlib.sha512(good).hexdigest()
            finally:
                await engine.close()

        asyncio.run(scenario())
        assert (upstream.count(plain), upstream.count(pinned)) == (2, 0)
