"""The engine calls formats build on, run in-process on real databases (SQLite and PostgreSQL)."""

import asyncio
import hashlib
import json
import os
import threading
import time
from datetime import timedelta

import pytest

from artifactory.http.errors import BadRequest, HTTPProblem
from artifactory.repository.hosted import Upload
from artifactory.repository.uploads import UploadOffsetMismatch, UploadUnknown
from artifactory.security.principal import Principal
from artifactory.state import AppState

ADMIN = Principal("admin", frozenset({"admin"}))  # the `state` fixture is in conftest.py


async def chunks(*parts):
    for part in parts:
        yield part


def make_repo(state, **config):
    name = f"r{os.urandom(4).hex()}"
    state.engine.repos.create({"name": name, "format": "raw", "type": "hosted", **config})
    return state.engine.repository(name)


def test_upload_session_survives_across_engine_instances_and_verifies_digest(state):
    repo = make_repo(state)
    data = os.urandom(300_000)

    async def scenario():
        started = await state.engine.uploads.start(repo, attributes={"kind": "layer"})
        await state.engine.uploads.append(repo, started.id, chunks(data[:100_000]))
        # A second process (another engine on the same database and blob store) continues it.
        other = AppState.build(state.settings)
        try:
            status = await other.engine.uploads.status(repo, started.id)
            assert status.offset == 100_000
            with pytest.raises(UploadOffsetMismatch):
                await other.engine.uploads.append(repo, started.id, chunks(b"replayed"), start=0)
            await other.engine.uploads.append(repo, started.id, chunks(data[100_000:]), start=100_000)
            done, staged = await other.engine.uploads.finish(
                repo, started.id, {"sha256": hashlib.sha256(data).hexdigest()}
            )
            assert done.attributes == {"kind": "layer"}
            asset = await other.engine.commit(repo, staged, Upload(path="layers/one"), ADMIN)
        finally:
            other.db.dispose()
        assert asset.sha256 == hashlib.sha256(data).hexdigest()
        with pytest.raises(UploadUnknown):
            await state.engine.uploads.status(repo, started.id)

    asyncio.run(scenario())


def test_an_append_longer_than_gc_leaves_sessions_alone_keeps_its_session(state, monkeypatch):
    """Blob GC drops upload sessions untouched for SESSION_SECONDS; one chunk may take longer (a large
    layer over a slow link): its session stays, and the upload finishes."""
    from artifactory.blobstore import gc
    from artifactory.repository import uploads

    monkeypatch.setattr(gc, "SESSION_SECONDS", 1)
    monkeypatch.setattr(uploads, "TOUCH_SECONDS", 0.25)
    repo = make_repo(state)
    data = os.urandom(300_000)

    async def slowly():
        for start in range(0, len(data), 50_000):
            await asyncio.sleep(0.4)  # 2.4 s in all: past the leftover age twice
            yield data[start : start + 50_000]

    async def scenario():
        started = await state.engine.uploads.start(repo)
        appending = asyncio.create_task(state.engine.uploads.append(repo, started.id, slowly()))
        for _ in range(4):  # GC runs while the chunk arrives
            await asyncio.sleep(0.5)
            await asyncio.to_thread(gc.collect, state.db, state.blobs, 0)
        assert (await appending).offset == len(data)
        done, staged = await state.engine.uploads.finish(
            repo, started.id, {"sha256": hashlib.sha256(data).hexdigest()}
        )
        asset = await state.engine.commit(repo, staged, Upload(path="layers/slow"), ADMIN)
        assert done.offset == len(data) and asset.sha256 == hashlib.sha256(data).hexdigest()

    asyncio.run(scenario())


