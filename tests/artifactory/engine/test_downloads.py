"""Downloads are counted in batches: GETs of stored files add up, HEADs and 304s do not."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
from sqlalchemy import create_engine, text

from artifactory.repository.downloads import Downloads
from artifactory.testing.server import LiveServer


def test_downloads_are_counted_in_batches_and_survive_a_restart(tmp_path):
    live = LiveServer(tmp_path / "data", workers=2, env={"ARTIFACTORY_DOWNLOAD_FLUSH_SECONDS": "0.2"}).start()
    try:
        repo = live.create_repo("raw")
        with live.client() as admin:
            assert admin.put(f"/repository/{repo}/a.bin", content=b"a" * 100).status_code == 201
            assert admin.put(f"/repository/{repo}/b.bin", content=b"b" * 100).status_code == 201
        for _ in range(7):
            assert httpx.get(f"{live.repo_url(repo)}a.bin").status_code == 200
        etag = httpx.head(f"{live.repo_url(repo)}b.bin").headers["etag"]
        assert httpx.get(f"{live.repo_url(repo)}b.bin", headers={"If-None-Match": etag}).status_code == 304
        time.sleep(1.0)
    finally:
        live.stop()  # a clean stop writes what is still pending
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'artifactory.db'}")
    try:
        with engine.connect() as connection:
            rows = dict(
                connection.execute(
                    text("SELECT path, download_count FROM asset WHERE path IN ('a.bin', 'b.bin')")
                ).all()
            )
            last = connection.execute(text("SELECT last_downloaded FROM asset WHERE path = 'a.bin'")).scalar()
    finally:
        engine.dispose()
    assert rows == {"a.bin": 7, "b.bin": 0}
    assert last is not None


class _Recorder:
    """Stands in for the database: keeps every batch the flusher writes."""

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []

    @contextlib.contextmanager
    def write(self):
        recorder = self

        class Session:
            def connection(self):
                return self

            def execute(self, statement, rows):
                recorder.batches.append(list(rows))

        yield Session()


def test_counts_stay_exact_while_threads_record_and_the_flusher_drains_at_the_same_time():
    db = _Recorder()
    downloads = Downloads(db, flush_seconds=0.001)  # type: ignore[arg-type]

    def hammer(asset_id: int) -> None:
        for i in range(20_000):
            downloads.record(asset_id)
            if i % 5_000 == 4_999:
                # Let the flusher run meanwhile, however busy the machine is: wait for its next batch
                # (a sleep of fixed length was not always enough on a loaded machine).
                seen, deadline = len(db.batches), time.monotonic() + 10
                while len(db.batches) == seen and time.monotonic() < deadline:
                    time.sleep(0.002)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in (1, 2, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    downloads.close()
    totals: dict[int, int] = {}
    for batch in db.batches:
        for row in batch:
            totals[row["asset"]] = totals.get(row["asset"], 0) + row["n"]
            assert row["at"] is not None
    assert totals == {1: 20_000, 2: 40_000, 3: 20_000}
    assert len(db.batches) > 1  # written in several batches while recording went on


def test_nothing_is_queued_when_counting_is_off_or_for_an_unstored_asset():
    db = _Recorder()
    off = Downloads(db, enabled=False)  # type: ignore[arg-type]
    off.record(1)
    on = Downloads(db)  # type: ignore[arg-type]
    on.record(0)
    assert off.flush() == 0 and on.flush() == 0 and db.batches == []
