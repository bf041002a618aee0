"""Blob driver on a local (or shared) filesystem.

Layout below the root:  objects/<key>  for blobs, tmp/<uuid>  for temporary objects.
A temporary object is fsynced when it is closed; a promote is rename + fsync(directory) (and of the
parent of any directory it had to create): atomic and durable on POSIX filesystems.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

READ_CHUNK = 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileTemp:
    def __init__(self, name: str, path: Path, mode: str) -> None:
        self.name = name
        self.path = path
        self._file = open(path, mode)  # noqa: SIM115 - closed in close()

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


class FilesystemDriver:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.objects = self.root / "objects"
        self._objects_text = str(self.objects) + "/"
        self.tmp = self.root / "tmp"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _object(self, key: str) -> Path:
        # A lexical check (no filesystem calls: this is on every read): relative, no empty, "." or
        # ".." segments, no backslash or NUL. Keys come from the store's layout, never from clients.
        if (
            not key
            or key.startswith("/")
            or "\\" in key
            or "\x00" in key
            or any(part in ("", ".", "..") for part in key.split("/"))
        ):
            raise ValueError(f"invalid blob key {key!r}")
        return Path(self._objects_text + key)

    def _temp(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid temp name {name!r}")
        return self.tmp / name

    def temp_path(self, name: str) -> Path:
        """Where a temporary object lives on disk (the store opens staged uploads in place)."""
        return self._temp(name)

    def create_temp(self) -> FileTemp:
        name = uuid.uuid4().hex
        return FileTemp(name, self._temp(name), "xb")

    def append_temp(self, name: str) -> FileTemp:
        path = self._temp(name)
        if not path.exists():
            raise KeyError(name)
        return FileTemp(name, path, "ab")

    def temp_size(self, name: str) -> int | None:
        try:
            return self._temp(name).stat().st_size
        except FileNotFoundError:
            return None

    def read_temp(self, name: str) -> Iterator[bytes]:
        path = self._temp(name)
        if not path.is_file():
            raise KeyError(name)
        return self._stream(path, 0, None)

    def delete_temp(self, name: str) -> None:
        self._temp(name).unlink(missing_ok=True)

    def list_temps(self) -> Iterator[tuple[str, float]]:
        for entry in os.scandir(self.tmp):
            try:
                yield entry.name, entry.stat().st_mtime
            except FileNotFoundError:
                continue

    def promote(self, name: str, key: str) -> None:
        source = self._temp(name)
        target = self._object(key)
        if not source.is_file():
            raise KeyError(name)
        if target.exists():
            source.unlink(missing_ok=True)
            return
        # The temp's bytes are durable already (FileTemp.close fsyncs them); what remains is the
        # rename, and the entries of any directory created for it.
        created = [d for d in (target.parent.parent, target.parent) if not d.is_dir()]
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        _fsync_dir(target.parent)
        for directory in reversed(created):
            _fsync_dir(directory.parent)

    def exists(self, key: str) -> bool:
        return self._object(key).is_file()

    def size(self, key: str) -> int | None:
        try:
            return self._object(key).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._object(key)
        if not path.is_file():
            raise KeyError(key)
        return self._stream(path, start, end)

    @staticmethod
    def _stream(path: Path, start: int, end: int | None) -> Iterator[bytes]:
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                chunk = handle.read(READ_CHUNK if remaining is None else min(READ_CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def local_path(self, key: str) -> Path | None:
        return self._object(key)

    def delete(self, key: str) -> None:
        self._object(key).unlink(missing_ok=True)

    def list_keys(self) -> Iterator[tuple[str, float]]:
        for dirpath, _dirs, files in os.walk(self.objects):
            for filename in files:
                full = os.path.join(dirpath, filename)
                try:
                    mtime = os.stat(full).st_mtime
                except FileNotFoundError:
                    continue
                yield os.path.relpath(full, self.objects), mtime
