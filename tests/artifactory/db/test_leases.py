"""The node's proxy leases on SQLite (`db.leases`): a lease is held by one descriptor at a time, seen
held by every process (its holder's included), let go when released or when its holder dies; a
database whose lease file cannot be had keeps the lease rows, which its proxy then follows.
PostgreSQL has no lease file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

from sqlalchemy import delete

from artifactory.db.engine import Database
from artifactory.db.leases import NodeLeases, lease_offset
from artifactory.db.models import ProxyLease, utcnow
from artifactory.repository.hosted import Upload
from artifactory.repository.model import StoredAsset
from artifactory.repository.proxy import SYSTEM
from tests.artifactory.repository.upstream import running


def test_a_lease_is_held_by_one_descriptor_until_it_is_released(tmp_path):
    leases = NodeLeases(tmp_path / "x.leases")
    first = leases.acquire(7, "a/b.whl")
    assert first is not None
    assert leases.acquire(7, "a/b.whl") is None  # the same process asking again: still held
    assert leases.held(7, "a/b.whl")
    other = leases.acquire(7, "a/c.whl")  # another path, another lease
    assert other is not None and leases.acquire(8, "a/b.whl") is not None
    leases.release(first)
    assert not leases.held(7, "a/b.whl")
    again = leases.acquire(7, "a/b.whl")
    assert again is not None
    leases.release(again)
    leases.release(other)
    leases.close()


def test_offsets_spread_and_stay_inside_a_lock_range():
    offsets = {lease_offset(rid, f"pkg/{n}.tgz") for rid in range(3) for n in range(2000)}
    assert len(offsets) == 6000
    assert all(0 <= offset < 2**62 for offset in offsets)
    assert lease_offset(1, "a") != lease_offset(2, "a") and lease_offset(1, "a") == lease_offset(1, "a")


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from artifactory.db.leases import NodeLeases
    fd = NodeLeases(Path(sys.argv[1])).acquire(3, "held/by/another.jar")
    print("held" if fd is not None else "busy", flush=True)
    time.sleep(60)
    """
)


def test_another_process_s_lease_is_seen_and_let_go_when_that_process_dies(tmp_path):
    path = tmp_path / "x.leases"
    leases = NodeLeases(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert leases.held(3, "held/by/another.jar")
        assert leases.acquire(3, "held/by/another.jar") is None
        os.killpg(holder.pid, signal.SIGKILL)  # no release: the kernel lets go of its locks
        holder.wait(10)
        deadline = time.monotonic() + 5
        while leases.held(3, "held/by/another.jar") and time.monotonic() < deadline:
            time.sleep(0.01)
        fd = leases.acquire(3, "held/by/another.jar")
        assert fd is not None
        leases.release(fd)
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(10)


def test_sqlite_has_a_lease_file_beside_its_database_and_postgresql_none(database_url, tmp_path):
    db = Database(database_url)
    try:
        if db.is_sqlite:
            assert db.node_leases is not None
            assert str(db.node_leases.path).endswith("test.db.leases")
        else:
            assert db.node_leases is None
    finally:
        db.dispose()


def test_without_its_lease_file_sqlite_keeps_the_lease_rows(tmp_path, caplog):
    """The lease file's name taken by a folder: the server starts, warns, and its proxy follows a
    lease row another process holds (rather than asking the upstream) as on PostgreSQL."""
    from artifactory.cli import prepare
    from artifactory.settings import Settings
    from artifactory.state import AppState

    settings = Settings(data_dir=tmp_path / "data", admin_password="x")
    prepare(settings, announce=False)
    leases = settings.resolved_database_url.removeprefix("sqlite:///") + ".leases"
    if os.path.exists(leases):  # made by the start-up's own database
        os.remove(leases)
    os.makedirs(leases)
    state = AppState.build(settings)
    try:
        assert state.db.node_leases is None
        assert "proxy leases are rows" in caplog.text
        with running() as upstream:
            upstream.put("lib/one.bin", b"x" * 5000)
            state.engine.repos.create({"name": "p", "format": "raw", "type": "proxy", "url": upstream.url})
            repo = state.engine.repository("p")
            with state.db.write() as session:
                session.add(
                    ProxyLease(
                        repository_id=repo.id,
                        path="lib/one.bin",
                        owner="elsewhere",
                        expires_at=utcnow() + timedelta(seconds=60),
                    )
                )

            async def scenario() -> object:
                try:
                    follower = asyncio.create_task(state.engine.proxy.get(repo, "lib/one.bin", stream=False))
                    await asyncio.sleep(0.2)
                    assert not follower.done()  # waiting for the row's holder
                    staged = await state.engine.blobs.ingest_bytes(b"y" * 7)
                    upload = Upload(path="lib/one.bin", bypass_write_policy=True)
                    await state.engine.hosted.commit(repo, staged, upload, SYSTEM)
                    with state.db.write() as session:
                        session.execute(delete(ProxyLease).where(ProxyLease.repository_id == repo.id))
                    return await asyncio.wait_for(follower, 10)
                finally:
                    await state.engine.close()

            found = asyncio.run(scenario())
            assert isinstance(found, StoredAsset) and found.size == 7  # the holder's, not fetched
            assert upstream.count("lib/one.bin") == 0
    finally:
        state.db.dispose()
