"""The `cargo publish` request: its framing read as it streams, and the .crate checked before storing.

The body is a little-endian u32 length, the JSON metadata, another u32 length, then the .crate (a
gzip-compressed tar). The crate is staged straight from the request stream (never held in memory);
it is then read once in a worker thread: every entry under `<name>-<version>/`, no absolute path or
`..`, only files and folders, bounded expansion, and a Cargo.toml naming that very crate and version.
"""

from __future__ import annotations

import tarfile
import tomllib
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from artifactory_formats.cargo.metadata import InvalidCrate, check_new_name, check_version

from artifactory.plugin import (
    ARCHIVE_ERRORS,
    BadRequest,
    PayloadTooLarge,
    gunzip_bounded,
    inflation_limit,
    loads,
)

MAX_CRATE_BYTES = 10 * 1024 * 1024  # a repository's default max_crate_bytes
MAX_METADATA = 1024 * 1024
MAX_MANIFEST = 1024 * 1024
MAX_UNPACKED = 512 * 1024 * 1024
BOMB_RATIO = 100  # unpacked / compressed beyond which a crate is refused as a compression bomb
BOMB_MIN_BYTES = 4 * 1024 * 1024  # crates smaller than this unpacked are never called bombs
ENDS_EARLY = "the publish request ends before its declared length"


class Framed:
    """Reads the publish body's framing from the request stream, keeping only what is not yet used."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    async def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = await anext(self._chunks, None)
            if chunk is None:
                raise InvalidCrate(ENDS_EARLY)
            self._buffer += chunk
        taken, self._buffer = self._buffer[:size], self._buffer[size:]
        return taken

    async def length(self, limit: int, what: str) -> int:
        size = int.from_bytes(await self._take(4), "little")
        if size > limit:
            raise PayloadTooLarge(f"the {what} is {size} bytes, more than the {limit} allowed")
        return size

    async def metadata(self) -> dict[str, Any]:
        """The JSON metadata, its crate name and version checked."""
        body = await self._take(await self.length(MAX_METADATA, "publish metadata"))
        try:
            meta = loads(body)  # the engine's: bounded nesting, no NaN
        except BadRequest:
            raise InvalidCrate("the publish metadata is not JSON") from None
        if not isinstance(meta, dict):
            raise InvalidCrate("the publish metadata must be a JSON object")
        check_new_name(meta.get("name"))
        check_version(meta.get("vers"))
        return meta

    async def rest(self, size: int) -> AsyncIterator[bytes]:
        """Exactly `size` more bytes, and then the end of the body."""
        chunk: bytes | None = self._buffer
        while chunk is not None:
            if len(chunk) > size:
                raise InvalidCrate("the publish request has bytes after the .crate")
            size -= len(chunk)
            yield chunk
            chunk = await anext(self._chunks, None)
        if size:
            raise InvalidCrate(ENDS_EARLY)


def _bomb(limit: int) -> InvalidCrate:
    return InvalidCrate(f"the .crate expands beyond {limit} bytes ({BOMB_RATIO}-fold at most)")


def check_crate(file: BinaryIO, name: str, version: str) -> None:
    """Raise InvalidCrate unless `file` is a .crate of exactly this name and version."""
    compressed = file.seek(0, 2)
    file.seek(0)
    root = f"{name}-{version}"
    ceiling = inflation_limit(compressed, BOMB_RATIO, BOMB_MIN_BYTES, MAX_UNPACKED)
    manifest: bytes | None = None
    try:
        stream = gunzip_bounded(file, ceiling, _bomb)
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for entry in archive:
                check_entry(entry, root)
                if entry.name == f"{root}/Cargo.toml" and entry.isreg():
                    if entry.size > MAX_MANIFEST:
                        raise InvalidCrate(f"Cargo.toml is larger than {MAX_MANIFEST} bytes")
                    handle = archive.extractfile(entry)
                    manifest = handle.read() if handle is not None else None
    except InvalidCrate:
        raise  # a ValueError too, but the archive was read: its message says what is wrong
    except ARCHIVE_ERRORS as exc:
        raise InvalidCrate(f"the .crate is not a gzip-compressed tar archive: {exc}") from None
    if manifest is None:
        raise InvalidCrate(f"the .crate has no {root}/Cargo.toml")
    check_manifest(manifest, name, version)


def check_entry(entry: tarfile.TarInfo, root: str) -> None:
    path = entry.name
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or (len(parts[0]) == 2 and parts[0][1] == ":"):
        raise InvalidCrate(f"the .crate has an absolute path: {path!r}")
    if ".." in parts:
        raise InvalidCrate(f"the .crate has a path with '..': {path!r}")
    if parts[0] != root:
        raise InvalidCrate(f"the .crate has {path!r} outside its folder {root}/")
    if not (entry.isreg() or entry.isdir()):
        raise InvalidCrate(f"the .crate has {path!r}, which is neither a file nor a folder")


def check_manifest(manifest: bytes, name: str, version: str) -> None:
    try:
        package = tomllib.loads(manifest.decode("utf-8")).get("package")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidCrate(f"the .crate's Cargo.toml cannot be read: {exc}") from None
    found = f"{package.get('name')}@{package.get('version')}" if isinstance(package, dict) else "nothing"
    if found != f"{name}@{version}":
        raise InvalidCrate(f"the .crate's Cargo.toml is for {found}, the metadata for {name}@{version}")
