"""The one bounded in-process cache every part of the server uses.

Bounded by entry count and, optionally, by a weight (bytes of cached documents); entries may expire
after `ttl` seconds. Not shared between processes: each worker keeps its own, so a value cached here
must either be immutable for its key (a digest, a generation) or tolerate `ttl` seconds of staleness.
Safe to use from the event loop and from worker threads: operations are single dict operations
under the GIL, and an eviction race at worst drops one entry more than needed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    def __init__(
        self,
        size: int,
        *,
        max_weight: int | None = None,
        weigh: Callable[[V], int] | None = None,
        ttl: float | None = None,
    ) -> None:
        self.size = size
        self.max_weight = max_weight
        self._weigh = weigh
        self.ttl = ttl
        self.weight = 0
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self.lookup(key)[1]

    def lookup(self, key: K) -> tuple[bool, V | None]:
        """(whether `key` is cached, its value): tells a cached None from a miss."""
        hit = self._items.get(key)
        if hit is None:
            return False, None
        stored_at, value = hit
        if self.ttl is not None and time.monotonic() - stored_at >= self.ttl:
            self.pop(key)
            return False, None
        try:
            self._items.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile
            pass
        return True, value

    def __contains__(self, key: object) -> bool:
        return self.lookup(key)[0]  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: K, value: V) -> V:
        self.pop(key)
        self._items[key] = (time.monotonic(), value)
        if self._weigh is not None:
            self.weight += self._weigh(value)
        while len(self._items) > self.size or (
            self.max_weight is not None and self.weight > self.max_weight and len(self._items) > 1
        ):
            try:
                _key, (_at, dropped) = self._items.popitem(last=False)
            except KeyError:
                break
            if self._weigh is not None:
                self.weight -= self._weigh(dropped)
        return value

    def pop(self, key: K) -> V | None:
        hit = self._items.pop(key, None)
        if hit is None:
            return None
        if self._weigh is not None:
            self.weight -= self._weigh(hit[1])
        return hit[1]

    def clear(self) -> None:
        self._items.clear()
        self.weight = 0
