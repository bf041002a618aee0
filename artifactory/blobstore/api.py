"""The blob driver protocol: the few operations a storage backend must offer.

A driver stores opaque objects under keys chosen by the store (see store.py for the layout) and
temporary objects under names it chooses itself. It knows nothing of digests or the database.
Every method is synchronous and may block; the store calls them from worker threads. Each driver
must pass the conformance suite in artifactory.testing.blobdriver.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class TempObject(Protocol):
    """Bytes being written. Appending resumes where the last writer stopped."""

    name: str

    def write(self, data: bytes) -> None:
        """Append data. Nothing is visible under a blob key until `BlobDriver.promote`."""

    def close(self) -> None:
        """Make everything written so far durable (fsync, or the upload of a pending part)."""


class BlobDriver(Protocol):
    def create_temp(self) -> TempObject:
        """A new, empty temporary object with a fresh unique name."""

    def append_temp(self, name: str) -> TempObject:
        """Reopen an existing temporary object to append to it. KeyError if there is none."""

    def temp_size(self, name: str) -> int | None:
        """Bytes in a temporary object, or None if it does not exist."""

    def read_temp(self, name: str) -> Iterator[bytes]:
        """Stream a temporary object's bytes from the start. KeyError if there is none."""

    def delete_temp(self, name: str) -> None:
        """Remove a temporary object; no error if it is already gone."""

    def list_temps(self) -> Iterator[tuple[str, float]]:
        """Every temporary object's name with its last-modified time (epoch seconds)."""

    def promote(self, name: str, key: str) -> None:
        """Atomically make temp object `name` the object at `key`, durably, and remove the temp.

        If `key` already exists the existing object is kept (keys are content addresses, so it holds
        the same bytes) and the temp is removed. After this returns the object survives a crash.
        KeyError if the temporary object does not exist.
        """

    def write(self, key: str, data: bytes) -> bool:
        """Store a small object whole at `key`, atomically and durably, without a temporary object
        the caller must clean up: True when it was written, False (nothing written) when `key`
        exists already (keys are content addresses: it holds the same bytes). After True returns
        the object survives a crash; a crash before leaves nothing visible under `key`.

        A driver may also offer `write_many(items: Sequence[tuple[str, bytes]]) -> list[bool]`:
        `write` of each (key, bytes) with the same promise per item, their flushes shared (the
        filesystem driver has it; the store uses it, when present, for small bodies arriving
        together). It is optional, so it is not part of this protocol's signature."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int | None:
        """Size in bytes, or None if the key does not exist."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes [start, end) of an object (end None: to the end). KeyError if missing."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path holding the object, for zero-copy serving; None when there is none."""

    def delete(self, key: str) -> None:
        """Remove an object; no error if it is already gone."""

    def list_keys(self) -> Iterator[tuple[str, float]]:
        """Every object's key with its last-modified time (epoch seconds)."""
