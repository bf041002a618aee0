"""A miss whose lease another process holds follows that fetch instead of asking the upstream: it
polls the lease (on PostgreSQL indexed reads on a pooled DBAPI connection, on SQLite the kernel's
lock on the node's lease file, with nothing run through SQLAlchemy's execution) and then answers
what the fetch left: the stored file, a remembered miss (None), or a failure (502). On SQLite and
PostgreSQL, in process (`state`)."""

import asyncio
import os
from datetime import timedelta

import pytest
from sqlalchemy import delete, event

from artifactory.db.models import ProxyLease, ProxyMiss, utcnow
from artifactory.repository.errors import UpstreamUnavailable
from artifactory.repository.hosted import Upload
from artifactory.repository.model import StoredAsset
from artifactory.repository.proxy import SYSTEM

UNREACHABLE = "http://127.0.0.1:9/"  # never asked: the lease is another process's


def _proxy(state):
    name = f"p{os.urandom(4).hex()}"
    state.engine.repos.create({"name": name, "format": "raw", "type": "proxy", "url": UNREACHABLE})
    return state.engine.repository(name)


def _hold_lease(state, repo, path):
    """Another process's fetch of `path`, under way: on SQLite the node's lease taken on a
    descriptor of its own (as another process would hold it), on PostgreSQL its row."""
    if state.db.node_leases is not None:
        fd = state.db.node_leases.acquire(repo.id, path)
        assert fd is not None
        return fd
    with state.db.write() as session:
        session.add(
            ProxyLease(
                repository_id=repo.id,
                path=path,
                owner="elsewhere",
                expires_at=utcnow() + timedelta(seconds=60),
            )
        )


def _release(state, repo, path, held, miss=False):
    """That fetch's finish: what it leaves, then the lease let go (in one transaction on PostgreSQL,
    the node's lease after the commit on SQLite)."""
    with state.db.write() as session:
        if held is None:
            session.execute(
                delete(ProxyLease).where(ProxyLease.repository_id == repo.id, ProxyLease.path == path)
            )
        if miss:
            session.add(
                ProxyMiss(repository_id=repo.id, path=path, expires_at=utcnow() + timedelta(seconds=60))
            )
    if held is not None:
        state.db.node_leases.release(held)


async def _store(state, repo, path, data):
    staged = await state.engine.blobs.ingest_bytes(data)
    await state.engine.hosted.commit(repo, staged, Upload(path=path, bypass_write_policy=True), SYSTEM)


def _statements(state):
    found: list[str] = []
    for engine in {state.db.engine, state.db.lazy_engine, state.db.read_engine}:
        event.listen(engine, "before_cursor_execute", lambda *args: found.append(args[2]))
    return found


@pytest.mark.parametrize("outcome", ["stored", "missed", "failed"])
def test_a_follower_answers_what_the_other_process_s_fetch_left(state, outcome):
    repo, path = _proxy(state), "dir/file.bin"
    held = _hold_lease(state, repo, path)

    async def scenario():
        # Until the follower polls the lease: a fixed pause was sometimes too short for its claim
        # under load, and a follower that claims after the release fetches (and revalidates) itself.
        proxy, following = state.engine.proxy, asyncio.Event()
        follow = proxy._follow

        async def followed(*args, **kwargs):
            following.set()
            return await follow(*args, **kwargs)

        proxy._follow = followed
        try:
            follower = asyncio.create_task(proxy.get(repo, path, stream=False))
            await asyncio.wait_for(following.wait(), 10)
            await asyncio.sleep(0.01)  # polling the lease
        finally:
            del proxy._follow
        assert not follower.done()
        polls = _statements(state)
        if outcome == "stored":
            await _store(state, repo, path, b"fetched elsewhere")
        polls.clear()  # the store's own statements
        _release(state, repo, path, held, miss=outcome == "missed")
        polls.clear()
        found = await asyncio.wait_for(follower, 10)
        assert polls == []  # the polls and the last reads ran no SQLAlchemy execution
        return found

    if outcome == "failed":
        with pytest.raises(UpstreamUnavailable):
            asyncio.run(scenario())
        return
    found = asyncio.run(scenario())
    if outcome == "missed":
        assert found is None
    else:
        assert isinstance(found, StoredAsset) and found.size == len(b"fetched elsewhere")
