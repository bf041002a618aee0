"""`artifactory gc` online, on both metadata backends."""

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from artifactory.blobstore.filesystem import FilesystemDriver
from artifactory.blobstore.gc import collect
from artifactory.blobstore.store import BlobStore
from artifactory.db.engine import Database
from artifactory.settings import Settings
from artifactory.testing.cli import run_cli
from artifactory.testing.stored import blob_file as stored_file
from artifactory.testing.stored import stored

INLINE = Settings().inline_blob_bytes


def run_gc(server, *args):
    """`artifactory gc --json`, run in this process (tests/artifactory/test_cli.py runs it as a process)."""
    result = run_cli(
        "gc", "--json", "--data-dir", str(server.data_dir), *args, database_url=server.database_url
    )
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def blob_file(server, data):
    return stored_file(server, hashlib.sha256(data).hexdigest())


def test_gc_removes_only_unreferenced_blobs_past_the_grace_while_serving(any_server):
    name = any_server.create_repo("raw")
    kept, dropped = os.urandom(1000), os.urandom(1000)
    with any_server.client() as admin:
        admin.put(f"/repository/{name}/kept.bin", content=kept)
        admin.put(f"/repository/{name}/dropped.bin", content=dropped)
        assert admin.delete(f"/repository/{name}/dropped.bin").status_code == 204

        within_grace = run_gc(any_server, "--grace", "3600")
        assert stored(any_server, dropped)
        assert within_grace["dry_run"] is False

        dry = run_gc(any_server, "--grace", "0", "--dry-run")
        assert dry["blobs"] >= 1 and stored(any_server, dropped)

        report = run_gc(any_server, "--grace", "0")
        assert report["blobs"] >= 1
        assert not stored(any_server, dropped)
        assert stored(any_server, kept)
        assert admin.get(f"/repository/{name}/kept.bin").content == kept

        again = run_gc(any_server, "--grace", "0")
        assert again["blobs"] == 0

        # The collected content can be uploaded again and is served.
        assert admin.put(f"/repository/{name}/again.bin", content=dropped).status_code == 201
        assert admin.get(f"/repository/{name}/again.bin").content == dropped


def offline_store(server):
    """The server's own database and blob store, for running GC in this process."""
    url = server.database_url or f"sqlite:///{server.data_dir / 'artifactory.db'}"
    return Database(url), BlobStore(FilesystemDriver(server.data_dir / "blobs"))


def test_gc_at_grace_0_in_a_loop_never_takes_the_bytes_of_an_acknowledged_upload(any_server):
    """Fresh uploads, and re-uploads of bytes whose asset was just deleted (their blob unreferenced and
    collectable at once), race GC run back to back with no grace: every 201 must read back intact."""
    name = any_server.create_repo("raw")
    db, store = offline_store(any_server)
    stop = threading.Event()
    runs = []

    def gc_loop():
        while not stop.is_set():
            runs.append(collect(db, store, grace_seconds=0))
            time.sleep(0.02)  # as `artifactory gc --grace 0` run in a shell loop would, give writers a turn

    def uploader(worker):
        acknowledged, failures = {}, []
        with any_server.client() as client:
            for i in range(8):
                scratch = f"w{worker}/{i}-scratch.bin"  # gives GC something to collect meanwhile
                assert (
                    client.put(f"/repository/{name}/{scratch}", content=os.urandom(1000)).status_code == 201
                )
                assert client.delete(f"/repository/{name}/{scratch}").status_code == 204
                data = os.urandom(20_000)
                for path in (f"w{worker}/{i}.bin", f"w{worker}/{i}-again.bin"):
                    response = client.put(f"/repository/{name}/{path}", content=data)
                    if response.status_code != 201:
                        failures.append((path, response.status_code, response.text))
                        break
                    acknowledged[path] = data
                    if path.endswith("again.bin"):
                        break
                    # Unreference the blob at once: the re-upload of the same bytes races GC for it.
                    assert client.delete(f"/repository/{name}/{path}").status_code == 204
                    del acknowledged[path]
        return acknowledged, failures

    collector = threading.Thread(target=gc_loop)
    collector.start()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(uploader, range(4)))
    finally:
        stop.set()
        collector.join(timeout=60)
    try:
        runs.append(collect(db, store, grace_seconds=0))
    finally:
        db.dispose()
    failures = [f for _, fs in results for f in fs]
    assert failures == []
    acknowledged = {path: data for uploads, _ in results for path, data in uploads.items()}
    assert len(acknowledged) == 32 and len(runs) >= 3
    assert sum(run.blobs for run in runs) >= 32  # every scratch file's blob, and not one of the others
    with any_server.client() as client:
        for path, data in acknowledged.items():
            response = client.get(f"/repository/{name}/{path}")
            assert (response.status_code, response.content == data) == (200, True), path


def test_gc_at_grace_0_leaves_a_temporary_object_an_upload_may_still_be_writing(any_server):
    temps = any_server.data_dir / "blobs" / "tmp"
    fresh, abandoned = temps / f"fresh{os.urandom(4).hex()}", temps / f"old{os.urandom(4).hex()}"
    fresh.write_bytes(b"an upload still arriving")
    abandoned.write_bytes(b"left by a crash")
    os.utime(abandoned, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    report = run_gc(any_server, "--grace", "0")
    assert report["temps"] >= 1
    assert fresh.exists() and not abandoned.exists()
    fresh.unlink()


def test_a_file_whose_bytes_are_missing_is_never_answered_200(any_server):
    name = any_server.create_repo("raw")
    # Small (held in memory, written whole) and large (streamed), both files in the blob store.
    small, large = os.urandom(INLINE + 1000), os.urandom(300 * 1024)
    with any_server.client() as admin:
        for path, data in (("small.bin", small), ("large.bin", large)):
            assert admin.put(f"/repository/{name}/{path}", content=data).status_code == 201
            blob_file(any_server, data).unlink()  # what a GC bug or a lost disk would leave
            for method in ("HEAD", "GET"):
                response = admin.request(method, f"/repository/{name}/{path}")
                assert response.status_code == 500, (path, method)
                assert "x-checksum-sha256" not in response.headers  # not the file's headers at all
        assert admin.get(f"/repository/{name}/small.bin").json()["error"]
