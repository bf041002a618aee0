"""The one leader-and-followers primitive for work that is cheaper done together (group commit of
rows, shared flushes of small blobs).

Blocking callers of several threads hand in a job each: the first caller to find no batch running
runs every job waiting (up to a limit) in one call, the others wait for it, and the first of those
left over leads the next batch. No timer: jobs gather only while a batch is under way, so a lone
caller never waits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Generic, TypeVar

J = TypeVar("J")


@dataclass(eq=False)
class _Waiting(Generic[J]):
    job: J
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False


class Together(Generic[J]):
    def __init__(
        self,
        run_batch: Callable[[Sequence[J]], None],
        limit: int,
        around: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        """`around()`: entered by a leader before it chooses its batch and left once the batch has
        run (a lock the batch will need anyway: what arrives while the leader waits for it joins)."""
        self.run_batch = run_batch
        self.limit = limit
        self.around = around
        self._lock = threading.Lock()
        self._pending: list[_Waiting[J]] = []
        self._leading = False

    def run(self, job: J) -> None:
        """Blocking: returns once the batch that took `job` has run (or failed: whatever the batch
        did not record on its jobs did not happen). `run_batch`'s own exception is raised to the
        caller that led it only."""
        waiting = _Waiting(job)
        with self._lock:
            self._pending.append(waiting)
            lead = not self._leading
            self._leading = True
        if not lead:
            waiting.done.wait()
            if not waiting.lead:
                return
        batch: list[_Waiting[J]] = []
        try:
            try:
                with self.around():
                    batch = self._take()
                    self.run_batch([w.job for w in batch])
            except BaseException:
                if not batch:  # `around` itself failed: the jobs waiting are not run
                    batch = self._take()
                raise
        finally:
            for other in batch:  # never leave a follower waiting, whatever happened
                other.done.set()
            with self._lock:
                if self._pending:
                    self._pending[0].lead = True
                    self._pending[0].done.set()
                else:
                    self._leading = False

    def _take(self) -> list[_Waiting[J]]:
        with self._lock:
            batch, self._pending = self._pending[: self.limit], self._pending[self.limit :]
        return batch
