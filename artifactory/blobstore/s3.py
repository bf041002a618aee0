"""Blob driver on an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), via the minio client.

Layout in the bucket:  <prefix>objects/<key>  for blobs, <prefix>tmp/<name>/<part>  for temporary objects.

S3 objects cannot be appended to, so a temporary object is a run of numbered part objects
(`000000` is an empty marker written at creation, so a new temp exists before its first byte).
Each writer buffers and uploads the next part when its buffer passes PART_BYTES and on `close`, so
another process can reopen the temp and go on appending. `promote` turns the parts into one object:
a server-side compose when S3 allows it (every part but the last at least 5 MiB), otherwise a
streamed multipart upload of the concatenated parts. Either way the object appears whole or not at
all, which is what makes the promote atomic.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast
from urllib.parse import urlsplit

from minio import Minio
from minio.commonconfig import ComposeSource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from artifactory.text import ascii_digits

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

    from artifactory.settings import S3Settings

READ_CHUNK = 1024 * 1024
PART_BYTES = 8 * 1024 * 1024
COMPOSE_MIN_PART = 5 * 1024 * 1024
COMPOSE_MAX_PARTS = 10_000
UPLOAD_PART_BYTES = 16 * 1024 * 1024
MARKER_PART = 0
_MISSING = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"})


def parse_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """`host:port` keeps `secure`; an `http://` or `https://` URL decides it by its scheme."""
    endpoint = endpoint.strip()
    if "://" not in endpoint:
        host = endpoint.rstrip("/")
        if not host or "/" in host:
            raise ValueError(f"S3 endpoint must be host[:port] or http(s)://host[:port], not {endpoint!r}")
        return host, secure
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname or url.path.strip("/") or url.query:
        raise ValueError(f"S3 endpoint must be host[:port] or http(s)://host[:port], not {endpoint!r}")
    if "@" in url.netloc:
        raise ValueError("S3 endpoint must not carry credentials; use access_key and secret_key")
    return url.netloc, url.scheme == "https"


def _check_key(key: str) -> None:
    segments = key.split("/")
    if not key or "\\" in key or any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"invalid blob key {key!r}")


def _check_temp(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"invalid temp name {name!r}")


class _Part:
    __slots__ = ("number", "object_name", "size")

    def __init__(self, number: int, object_name: str, size: int) -> None:
        self.number = number
        self.object_name = object_name
        self.size = size


class _ChunkReader:
    """A `read(n)` view over an iterator of chunks, so put_object can stream it part by part."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self._pending:
                chunk = next(self._chunks, b"")
                if not chunk:
                    break
                self._pending = memoryview(chunk)
            take = len(self._pending) if size < 0 else size - len(out)
            out += self._pending[:take]
            self._pending = self._pending[take:]
        return bytes(out)


def _stream_response(response: BaseHTTPResponse) -> Iterator[bytes]:
    try:
        yield from response.stream(READ_CHUNK)
    finally:
        response.close()
        response.release_conn()


class S3Temp:
    def __init__(self, driver: S3Driver, name: str, next_part: int) -> None:
        self.name = name
        self._driver = driver
        self._next_part = next_part
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= PART_BYTES:
            self._upload()

    def close(self) -> None:
        if self._buffer:
            self._upload()

    def _upload(self) -> None:
        data = bytes(self._buffer)
        self._driver._put(self._driver._part_name(self.name, self._next_part), data)
        self._next_part += 1
        self._buffer.clear()


