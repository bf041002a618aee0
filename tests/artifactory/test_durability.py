"""Crash safety, bounded memory and concurrent writers, each against a real server process."""

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from artifactory.testing.cli import run_cli
from artifactory.testing.server import LiveServer

CHUNK = os.urandom(1024 * 1024)


def stream(total: int):
    sent = 0
    while sent < total:
        piece = CHUNK[: min(len(CHUNK), total - sent)]
        sent += len(piece)
        yield piece


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """Empty (the server's own SQLite file in its data dir) or a PostgreSQL schema of the test's own."""
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else ""


def assets_and_blobs_consistent(data_dir, database_url=""):
    """Every asset's blob row exists, and its bytes exist (a file in the blob store, or kept in the
    row) with the recorded size and sha256."""
    engine = create_engine(database_url or f"sqlite:///{data_dir / 'artifactory.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "select a.path, b.sha256, b.size, b.data from asset a join blob b on b.sha256 = a.blob_sha256"
            )
        ).all()
        orphans = connection.execute(
            text(
                "select count(*) from asset a"
                " where not exists (select 1 from blob b where b.sha256 = a.blob_sha256)"
            )
        ).scalar_one()
    engine.dispose()
    assert orphans == 0
    for path, sha256, size, kept in rows:
        digest = hashlib.sha256()
        if kept is not None:
            assert len(kept) == size, f"asset {path} keeps {len(kept)} bytes in its row, not {size}"
            digest.update(bytes(kept))
        else:
            blob = data_dir / "blobs" / "objects" / "sha256" / sha256[:2] / sha256[2:4] / sha256
            assert blob.is_file(), f"asset {path} has no bytes"
            assert blob.stat().st_size == size
            with open(blob, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        assert digest.hexdigest() == sha256, f"asset {path} has wrong bytes"
    return len(rows)


@pytest.mark.slow
def test_kill_9_during_uploads_leaves_no_asset_without_its_bytes(tmp_path, database_url):
    """Small uploads (staged in memory, written whole to their address or kept in their blob's row,
    several at once) and a large one (through a temporary object) are cut off by SIGKILL: every
    committed asset has its bytes, and GC clears what the killed server left."""
    live = LiveServer(tmp_path / "data", database_url=database_url).start()
    name = live.create_repo("raw")
    stop = threading.Event()

    def small_uploads(writer: int) -> None:
        with live.client() as client:
            i = 0
            while not stop.is_set():
                try:
                    # Files of the blob store and (every other one) bytes kept in their blob's row.
                    size = 200_000 if i % 2 else 2_000
                    client.put(f"/repository/{name}/small/{writer}/{i}.bin", content=os.urandom(size))
                except httpx.HTTPError:
                    return
                i += 1

    def large_upload():
        try:
            with live.client() as client:
                client.put(f"/repository/{name}/large.bin", content=stream(400 * 1024 * 1024))
        except httpx.HTTPError:
            pass

    # Several writers of small uploads, so that they are also saved in batches (`_SmallCommits`).
    workers = [threading.Thread(target=small_uploads, args=(n,)) for n in range(4)]
    workers.append(threading.Thread(target=large_upload))
    for worker in workers:
        worker.start()
    time.sleep(2.0)
    live.stop(kill=True)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    stored = assets_and_blobs_consistent(live.data_dir, database_url)
    assert stored > 0  # some uploads completed before the kill

    live.start()
    try:
        with live.client() as client:
            assert client.get(f"/repository/{name}/large.bin").status_code == 404
            assert client.put(f"/repository/{name}/after.bin", content=b"alive").status_code == 201
        # GC leaves a temporary object alone for an hour whatever its grace (an upload may still be
        # writing it): age what the killed server left behind.
        for temp in (live.data_dir / "blobs" / "tmp").iterdir():
            os.utime(temp, (time.time() - 2 * 3600, time.time() - 2 * 3600))
        result = run_cli("gc", "--grace", "0", "--data-dir", str(live.data_dir), database_url=database_url)
        assert result.returncode == 0, result.stderr.decode()
        assert not list((live.data_dir / "blobs" / "tmp").iterdir())
        assert assets_and_blobs_consistent(live.data_dir, database_url) == stored + 1
    finally:
        live.stop()


def rss_kib(pid: int) -> int:
    total = 0
    for candidate in [pid, *children(pid)]:
        try:
            with open(f"/proc/{candidate}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            direct = [int(p) for p in handle.read().split()]
    except FileNotFoundError:
        return []
    return direct + [grandchild for child in direct for grandchild in children(child)]


@pytest.mark.slow
def test_memory_stays_under_200mb_while_512mb_is_uploaded_and_downloaded_at_once(tmp_path):
    """512 MiB each way, 2.5 times the bound: a server holding either body in memory would exceed it."""
    size = 512 * 1024 * 1024
    live = LiveServer(tmp_path / "data").start()
    try:
        name = live.create_repo("raw")
        with live.client() as client:
            assert client.put(f"/repository/{name}/first.bin", content=stream(size)).status_code == 201
        peak = 0
        done = threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_kib(live.process.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()

        def upload():
            with live.client() as client:
                return client.put(f"/repository/{name}/second.bin", content=stream(size)).status_code

        def download():
            received = 0
            with live.client() as client, client.stream("GET", f"/repository/{name}/first.bin") as response:
                for chunk in response.iter_bytes(1 << 20):
                    received += len(chunk)
            return received

        with ThreadPoolExecutor(2) as pool:
            uploaded, downloaded = pool.submit(upload), pool.submit(download)
            assert uploaded.result() == 201
            assert downloaded.result() == size
        done.set()
        sampler.join()
        assert peak < 200 * 1024, f"peak RSS {peak // 1024} MiB"
    finally:
        live.stop()


def test_two_workers_and_concurrent_writes_never_report_database_locked(tmp_path, database_url):
    live = LiveServer(tmp_path / "data", workers=2, database_url=database_url).start()
    try:
        name = live.create_repo("raw")

        def put(i: int) -> int:
            with live.client() as client:  # a connection of its own; the TLS context is shared
                status = client.put(f"{live.repo_url(name)}f/{i}.txt", content=f"{i}".encode()).status_code
                client.get(f"{live.repo_url(name)}f/{i}.txt")
                return status

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(put, range(120)))
        assert statuses == [201] * 120
        assert "database is locked" not in live.log()
        with live.client() as client:
            for i in range(0, 120, 17):
                assert client.get(f"/repository/{name}/f/{i}.txt").text == str(i)
        assert assets_and_blobs_consistent(live.data_dir, database_url) == 120
    finally:
        live.stop()
