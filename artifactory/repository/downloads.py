"""Download counts and last-download times, recorded in batches: never a database write per request.

A GET that serves a stored asset adds one to a per-process tally (a dict update under a lock). A
daemon thread writes the tallies every `download_flush_seconds` in one transaction (one UPDATE per
asset, executed as a batch), and the rest is written when the process stops. A process that is
killed loses at most the last interval's counts: these numbers steer cleanup policies and the UI,
they are not billing.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import bindparam, update

from artifactory.db.engine import Database
from artifactory.db.models import Asset, utcnow

log = logging.getLogger(__name__)


class Downloads:
    def __init__(self, db: Database, flush_seconds: float = 10.0, enabled: bool = True) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self.enabled = enabled
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[int, datetime]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def record(self, asset_id: int) -> None:
        if not self.enabled or asset_id <= 0:
            return
        now = utcnow()
        with self._lock:
            count, _ = self._pending.get(asset_id, (0, now))
            self._pending[asset_id] = (count + 1, now)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="download-counts", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Write what has been counted; the number of assets written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        rows = [{"asset": k, "n": n, "at": at} for k, (n, at) in sorted(pending.items())]
        statement = (
            update(Asset)
            .where(Asset.id == bindparam("asset"))
            .values(download_count=Asset.download_count + bindparam("n"), last_downloaded=bindparam("at"))
            .execution_options(synchronize_session=False)
        )
        try:
            with self.db.write() as session:
                session.connection().execute(statement, rows)
        except Exception:  # noqa: BLE001 - counts are best effort; serving goes on
            log.exception("could not record download counts for %d assets", len(rows))
            return 0
        return len(rows)

    def close(self) -> None:
        self._stop.set()
        self.flush()