class S3Driver:
    def __init__(self, settings: S3Settings) -> None:
        endpoint, secure = parse_endpoint(settings.endpoint, settings.secure)
        self.bucket = settings.bucket
        self.client = Minio(
            endpoint,
            access_key=settings.access_key or None,
            secret_key=settings.secret_key or None,
            secure=secure,
            region=settings.region or None,
        )
        self.objects_prefix = f"{settings.prefix}objects/"
        self.tmp_prefix = f"{settings.prefix}tmp/"
        self._ensure_bucket(settings.region or None)

    def _ensure_bucket(self, region: str | None) -> None:
        if self.client.bucket_exists(self.bucket):
            return
        try:
            self.client.make_bucket(self.bucket, location=region)
        except S3Error as error:
            if error.code != "BucketAlreadyOwnedByYou":  # another process created it just now
                raise

    # names

    def _object(self, key: str) -> str:
        _check_key(key)
        return self.objects_prefix + key

    def _part_name(self, name: str, number: int) -> str:
        return f"{self.tmp_prefix}{name}/{number:06d}"

    def _parts(self, name: str) -> list[_Part]:
        _check_temp(name)
        folder = f"{self.tmp_prefix}{name}/"
        parts = []
        for obj in self.client.list_objects(self.bucket, prefix=folder, recursive=True):
            object_name = obj.object_name or ""
            suffix = object_name[len(folder) :]
            if ascii_digits(suffix):
                parts.append(_Part(int(suffix), object_name, obj.size or 0))
        parts.sort(key=lambda part: part.number)
        return parts

    # low-level operations

    def _put(self, object_name: str, data: bytes) -> None:
        self.client.put_object(self.bucket, object_name, io.BytesIO(data), len(data))

    def _stat_size(self, object_name: str) -> int | None:
        try:
            return self.client.stat_object(self.bucket, object_name).size or 0
        except S3Error as error:
            if error.code in _MISSING:
                return None
            raise

    def _remove(self, object_names: list[str]) -> None:
        errors = self.client.remove_objects(self.bucket, (DeleteObject(name) for name in object_names))
        for error in errors:  # the call is lazy: nothing is deleted until this is iterated
            if error.code not in _MISSING:
                raise OSError(f"cannot delete {error.name} from bucket {self.bucket}: {error.message}")

    def _get(self, object_name: str, offset: int = 0, length: int = 0) -> Iterator[bytes]:
        """Eagerly opened, so a missing object raises S3Error here rather than on iteration."""
        response = self.client.get_object(self.bucket, object_name, offset=offset, length=length)
        return _stream_response(response)

    # temporary objects

    def create_temp(self) -> S3Temp:
        name = uuid.uuid4().hex
        self._put(self._part_name(name, MARKER_PART), b"")
        return S3Temp(self, name, MARKER_PART + 1)

    def append_temp(self, name: str) -> S3Temp:
        parts = self._parts(name)
        if not parts:
            raise KeyError(name)
        return S3Temp(self, name, parts[-1].number + 1)

    def temp_size(self, name: str) -> int | None:
        parts = self._parts(name)
        if not parts:
            return None
        return sum(part.size for part in parts)

    def read_temp(self, name: str) -> Iterator[bytes]:
        parts = self._parts(name)
        if not parts:
            raise KeyError(name)
        return self._read_parts(parts)

    def _read_parts(self, parts: list[_Part]) -> Iterator[bytes]:
        for part in parts:
            if part.size:
                yield from self._get(part.object_name)

    def delete_temp(self, name: str) -> None:
        # The marker goes last, so a delete cut short still leaves a temp that list_temps reports.
        names = [part.object_name for part in reversed(self._parts(name))]
        if names:
            self._remove(names)

    def list_temps(self) -> Iterator[tuple[str, float]]:
        current: str | None = None
        newest = 0.0
        for obj in self.client.list_objects(self.bucket, prefix=self.tmp_prefix, recursive=True):
            name, _, part = (obj.object_name or "")[len(self.tmp_prefix) :].partition("/")
            if not part:
                continue
            mtime = obj.last_modified.timestamp() if obj.last_modified else 0.0
            if name != current:  # the listing is sorted, so one temp's parts are contiguous
                if current is not None:
                    yield current, newest
                current, newest = name, mtime
            else:
                newest = max(newest, mtime)
        if current is not None:
            yield current, newest

    def promote(self, name: str, key: str) -> None:
        target = self._object(key)
        if self._stat_size(target) is not None:
            self.delete_temp(name)
            return
        parts = self._parts(name)
        if not parts:
            raise KeyError(name)
        data_parts = [part for part in parts if part.size]
        composable = 0 < len(data_parts) <= COMPOSE_MAX_PARTS and all(
            part.size >= COMPOSE_MIN_PART for part in data_parts[:-1]
        )
        if composable:
            sources = [ComposeSource(self.bucket, part.object_name) for part in data_parts]
            self.client.compose_object(self.bucket, target, sources)
        else:
            length = sum(part.size for part in data_parts)
            part_size = max(UPLOAD_PART_BYTES, -(-length // COMPOSE_MAX_PARTS))
            reader = _ChunkReader(self._read_parts(data_parts))
            self.client.put_object(
                self.bucket,
                target,
                cast(BinaryIO, reader),
                length,
                part_size=part_size,
                num_parallel_uploads=1,
            )
        self._remove([part.object_name for part in reversed(parts)])

    # objects

    def write(self, key: str, data: bytes) -> bool:
        target = self._object(key)
        if self._stat_size(target) is not None:
            return False
        self._put(target, data)  # one PUT: the object appears whole or not at all
        return True

    def exists(self, key: str) -> bool:
        return self._stat_size(self._object(key)) is not None

    def size(self, key: str) -> int | None:
        return self._stat_size(self._object(key))

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        object_name = self._object(key)
        if end is not None and end <= start:
            if self._stat_size(object_name) is None:
                raise KeyError(key)
            return iter(())
        try:
            return self._get(object_name, offset=start, length=0 if end is None else end - start)
        except S3Error as error:
            if error.code in _MISSING:
                raise KeyError(key) from None
            if error.code == "InvalidRange":  # start is at or past the end of the object
                return iter(())
            raise

    def local_path(self, key: str) -> Path | None:
        _check_key(key)
        return None

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, self._object(key))  # S3 deletes are idempotent

    def list_keys(self) -> Iterator[tuple[str, float]]:
        for obj in self.client.list_objects(self.bucket, prefix=self.objects_prefix, recursive=True):
            object_name = obj.object_name or ""
            mtime = obj.last_modified.timestamp() if obj.last_modified else 0.0
            yield object_name[len(self.objects_prefix) :], mtime
