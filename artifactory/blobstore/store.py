"""The blob store: streaming ingest with every digest computed in one pass, and the key layout.

Layout (the only place it is described): a blob with sha256 `h` lives at key
`sha256/h[0:2]/h[2:4]/h`. Keys never depend on a repository or a path, so identical bytes are
stored once however many repositories hold them.

Ingest writes to a temporary object while hashing; nothing is promoted to its content address until
the caller has checked what it needs and asked for it, so a cut-off or rejected upload leaves at most
a temporary object, which `discard` removes (and GC removes if the process died first). A small body
(one that ends before the first FLUSH_BYTES) staged by `ingest_then` or `ingest_bytes` is not written
anywhere until it is placed: it stays in memory, and `place` writes it straight to its content
address (`BlobDriver.write`: one durable write, no temporary object to create, rename or remove).
Concurrent places of small bodies are written together where the driver can share their flushes
(`write_many`): the first caller to find no batch running writes every waiting body, the others
wait for it, as the database's group commit does for rows.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import anyio
from anyio import to_thread

from artifactory.batching import Together
from artifactory.blobstore.api import BlobDriver, TempObject

ALGORITHMS = ("sha256", "sha1", "md5", "sha512")
HEX_LENGTH = {"sha256": 64, "sha1": 40, "md5": 32, "sha512": 128}
FLUSH_BYTES = 1024 * 1024
# A body this small is hashed on the event loop (tens of microseconds) rather than in a worker thread.
HASH_INLINE_BYTES = 64 * 1024
# The most small bodies one shared write takes; more wait for the next one.
MAX_WRITE_BATCH = 64
_HEX = re.compile(r"^[0-9a-f]+$")
T = TypeVar("T")


class BlobError(Exception):
    """Base of the blob store's own errors."""


