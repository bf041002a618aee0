"""A proxy fetch's lease held by the kernel, for the processes of one SQLite database.

SQLite serves one machine, so the processes that could fetch the same path at once all see the file
beside its database: a lease is a write lock on one byte of that file, at an offset hashed from
(repository id, path), taken with an open-file-description lock (`F_OFD_SETLK`) on a descriptor of
its own. Taking one is two system calls, not a write transaction: on SQLite the claim before every
cold miss no longer waits its turn behind the writers of every process (the asset commits of other
misses, uploads). Releasing it is closing that descriptor, which the kernel also does for a process
that dies: a lease never outlives its holder, so there is nothing to expire or take over.

PostgreSQL keeps the lease rows (`ProxyLease`): its processes may be on several machines. The
guarantee is the same on both: one upstream request for concurrent misses of one path, the others
waiting for its outcome. Two paths whose offsets collide (a 62-bit hash) would only make one wait
for the other's fetch.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct
import threading
from pathlib import Path

# struct flock on Linux (x86-64 and arm64): l_type, l_whence, l_start, l_len, l_pid, padding.
_FLOCK = struct.Struct("@hhqqi4x")
_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_BUSY = frozenset({errno.EAGAIN, errno.EACCES})
_OFFSET_MASK = (1 << 62) - 1


def lease_offset(repository_id: int, path: str) -> int:
    """The byte of the lock file that stands for (repository, path)."""
    digest = hashlib.blake2b(f"{repository_id}\x00{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _OFFSET_MASK


class NodeLeases:
    """Fetch leases as locks on bytes of `path` (created if missing). Raises OSError when the file
    cannot be opened or the kernel has no open-file-description locks (then the caller keeps the
    database's lease rows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._probe: int | None = None
        self._pid = 0
        # Fails here, not at the first miss, where the file or the locks are not to be had.
        fd = self._open()
        try:
            fcntl.fcntl(fd, _OFD_GETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0))
        finally:
            os.close(fd)

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def acquire(self, repository_id: int, path: str) -> int | None:
        """The lease of (repository, path): a descriptor holding it (give it to `release`), or None
        when another holder has it."""
        fd = self._open()
        lock = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, lease_offset(repository_id, path), 1, 0)
        try:
            fcntl.fcntl(fd, _OFD_SETLK, lock)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _BUSY:
                return None
            raise
        return fd

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)

    def held(self, repository_id: int, path: str) -> bool:
        """Whether anyone holds the lease of (repository, path), this process included."""
        query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, lease_offset(repository_id, path), 1, 0)
        answer = fcntl.fcntl(self._probe_fd(), _OFD_GETLK, query)
        return bool(_FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)

    def _probe_fd(self) -> int:
        """A descriptor that holds no lease, for asking (one per process)."""
        with self._lock:
            if self._probe is None or self._pid != os.getpid():
                self._probe, self._pid = self._open(), os.getpid()
            return self._probe

    def close(self) -> None:
        with self._lock:
            if self._probe is not None and self._pid == os.getpid():
                os.close(self._probe)
            self._probe = None
