"""The one refresher of rows a process holds (proxy leases, upload sessions, the cleanup schedule):
every key held is refreshed in one call per turn from one task, which ends once nothing is held; a
failed refresh is tried again at the next turn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from artifactory.keeper import Keeper

TURN = 0.2  # seconds between refreshes; the test acts within a turn of the last one


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the keeper did not get there in 10 s")


def test_held_keys_are_refreshed_together_until_released_and_a_failure_is_tried_again():
    calls: list[list[str]] = []

    async def refresh(keys: list[str]) -> None:
        calls.append(keys)
        if len(calls) == 2:
            raise RuntimeError("the database went away for a moment")

    async def scenario() -> None:
        keeper: Keeper[str] = Keeper(lambda: TURN, refresh, "test rows")
        keeper.hold("a")
        keeper.hold("b")
        first = keeper._task
        await until(lambda: len(calls) == 2)  # two turns, the second of which failed
        keeper.release("a")
        await until(lambda: len(calls) == 3)  # the failure did not stop the keeper
        assert keeper._task is first  # one task for every key
        keeper.release("b")
        await until(lambda: first is not None and first.done())  # nothing held: no task left
        keeper.hold("c")  # holding again starts a new one
        await until(lambda: len(calls) == 4)
        await keeper.close()
        assert calls == [["a", "b"], ["a", "b"], ["b"], ["c"]]

    asyncio.run(scenario())