class DigestMismatch(BlobError):
    def __init__(self, algorithm: str, expected: str, actual: str) -> None:
        super().__init__(f"{algorithm} mismatch: expected {expected}, got {actual}")
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class TooLarge(BlobError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int
    sha1: str
    md5: str
    sha512: str

    def digest(self, algorithm: str) -> str:
        return str(getattr(self, algorithm))


@dataclass
class StagedBlob:
    """Bytes hashed, not yet at their content address: durable in a temporary object (`temp_name`),
    or, for a small body, held in memory (`data`) until `place` writes them. Neither: the bytes
    are stored already (a link to a known blob)."""

    info: BlobInfo
    temp_name: str
    data: bytes | None = None  # None again once discarded
    in_memory: bool = False

    @property
    def unplaced(self) -> bool:
        """Whether there are bytes to place (a temporary object, bytes in memory), rather than a
        link to bytes stored already."""
        return bool(self.temp_name) or self.in_memory


def blob_key(sha256: str) -> str:
    if len(sha256) != 64 or not _HEX.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def normalise_expected(expected: Mapping[str, str | None] | None) -> dict[str, str]:
    """Lower-case, validated expected digests; a malformed one is reported as a mismatch up front."""
    result: dict[str, str] = {}
    for algorithm, value in (expected or {}).items():
        if value is None or value == "":
            continue
        if algorithm not in HEX_LENGTH:
            raise ValueError(f"unknown digest algorithm {algorithm!r}")
        value = value.strip().lower()
        if len(value) != HEX_LENGTH[algorithm] or not _HEX.match(value):
            raise DigestMismatch(algorithm, value, "(not a valid hex digest)")
        result[algorithm] = value
    return result


class _Hasher:
    def __init__(self) -> None:
        self.hashes = {name: hashlib.new(name) for name in ALGORITHMS}
        self.size = 0

    def update(self, data: bytes) -> None:
        self.size += len(data)
        for h in self.hashes.values():
            h.update(data)

    def info(self) -> BlobInfo:
        digests = {name: h.hexdigest() for name, h in self.hashes.items()}
        return BlobInfo(size=self.size, **digests)


def _write_and_hash(temp: TempObject, hasher: _Hasher, data: bytes) -> None:
    hasher.update(data)
    temp.write(data)


@dataclass(eq=False)
class _Write:
    key: str
    data: bytes
    written: bool | None = None
    error: BaseException | None = None


class _SharedWrites:
    """Small bodies of several threads written together (`artifactory.batching`)."""

    def __init__(self, write_many: Callable[[Sequence[tuple[str, bytes]]], list[bool]]) -> None:
        self.write_many = write_many
        self._together: Together[_Write] = Together(self._write_batch, MAX_WRITE_BATCH)

    def write(self, key: str, data: bytes) -> bool:
        job = _Write(key, data)
        self._together.run(job)
        if job.error is not None:
            raise job.error
        if job.written is None:
            raise RuntimeError("the shared write was interrupted")
        return job.written

    def _write_batch(self, batch: Sequence[_Write]) -> None:
        try:
            unique: dict[str, bytes] = {}
            for item in batch:
                unique.setdefault(item.key, item.data)
            written = dict(zip(unique, self.write_many(list(unique.items())), strict=True))
            for item in batch:
                item.written, written[item.key] = written[item.key], False  # the first one wrote it
        except Exception as exc:  # noqa: BLE001 - every body of the batch gets it
            for item in batch:
                item.error = exc


class BlobStore:
    def __init__(self, driver: BlobDriver) -> None:
        self.driver = driver
        write_many = getattr(driver, "write_many", None)
        self._shared = _SharedWrites(write_many) if write_many is not None else None

    async def ingest(
        self,
        chunks: AsyncIterable[bytes],
        expected: Mapping[str, str | None] | None = None,
        max_size: int | None = None,
    ) -> StagedBlob:
        """Write a stream to a temporary object, hashing it; verify `expected` digests and the size.

        Raises DigestMismatch or TooLarge (the temporary object is removed first); any exception from
        the stream itself (a client that disconnects) likewise leaves nothing behind.
        """
        staged, _ = await self._ingest(chunks, expected, max_size, None, False)
        return staged

    async def ingest_then(
        self,
        chunks: AsyncIterable[bytes],
        expected: Mapping[str, str | None] | None,
        max_size: int | None,
        then: Callable[[StagedBlob], T] | None,
    ) -> tuple[StagedBlob, T | None]:
        """`ingest`, then `then(staged)` (blocking) in the worker thread that wrote the last bytes, so
        that a small upload is received, made durable and committed in one thread hop. If `then`
        raises, the temporary object is removed (unless `then` promoted it) and the error raised.
        A small body is staged in memory (`StagedBlob.data`), written only by `place`."""
        return await self._ingest(chunks, expected, max_size, then, True)

    async def _ingest(
        self,
        chunks: AsyncIterable[bytes],
        expected: Mapping[str, str | None] | None,
        max_size: int | None,
        then: Callable[[StagedBlob], T] | None,
        small_in_memory: bool,
    ) -> tuple[StagedBlob, T | None]:
        wanted = normalise_expected(expected)
        # The temporary object is created with the first flush, or with the last (and only) write
        # of a small body: one worker-thread hop for a small upload instead of three.
        temp: TempObject | None = None
        hasher = _Hasher()
        try:
            buffer = bytearray()
            async for chunk in chunks:
                if max_size is not None and hasher.size + len(buffer) + len(chunk) > max_size:
                    raise TooLarge(max_size)
                buffer += chunk
                if len(buffer) >= FLUSH_BYTES:
                    data = bytes(buffer)
                    buffer.clear()
                    if temp is None:
                        temp = await to_thread.run_sync(self.driver.create_temp)
                    await to_thread.run_sync(_write_and_hash, temp, hasher, data)
            last, temp = temp, None  # from here on the worker thread removes it on failure
            if last is None and small_in_memory:
                if then is None and len(buffer) <= HASH_INLINE_BYTES:
                    return _in_memory(bytes(buffer), hasher, wanted, None)
                return await to_thread.run_sync(_in_memory, bytes(buffer), hasher, wanted, then)
            return await to_thread.run_sync(_finish, self.driver, last, hasher, bytes(buffer), wanted, then)
        except BaseException:
            if temp is not None:
                with anyio.CancelScope(shield=True):
                    await to_thread.run_sync(_close_and_delete, self.driver, temp)
            raise

    async def ingest_bytes(self, data: bytes, expected: Mapping[str, str | None] | None = None) -> StagedBlob:
        """Stage bytes already in memory (a companion file, a fetched document); a small one stays
        in memory until it is placed."""

        async def one() -> AsyncIterator[bytes]:
            yield data

        staged, _ = await self._ingest(one(), expected, None, None, True)
        return staged

    def stage_bytes_sync(self, data: bytes) -> StagedBlob:
        """Blocking staging of a small in-memory document (for transforms run inside a transaction):
        hashed, held in memory until `publish_sync` writes it."""
        hasher = _Hasher()
        hasher.update(data)
        return StagedBlob(info=hasher.info(), temp_name="", data=data, in_memory=True)

    def publish_sync(self, staged: StagedBlob) -> None:
        """Blocking: the staged bytes at their content address, durably (kept there if they are)."""
        key = blob_key(staged.info.sha256)
        if staged.in_memory:
            self.driver.write(key, _held(staged))
        else:
            self.driver.promote(staged.temp_name, key)

    def read_all_sync(self, sha256: str, limit: int) -> bytes:
        data = bytearray()
        for chunk in self.driver.read(blob_key(sha256)):
            data += chunk
            if len(data) > limit:
                raise TooLarge(limit)
        return bytes(data)

    # -- resumable temporary objects (upload sessions that span requests and processes) ------
    async def open_temp(self) -> str:
        def create() -> str:
            temp = self.driver.create_temp()
            temp.close()
            return temp.name

        return await to_thread.run_sync(create)

    async def append(self, name: str, chunks: AsyncIterable[bytes], max_size: int | None = None) -> int:
        """Append a stream to a temporary object; returns its new size. The caller serialises appends."""
        temp = await to_thread.run_sync(self.driver.append_temp, name)
        size = await to_thread.run_sync(self.driver.temp_size, name) or 0
        buffer = bytearray()
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise TooLarge(max_size)
                buffer += chunk
                if len(buffer) >= FLUSH_BYTES:
                    data = bytes(buffer)
                    buffer.clear()
                    await to_thread.run_sync(temp.write, data)
            if buffer:
                await to_thread.run_sync(temp.write, bytes(buffer))
        finally:
            with anyio.CancelScope(shield=True):
                await to_thread.run_sync(temp.close)
        return size

    async def temp_size(self, name: str) -> int | None:
        return await to_thread.run_sync(self.driver.temp_size, name)

    async def finish(self, name: str, expected: Mapping[str, str | None] | None = None) -> StagedBlob:
        """Hash a finished temporary object and check `expected`; the temp is removed on mismatch."""
        wanted = normalise_expected(expected)

        def digest() -> BlobInfo:
            hasher = _Hasher()
            for chunk in self.driver.read_temp(name):
                hasher.update(chunk)
            return hasher.info()

        info = await to_thread.run_sync(digest)
        for algorithm, value in wanted.items():
            if not hmac.compare_digest(value, info.digest(algorithm)):
                await to_thread.run_sync(self.driver.delete_temp, name)
                raise DigestMismatch(algorithm, value, info.digest(algorithm))
        return StagedBlob(info=info, temp_name=name)

    def open_staged(self, staged: StagedBlob) -> BinaryIO:
        """A seekable file of staged (not yet published) bytes, for parsing an upload. Blocking;
        the caller closes it. Local temporaries are opened in place, others copied to a local file."""
        if staged.in_memory:
            return io.BytesIO(_held(staged))
        local = getattr(self.driver, "temp_path", None)
        if local is not None:
            return open(local(staged.temp_name), "rb")  # noqa: SIM115 - the caller closes it
        spool = tempfile.TemporaryFile()  # noqa: SIM115
        for chunk in self.driver.read_temp(staged.temp_name):
            spool.write(chunk)
        spool.seek(0)
        return spool

    async def drop_temp(self, name: str) -> None:
        await to_thread.run_sync(self.driver.delete_temp, name)

    async def publish(self, staged: StagedBlob) -> None:
        """Move staged bytes to their content address; durable when this returns."""
        await to_thread.run_sync(self.publish_sync, staged)

    def place(self, staged: StagedBlob) -> bool:
        """Blocking: move staged bytes to their content address, durably, unless it holds them
        already: then the temporary object (or the bytes in memory) is kept (False), so that the
        caller still has the bytes should GC collect the stored copy before the caller's row takes
        hold (see `publish_kept`)."""
        key = blob_key(staged.info.sha256)
        if staged.in_memory:
            if self._shared is not None:
                return self._shared.write(key, _held(staged))
            return self.driver.write(key, _held(staged))
        if self.driver.exists(key):
            return False
        self.driver.promote(staged.temp_name, key)
        return True

    def place_many(self, staged: Sequence[StagedBlob]) -> list[bool]:
        """Blocking: `place` of each, the small bodies in memory written together (their flushes
        shared, where the driver can); per blob True when placed, False when kept (its address
        held the bytes already, or an earlier blob of the list placed them)."""
        placed: list[bool | None] = [None] * len(staged)
        small: dict[str, int] = {}  # key -> index of the first blob of the list with it
        for index, blob in enumerate(staged):
            if not blob.in_memory or self._shared is None:
                placed[index] = self.place(blob)
                continue
            key = blob_key(blob.info.sha256)
            if key in small:
                placed[index] = False
            else:
                small[key] = index
        if small:
            assert self._shared is not None
            items = [(key, _held(staged[index])) for key, index in small.items()]
            for (key, _data), written in zip(items, self._shared.write_many(items), strict=True):
                placed[small[key]] = written
        return [bool(p) for p in placed]

    def publish_kept(self, staged: StagedBlob) -> bool:
        """Blocking: make sure the bytes are at their content address, from what `place` kept if
        they are gone; False when they are gone and nothing was kept. Run it under the blob's row lock."""
        key = blob_key(staged.info.sha256)
        if self.driver.exists(key):
            return True
        if staged.in_memory:
            if staged.data is None:
                return False
            self.driver.write(key, staged.data)
            return True
        if not staged.temp_name or self.driver.temp_size(staged.temp_name) is None:
            return False
        self.driver.promote(staged.temp_name, key)
        return True

    async def discard(self, staged: StagedBlob) -> None:
        """Forget staged bytes: remove their temporary object, or drop the bytes held in memory
        (either way a later `place` of them raises KeyError)."""
        if staged.in_memory:
            staged.data = None
        elif staged.temp_name:
            await to_thread.run_sync(self.driver.delete_temp, staged.temp_name)

    def local_path(self, sha256: str) -> Path | None:
        return self.driver.local_path(blob_key(sha256))

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self.driver.read(blob_key(sha256), start, end)

    async def read_all(self, sha256: str, limit: int) -> bytes:
        """A whole (small) blob in memory, for metadata documents; refuses more than `limit` bytes."""

        def load() -> bytes:
            data = bytearray()
            for chunk in self.driver.read(blob_key(sha256)):
                data += chunk
                if len(data) > limit:
                    raise TooLarge(limit)
            return bytes(data)

        return await to_thread.run_sync(load)

    def exists(self, sha256: str) -> bool:
        return self.driver.exists(blob_key(sha256))

    def delete(self, sha256: str) -> None:
        self.driver.delete(blob_key(sha256))


def _finish_temp(driver: BlobDriver, temp: TempObject | None, hasher: _Hasher, data: bytes) -> TempObject:
    """Write the last bytes (creating the temporary object if none was) and make them durable."""
    if temp is None:
        temp = driver.create_temp()
    try:
        if data:
            _write_and_hash(temp, hasher, data)
        temp.close()
    except BaseException:
        _close_and_delete(driver, temp)
        raise
    return temp


def _held(staged: StagedBlob) -> bytes:
    """The bytes an in-memory staged blob holds; KeyError once they were discarded (as a promote
    of a removed temporary object raises)."""
    if staged.data is None:
        raise KeyError(f"staged bytes {staged.info.sha256} were discarded")
    return staged.data


def _in_memory(
    data: bytes, hasher: _Hasher, wanted: Mapping[str, str], then: Callable[[StagedBlob], T] | None
) -> tuple[StagedBlob, T | None]:
    """A small body hashed, verified against `wanted` and staged without touching storage, then
    `then` run on it."""
    if data:
        hasher.update(data)
    info = hasher.info()
    for algorithm, value in wanted.items():
        if not hmac.compare_digest(value, info.digest(algorithm)):
            raise DigestMismatch(algorithm, value, info.digest(algorithm))
    staged = StagedBlob(info=info, temp_name="", data=data, in_memory=True)
    return staged, (then(staged) if then is not None else None)


def _finish(
    driver: BlobDriver,
    temp: TempObject | None,
    hasher: _Hasher,
    data: bytes,
    wanted: Mapping[str, str],
    then: Callable[[StagedBlob], T] | None,
) -> tuple[StagedBlob, T | None]:
    """The last bytes made durable and verified against `wanted`, then `then` run on them; the
    temporary object is removed if either fails."""
    temp = _finish_temp(driver, temp, hasher, data)
    try:
        info = hasher.info()
        for algorithm, value in wanted.items():
            if not hmac.compare_digest(value, info.digest(algorithm)):
                raise DigestMismatch(algorithm, value, info.digest(algorithm))
        staged = StagedBlob(info=info, temp_name=temp.name)
        return staged, (then(staged) if then is not None else None)
    except BaseException:
        driver.delete_temp(temp.name)
        raise


def _close_and_delete(driver: BlobDriver, temp: TempObject) -> None:
    try:
        temp.close()
    finally:
        driver.delete_temp(temp.name)


def open_driver(settings: object) -> BlobDriver:
    """The driver the settings ask for: S3 when an endpoint is set, else the filesystem."""
    from artifactory.settings import Settings

    if not isinstance(settings, Settings):
        raise TypeError("open_driver takes Settings")
    if settings.s3.endpoint:
        from artifactory.blobstore.s3 import S3Driver

        return S3Driver(settings.s3)
    from artifactory.blobstore.filesystem import FilesystemDriver

    return FilesystemDriver(settings.blob_dir)
