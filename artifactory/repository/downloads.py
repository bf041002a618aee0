"""Download counts and last-download times, recorded in batches: never a write per request.

A GET that serves a stored asset appends the asset's id to a per-process queue: one `deque.append`,
which is atomic in CPython, so the hot path takes no lock. A daemon thread drains the queue every
`download_flush_seconds` and writes the tallies in one transaction (one UPDATE per asset, executed as
a batch); the rest is written when the process stops. Draining with `popleft` rather than swapping a
container out means no count can land in a batch that was already written: counts are exact.

The last-download time written is the time of the flush that counted the download, so it is late by
at most one interval. A process that is killed loses at most the last interval's counts: these
numbers steer cleanup policies and the UI, they are not billing.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque

from sqlalchemy import bindparam, update

from artifactory.db.engine import Database
from artifactory.db.models import Asset, utcnow

log = logging.getLogger(__name__)
_ADD = (
    update(Asset)
    .where(Asset.id == bindparam("asset"))
    .values(download_count=Asset.download_count + bindparam("n"), last_downloaded=bindparam("at"))
    .execution_options(synchronize_session=False)
)


class Downloads:
    def __init__(self, db: Database, flush_seconds: float = 10.0, enabled: bool = True) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self.enabled = enabled
        self._queue: deque[int] = deque()
        self._start_lock = threading.Lock()  # taken once, when the first download starts the thread
        self._flush_lock = threading.Lock()  # the thread's flush and close()'s never interleave
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def record(self, asset_id: int) -> None:
        if self.enabled and asset_id > 0:
            self._queue.append(asset_id)
            if self._thread is None:
                self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="download-counts", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Write what has been counted; the number of assets written."""
        with self._flush_lock:
            pending: Counter[int] = Counter()
            take = self._queue.popleft
            try:
                while True:
                    pending[take()] += 1
            except IndexError:
                pass
            if not pending:
                return 0
            at = utcnow()
            rows = [{"asset": k, "n": n, "at": at} for k, n in sorted(pending.items())]
            try:
                with self.db.write() as session:
                    session.connection().execute(_ADD, rows)
            except Exception:  # noqa: BLE001 - counts are best effort; serving goes on
                log.exception("could not record download counts for %d assets", len(rows))
                return 0
            return len(rows)

    def close(self) -> None:
        self._stop.set()
        self.flush()
