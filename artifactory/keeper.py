"""Rows a process holds that expire unless it refreshes them: a proxy fetch's lease, an upload
session a chunk is being appended to, the cleanup schedule's lease. Each expires by itself so that a
process that dies lets go; each must outlive the work it guards however long that takes.

A `Keeper` refreshes every key held, all in one call, every `every()` seconds, from one task that
runs while anything is held (none while nothing is): holding a key costs a dict entry, not a task.
A key is held from `hold` to `release`. A failed refresh is logged and tried again at the next turn
(the rows last several turns). A refresh still running when its key is released must find nothing
to do: it updates only rows its holder still owns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)


class Keeper(Generic[K]):
    def __init__(
        self, every: Callable[[], float], refresh: Callable[[list[K]], Awaitable[object]], what: str
    ) -> None:
        self._every = every  # read at every turn
        self._refresh = refresh
        self._what = what
        self._held: dict[K, None] = {}  # in the order held
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> list[K]:
        return list(self._held)

    def hold(self, key: K) -> None:
        self._held[key] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def release(self, key: K) -> None:
        self._held.pop(key, None)

    async def close(self) -> None:
        self._held.clear()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while self._held:
            await asyncio.sleep(self._every())
            keys = list(self._held)
            if not keys:
                return
            try:
                await self._refresh(keys)
            except Exception:  # noqa: BLE001 - the rows outlive a turn: tried again at the next
                log.warning("refreshing %s failed; tried again at the next turn", self._what, exc_info=True)


__all__ = ["Keeper"]
