"""Blob driver on a local (or shared) filesystem.

Layout below the root:  objects/<key>  for blobs, tmp/<uuid>  for temporary objects.
A temporary object is fsynced when it is closed; a promote is rename + fsync(directory) (and of the
parent of any directory it had to create): atomic and durable on POSIX filesystems.

A small object written whole (`write`) takes no temporary name at all where the system allows it:
an unnamed file (O_TMPFILE) in the object's own directory, fsynced, then linked under its key and
the directory fsynced. A crash before the link leaves nothing (the kernel frees an unnamed file), and
the link either appears with every byte or not at all.

Several small objects written together (`write_many`, what the store does for concurrent small
uploads) share their flushes: every unnamed file is written, one `syncfs` makes all their bytes
durable, every file is linked, and a second `syncfs` makes the links (and any directory created for
them) durable. Two flushes for the batch instead of two or three per object; the order is the same
as `write`'s, so no key ever names bytes that are not on disk. syncfs flushes the whole filesystem
the blob store is on: on a volume shared with heavy writers a batch waits for their data too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

READ_CHUNK = 1024 * 1024
# Where O_TMPFILE + linkat is not supported (an older kernel, a filesystem without it, no /proc),
# `write` falls back to a temporary object and a promote.
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EXDEV})


def _load_syncfs() -> ctypes._NamedFuncPointer | None:
    """libc's syncfs(2), where there is one (Linux)."""
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name, use_errno=True).syncfs if name else None
    except (OSError, AttributeError):
        return None
    if function is not None:
        function.argtypes = [ctypes.c_int]
        function.restype = ctypes.c_int
    return function


_SYNCFS = _load_syncfs()


def _syncfs(fd: int) -> None:
    assert _SYNCFS is not None
    if _SYNCFS(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"syncfs: {os.strerror(code)}")


def fsync_dir(path: Path) -> None:
    """Make the entries of the directory `path` durable (a name just linked or renamed into it)."""
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
        self._tmpfile_works = hasattr(os, "O_TMPFILE")
        self._proc_fd: int | None = None
        self._proc_pid = 0

    def _object(self, key: str) -> Path:
        return Path(self._object_text(key))

    def _object_text(self, key: str) -> str:
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
        return self._objects_text + key

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
        if not target.parent.is_dir():
            self._make_parents(target)
        os.replace(source, target)
        fsync_dir(target.parent)

    def write(self, key: str, data: bytes) -> bool:
        target = self._object_text(key)
        if os.path.isfile(target):  # a content address: it holds these bytes (no write, no flush)
            return False
        directory, _, name = target.rpartition("/")
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            self._make_parents(Path(target))
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if self._tmpfile_works:
                try:
                    return self._link_new(dir_fd, name, data)
                except OSError as exc:
                    if exc.errno not in _NO_TMPFILE:
                        raise
                    self._tmpfile_works = False
            if os.path.isfile(target):
                return False
            temp = self.create_temp()
            try:
                temp.write(data)
                temp.close()
                os.replace(temp.path, target)
            except BaseException:
                temp.path.unlink(missing_ok=True)
                raise
            os.fsync(dir_fd)
            return True
        finally:
            os.close(dir_fd)

    def write_many(self, items: Sequence[tuple[str, bytes]]) -> list[bool]:
        """`write` of each (key, bytes), their flushes shared (see the module's docstring); per item
        True when written, False when its key existed already. Nothing is linked before the bytes of
        every file of the batch are durable, so a key never names bytes that are not on disk. Paths,
        not directory descriptors: a stat per file, and three system calls per file not stored
        already (open, write, link); a batch of stored files costs no flush."""
        if len(items) == 1 or _SYNCFS is None or not self._tmpfile_works:
            return [self.write(key, data) for key, data in items]
        targets = [self._object_text(key) for key, _data in items]
        stored = [os.path.isfile(target) for target in targets]  # content addresses: nothing to write
        if all(stored):
            return [False] * len(items)
        opened: list[tuple[int, str]] = []
        try:
            for (_key, data), target, there in zip(items, targets, stored, strict=True):
                if there:
                    continue
                directory = target.rpartition("/")[0]
                try:
                    fd = self._unnamed(directory)
                except FileNotFoundError:
                    os.makedirs(directory, exist_ok=True)  # made durable by the 2nd sync
                    fd = self._unnamed(directory)
                opened.append((fd, target))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            _syncfs(opened[0][0])
            linked = iter(self._link_all(opened))
            written = [False if there else next(linked) for there in stored]
            _syncfs(opened[0][0])
            return written
        except OSError as exc:
            if exc.errno in _NO_TMPFILE and not self._tmpfile_works:
                return [self.write(key, data) for key, data in items]
            raise
        finally:
            for fd, _target in opened:
                os.close(fd)

    def _link_all(self, opened: Sequence[tuple[int, str]]) -> list[bool]:
        """Name each unnamed file: per file True, or False when its name exists already."""
        linked = []
        for fd, target in opened:
            try:
                # linkat(AT_SYMLINK_FOLLOW) names the unnamed file; a plain link() of the /proc
                # path would not follow it (a directory descriptor makes Python use linkat).
                os.link(str(fd), target, src_dir_fd=self._descriptors())
                linked.append(True)
            except FileExistsError:
                linked.append(False)
        return linked

    def _descriptors(self) -> int:
        """This process's /proc/self/fd, open (once per process)."""
        if self._proc_fd is None or self._proc_pid != os.getpid():
            self._proc_fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
            self._proc_pid = os.getpid()
        return self._proc_fd

    def _unnamed(self, directory: str) -> int:
        """An unnamed file (O_TMPFILE) in `directory`; FileNotFoundError when the directory is
        missing (and unnamed files are supported: `_tmpfile_works` is cleared when they are not)."""
        try:
            return os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o644)
        except OSError as exc:
            if exc.errno == errno.ENOENT and os.path.isdir(directory):
                self._tmpfile_works = False  # the directory is there: it is the flag that fails
            elif exc.errno in _NO_TMPFILE and exc.errno != errno.ENOENT:
                self._tmpfile_works = False
            raise

    @staticmethod
    def _link_new(dir_fd: int, name: str, data: bytes) -> bool:
        """`data` durable in an unnamed file, then linked as `name` and the directory fsynced;
        False (nothing written) when `name` exists already."""
        fd = os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o644, dir_fd=dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            try:
                # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N names the unnamed file (AT_EMPTY_PATH
                # would need a capability).
                os.link(f"/proc/self/fd/{fd}", name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except FileExistsError:
                return False
        finally:
            os.close(fd)
        os.fsync(dir_fd)
        return True

    def _make_parents(self, target: Path) -> None:
        """Create the directories of `target`, fsyncing the parent of each one created."""
        created = [d for d in (target.parent.parent, target.parent) if not d.is_dir()]
        target.parent.mkdir(parents=True, exist_ok=True)
        for directory in reversed(created):
            fsync_dir(directory.parent)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._object_text(key))

    def size(self, key: str) -> int | None:
        try:
            return os.stat(self._object_text(key)).st_size
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