def test_gc_keeps_a_paused_upload_session_for_a_day_then_drops_it_and_its_bytes(state):
    """A client may pause between chunks: its session and bytes outlive the hour GC gives other
    leftovers, and go once the session has been untouched for SESSION_SECONDS."""
    from sqlalchemy import update

    from artifactory.blobstore import gc
    from artifactory.db.models import UploadSession, utcnow

    repo = make_repo(state)

    def age(session_id, seconds):
        with state.db.write() as session:
            session.execute(
                update(UploadSession)
                .where(UploadSession.id == session_id)
                .values(updated_at=utcnow() - timedelta(seconds=seconds))
            )
        for name, _mtime in state.blobs.driver.list_temps():
            os.utime(state.blobs.driver.tmp / name, (time.time() - seconds,) * 2)

    async def scenario():
        started = await state.engine.uploads.start(repo)
        await state.engine.uploads.append(repo, started.id, chunks(b"first chunk"))
        age(started.id, 2 * 3600)  # paused two hours
        gc.collect(state.db, state.blobs, 0)
        await state.engine.uploads.append(repo, started.id, chunks(b", second"), start=11)
        done, _staged = await state.engine.uploads.finish(repo, started.id)
        assert done.offset == 19

        paused = await state.engine.uploads.start(repo)
        await state.engine.uploads.append(repo, paused.id, chunks(b"never finished"))
        age(paused.id, gc.SESSION_SECONDS + 60)
        gc.collect(state.db, state.blobs, 0)  # the session goes, then its bytes on the next run
        gc.collect(state.db, state.blobs, 0)
        with pytest.raises(UploadUnknown):
            await state.engine.uploads.status(repo, paused.id)
        assert list(state.blobs.driver.list_temps()) == []

    asyncio.run(scenario())


def test_upload_session_with_wrong_digest_is_refused_and_forgotten(state):
    repo = make_repo(state)

    async def scenario():
        started = await state.engine.uploads.start(repo)
        await state.engine.uploads.append(repo, started.id, chunks(b"abc"))
        with pytest.raises(BadRequest):
            await state.engine.uploads.finish(repo, started.id, {"sha256": "0" * 64})
        with pytest.raises(UploadUnknown):
            await state.engine.uploads.finish(repo, started.id)
        assert list(state.blobs.driver.list_temps()) == []

    asyncio.run(scenario())


def test_cancelled_upload_session_leaves_no_temporary_object(state):
    repo = make_repo(state)

    async def scenario():
        started = await state.engine.uploads.start(repo)
        await state.engine.uploads.append(repo, started.id, chunks(b"abc"))
        await state.engine.uploads.cancel(repo, started.id)
        assert list(state.blobs.driver.list_temps()) == []

    asyncio.run(scenario())


def test_update_document_applies_concurrent_transforms_one_after_the_other(state):
    repo = make_repo(state)

    def increment(old):
        value = json.loads(old)["n"] if old else 0
        return json.dumps({"n": value + 1}).encode()

    def worker():
        async def run():
            for _ in range(5):
                await state.engine.update_document(repo, "counter.json", increment, ADMIN)

        asyncio.run(run())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    asset = state.engine.lookup(repo, "counter.json")
    assert json.loads(state.blobs.read_all_sync(asset.sha256, 1000)) == {"n": 20}

    async def remove():
        return await state.engine.update_document(repo, "counter.json", lambda old: None, ADMIN)

    assert asyncio.run(remove()) is None
    assert state.engine.lookup(repo, "counter.json") is None


def test_commit_respects_allow_once(state):
    repo = make_repo(state, write_policy="allow_once")

    async def scenario():
        await state.engine.put_bytes(repo, b"1", Upload(path="f"), ADMIN)
        staged = await state.engine.stage(repo, chunks(b"2"), Upload(path="f"))
        with pytest.raises(HTTPProblem):
            await state.engine.commit(repo, staged, Upload(path="f"), ADMIN)
        assert list(state.blobs.driver.list_temps()) == []

    asyncio.run(scenario())


def test_link_makes_a_stored_blob_another_asset_without_copying(state):
    source, target = make_repo(state), make_repo(state)
    data = os.urandom(50_000)
    digest = hashlib.sha256(data).hexdigest()

    async def scenario():
        await state.engine.put_bytes(source, data, Upload(path="a.bin"), ADMIN)
        temps_before = list(state.blobs.driver.list_temps())
        linked = await state.engine.link(
            target, digest, Upload(path="b.bin", expected={"sha256": digest}), ADMIN
        )
        assert linked is not None and linked.sha256 == digest and linked.repository == target.name
        assert list(state.blobs.driver.list_temps()) == temps_before
        assert await state.engine.link(target, "0" * 64, Upload(path="c.bin"), ADMIN) is None
        with pytest.raises(BadRequest):
            await state.engine.link(target, digest, Upload(path="d.bin", expected={"md5": "0" * 32}), ADMIN)

    asyncio.run(scenario())
    assert state.engine.lookup(target, "b.bin").size == 50_000
