"""Moving data: `artifactory export`, `artifactory import` and `artifactory backup`.

An export archive (version 1) is a tar file, gzip-compressed when its name ends in .gz or .tgz,
whose members come in this order, so that an import reads it in one pass (even from a pipe):

    manifest.json      {"format": "artifactory-export", "version": 1, "server": ..., "exported_at": ...,
                        "repository": {"name", "format", "type", "config"}  (secrets removed),
                        "components": N, "assets": N, "bytes": N,
                        "blobs": [{"sha256": hex, "size": bytes}, ...]}
    components.jsonl   one component a line: id (local to the archive), namespace, name, version,
                       attributes, created_at
    assets.jsonl       one asset a line: path, sha256, content_type, attributes, component (an id
                       above, or null), conflict_key, created_at, updated_at, last_downloaded,
                       download_count
    blobs/sha256/<h[0:2]>/<h[2:4]>/<h>   the bytes of each blob named in the manifest, in its order

It is engine-level data (the four things every format maps onto), so one archive format serves every
format. An import checks everything that needs no bytes first, then verifies each blob by digest and
size while staging it through the blob store's streaming ingest (temporary objects, not yet at their
content address); any failure discards what was staged and creates nothing. Only then are the blobs
reserved and published (durable), and the repository with all its components and assets is written
in one transaction, so no half-imported repository is ever visible.

`artifactory backup DIR` (SQLite + filesystem blobs only) takes a consistent snapshot of the database
with SQLite's online backup API while the server keeps serving, then copies (or hard-links) the blob
files that snapshot names and DIR does not hold yet. docs/operations.md says how to restore.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import anyio
import pluggy
from sqlalchemy import Connection, insert, select
from sqlalchemy.engine import make_url

from artifactory import __version__
from artifactory.blobstore.store import BlobInfo, DigestMismatch, StagedBlob, TooLarge, blob_key
from artifactory.db import queries
from artifactory.db.models import MAX_PATH, Asset, Blob, Component, Repository, utcnow
from artifactory.events import RepositoryEvent
from artifactory.progress import Progress, human
from artifactory.repository import config as repo_config

if TYPE_CHECKING:
    from artifactory.state import AppState

hookimpl = pluggy.HookimplMarker("artifactory")

ARCHIVE_FORMAT = "artifactory-export"
ARCHIVE_VERSION = 1
MANIFEST, COMPONENTS, ASSETS = "manifest.json", "components.jsonl", "assets.jsonl"
BLOB_MEMBER = re.compile(r"^blobs/sha256/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})$")
CHUNK = 1024 * 1024
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024 * 1024
BATCH = 500
# Blobs are mostly compressed already (wheels, tarballs, layers): a fast level loses little.
GZIP_LEVEL = 1
# Config keys that hold credentials: never written to an archive.
SECRET_KEYS = re.compile(r"password|secret|token", re.IGNORECASE)
# How long an import's blob reservation keeps GC away between publishing and the commit.
RESERVE_SECONDS = 3600
OPERATOR = "cli"
POSTGRES_S3_MESSAGE = (
    "artifactory backup copies the embedded default (SQLite and filesystem blobs) only. "
    "This server uses {what}: back up PostgreSQL with pg_dump (or continuous archiving) and the "
    "S3 bucket with versioning or replication; export single repositories with `artifactory export`. "
    "See docs/operations.md."
)


class TransferError(Exception):
    """An export, import or backup refused or failed; the message says why."""


# -- serialisation helpers ----------------------------------------------------------------------
def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _parse_when(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TransferError(f"{what} must be an ISO 8601 time or null")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TransferError(f"{what} is not an ISO 8601 time: {value[:40]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def public_definition(row: dict[str, Any]) -> dict[str, Any]:
    """A repository's definition as an archive carries it: no credentials, no server state."""
    config = {k: v for k, v in row["config"].items() if not SECRET_KEYS.search(k)}
    url = config.get("url")
    if isinstance(url, str) and "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        scheme, _, rest = url.partition("//")
        config["url"] = f"{scheme}//{rest.split('@', 1)[1]}"
    return {"name": row["name"], "format": row["format"], "type": row["type"], "config": config}


# -- export --------------------------------------------------------------------------------------
@dataclass
class Summary:
    command: str
    repository: str = ""
    format: str = ""
    type: str = ""
    path: str = ""
    components: int = 0
    assets: int = 0
    blobs: int = 0
    bytes: int = 0
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = {
            "command": self.command,
            "repository": self.repository,
            "format": self.format,
            "type": self.type,
            "path": self.path,
            "components": self.components,
            "assets": self.assets,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "mib_per_second": round(self.bytes / 1048576 / self.seconds, 1) if self.seconds else None,
        }
        return {**data, **self.details}


def _snapshot_connection(state: AppState) -> Connection:
    """A read connection whose transaction sees one moment of the database (REPEATABLE READ on
    PostgreSQL; on SQLite every read transaction already does)."""
    connection = state.db.read_engine.connect()
    if not state.db.is_sqlite:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
    return connection


def _read_repository(
    state: AppState, name: str, components: IO[bytes], assets: IO[bytes]
) -> tuple[dict[str, Any], dict[str, int], int, int]:
    """Write a repository's components and assets as JSON lines, all read in one transaction.
    Returns its definition, its blobs {sha256: size} in first-use order, and the two counts."""
    blobs: dict[str, int] = {}
    n_components = n_assets = 0
    with _snapshot_connection(state) as connection, connection.begin():
        row = connection.execute(select(Repository).where(Repository.name == name)).first()
        if row is None:
            raise TransferError(f"no repository {name!r}")
        definition = public_definition(
            {"name": row.name, "format": row.format, "type": row.type, "config": dict(row.config or {})}
        )
        definition["config"].pop("_state", None)
        streaming = connection.execution_options(stream_results=True, yield_per=1000)
        for c in streaming.execute(
            select(Component).where(Component.repository_id == row.id).order_by(Component.id)
        ):
            components.write(
                _line(
                    {
                        "id": c.id,
                        "namespace": c.namespace,
                        "name": c.name,
                        "version": c.version,
                        "attributes": c.attributes or {},
                        "created_at": _when(c.created_at),
                    }
                )
            )
            n_components += 1
        query = (
            select(
                Asset.path,
                Asset.blob_sha256,
                Asset.content_type,
                Asset.attributes,
                Asset.component_id,
                Asset.conflict_key,
                Asset.created_at,
                Asset.updated_at,
                Asset.last_downloaded,
                Asset.download_count,
                Blob.size,
            )
            .join(Blob, Blob.sha256 == Asset.blob_sha256)
            .where(Asset.repository_id == row.id)
            .order_by(Asset.path)
        )
        for a in streaming.execute(query):
            assets.write(
                _line(
                    {
                        "path": a.path,
                        "sha256": a.blob_sha256,
                        "content_type": a.content_type,
                        "attributes": a.attributes or {},
                        "component": a.component_id,
                        "conflict_key": a.conflict_key,
                        "created_at": _when(a.created_at),
                        "updated_at": _when(a.updated_at),
                        "last_downloaded": _when(a.last_downloaded),
                        "download_count": int(a.download_count or 0),
                    }
                )
            )
            blobs.setdefault(a.blob_sha256, int(a.size))
            n_assets += 1
    return definition, blobs, n_components, n_assets


class _HashingReader:
    """A file object over a blob's chunks that hashes what passes through (for tarfile.addfile)."""

    def __init__(self, chunks: Iterator[bytes], progress: Progress) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when -1): fewer only at the end of the blob."""
        parts: list[bytes] = []
        wanted = size
        while size < 0 or wanted > 0:
            if not self._buffer:
                chunk = next(self._chunks, b"")
                if not chunk:
                    break
                self.sha256.update(chunk)
                self.size += len(chunk)
                self.progress.advance(nbytes=len(chunk))
                self._buffer = memoryview(chunk)
            take = len(self._buffer) if size < 0 else min(wanted, len(self._buffer))
            parts.append(bytes(self._buffer[:take]))
            self._buffer = self._buffer[take:]
            wanted -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _tar_info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    return info


def _compressed(path: str) -> bool:
    return path.endswith((".gz", ".tgz"))


def export_repository(state: AppState, name: str, target: str, progress: Progress) -> Summary:
    """Write repository `name` to the archive `target` ("-": standard output). A file appears only
    when complete: the archive is written beside it under a temporary name first."""
    started = time.monotonic()
    summary = Summary("export", repository=name, path=target)
    now = time.time()
    with tempfile.TemporaryFile() as components, tempfile.TemporaryFile() as assets:
        definition, blobs, summary.components, summary.assets = _read_repository(
            state, name, components, assets
        )
        summary.format, summary.type = definition["format"], definition["type"]
        summary.blobs, summary.bytes = len(blobs), sum(blobs.values())
        manifest = {
            "format": ARCHIVE_FORMAT,
            "version": ARCHIVE_VERSION,
            "server": __version__,
            "exported_at": _when(datetime.now(UTC)),
            "repository": definition,
            "components": summary.components,
            "assets": summary.assets,
            "bytes": summary.bytes,
            "blobs": [{"sha256": sha256, "size": size} for sha256, size in blobs.items()],
        }
        partial: Path | None = None
        if target == "-":
            output: IO[bytes] = sys.stdout.buffer
        else:
            final = Path(target)
            partial = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
            try:
                output = open(partial, "xb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise TransferError(f"cannot write {target}: {exc.strerror or exc}") from None
        current = ""
        try:
            sink: IO[bytes] = output
            if _compressed(target):
                gz = gzip.GzipFile(fileobj=output, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
                sink = cast(IO[bytes], gz)
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tar:
                tar.copybufsize = CHUNK  # type: ignore[attr-defined]  # else 16 KiB at a time
                data = json.dumps(manifest, indent=1).encode()
                tar.addfile(_tar_info(MANIFEST, len(data), now), _BytesReader(data))
                for member, spool in ((COMPONENTS, components), (ASSETS, assets)):
                    size = spool.tell()
                    spool.seek(0)
                    tar.addfile(_tar_info(member, size, now), spool)
                progress.start("blobs", len(blobs), summary.bytes)
                for sha256, size in blobs.items():
                    current = sha256
                    reader = _HashingReader(_read_blob(state, sha256), progress)
                    tar.addfile(_tar_info(f"blobs/{blob_key(sha256)}", size, now), reader)
                    if reader.size != size or reader.sha256.hexdigest() != sha256:
                        raise TransferError(
                            f"blob {sha256} in the blob store does not match its digest or size: "
                            "the stored bytes are damaged"
                        )
                    progress.advance(items=1)
                progress.finish()
            if sink is not output:
                sink.close()
            output.flush()
            if partial is not None:
                os.fsync(output.fileno())
                output.close()
                os.replace(partial, target)
                partial = None
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise TransferError("the reader of the archive went away") from None
            if str(exc) == "unexpected end of data":  # tarfile: fewer bytes than the blob's size
                raise TransferError(
                    f"blob {current} in the blob store is shorter than recorded: the stored bytes are damaged"
                ) from None
            raise TransferError(f"writing {target}: {exc}") from None
        finally:
            if partial is not None:
                output.close()
                partial.unlink(missing_ok=True)
    summary.seconds = time.monotonic() - started
    return summary


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        chunk = bytes(self._data[self._offset : end])
        self._offset += len(chunk)
        return chunk


def _read_blob(state: AppState, sha256: str) -> Iterator[bytes]:
    gone = TransferError(
        f"blob {sha256} is gone from the blob store (deleted since the export began?); run the export again"
    )
    try:
        chunks = state.blobs.read(sha256)
    except KeyError:
        with state.db.read() as session:  # a small blob whose row keeps its bytes
            kept = queries.inline_bytes(session, sha256)
        if kept is None:
            raise gone from None
        yield kept
        return
    try:
        yield from chunks
    except KeyError:
        raise gone from None


# -- import: reading and checking ----------------------------------------------------------------
@dataclass
class Archive:
    """What the metadata members of an archive said, checked; the records wait in spool files."""

    manifest: dict[str, Any]
    definition: dict[str, Any]
    blobs: dict[str, int]
    components: IO[bytes]
    assets: IO[bytes]
    n_components: int = 0
    n_assets: int = 0


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ".." in parts or re.match(r"^[A-Za-z]:", name):
        raise TransferError(f"refusing the archive: member {name!r} escapes the archive")
    if not member.isreg() or member.issparse():
        kind = (
            "a symbolic link"
            if member.issym()
            else "a hard link"
            if member.islnk()
            else "a device"
            if member.isdev()
            else "a directory"
            if member.isdir()
            else "not a regular file"
        )
        raise TransferError(f"refusing the archive: member {name!r} is {kind}")


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> Iterator[bytes]:
    if member.size > limit:
        raise TransferError(f"refusing the archive: {member.name} is larger than {limit} bytes")
    handle = tar.extractfile(member)
    assert handle is not None
    remaining = member.size
    while remaining:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk:
            raise TransferError(f"refusing the archive: {member.name} is cut short")
        remaining -= len(chunk)
        yield chunk


def _check_manifest(data: bytes, formats: Any) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise TransferError("refusing the archive: manifest.json is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise TransferError("refusing the archive: it is not an artifactory export (manifest.json)")
    version = manifest.get("version")
    if version != ARCHIVE_VERSION:
        raise TransferError(
            f"refusing the archive: unknown archive format version {version!r}; "
            f"this server ({__version__}) reads version {ARCHIVE_VERSION}"
        )
    definition = manifest.get("repository")
    if not isinstance(definition, dict) or not isinstance(definition.get("config"), dict):
        raise TransferError("refusing the archive: the manifest has no repository definition")
    fmt = definition.get("format")
    if not isinstance(fmt, str) or fmt not in formats:
        raise TransferError(
            f"refusing the archive: this server has no format {fmt!r} "
            f"(it has {', '.join(formats.ids())}); install the plugin that provides it"
        )
    if not isinstance(manifest.get("blobs"), list):
        raise TransferError("refusing the archive: the manifest lists no blobs")
    return manifest


def _blob_list(manifest: dict[str, Any]) -> dict[str, int]:
    blobs: dict[str, int] = {}
    for entry in manifest["blobs"]:
        sha256 = entry.get("sha256") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise TransferError(f"refusing the archive: the manifest names a blob by {sha256!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise TransferError(f"refusing the archive: blob {sha256} has no valid size")
        if sha256 in blobs:
            raise TransferError(f"refusing the archive: the manifest lists blob {sha256} twice")
        blobs[sha256] = size
    return blobs


def _text(record: dict[str, Any], key: str, what: str, limit: int, optional: bool = False) -> str | None:
    value = record.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise TransferError(f"refusing the archive: {what} has no valid {key}")
    return value


def _attributes(record: dict[str, Any], what: str) -> dict[str, Any]:
    value = record.get("attributes", {})
    if not isinstance(value, dict) or "\\u0000" in json.dumps(value):
        raise TransferError(f"refusing the archive: {what} has invalid attributes")
    return value


def _records(spool: IO[bytes], member: str) -> Iterator[dict[str, Any]]:
    spool.seek(0)
    for number, raw in enumerate(iter(lambda: spool.readline(MAX_LINE_BYTES + 1), b""), start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise TransferError(f"refusing the archive: line {number} of {member} is too long")
        try:
            record = json.loads(raw)
        except ValueError:
            raise TransferError(f"refusing the archive: line {number} of {member} is not JSON") from None
        if not isinstance(record, dict):
            raise TransferError(f"refusing the archive: line {number} of {member} is not an object")
        yield record


def _check_path(path: str) -> None:
    segments = path.split("/")
    if not path or path.startswith("/") or ".." in segments or "." in segments:
        raise TransferError(f"refusing the archive: asset path {path!r} escapes its repository")


def _check_records(archive: Archive) -> None:
    """Every component and asset well-formed, unique, and linked only to what the archive holds."""
    ids: set[int] = set()
    coordinates: set[tuple[str, str, str]] = set()
    for record in _records(archive.components, COMPONENTS):
        what = f"component {str(record.get('name'))[:80]!r}"
        local = record.get("id")
        if not isinstance(local, int) or isinstance(local, bool) or local in ids:
            raise TransferError(f"refusing the archive: {what} has a missing or repeated id")
        ids.add(local)
        namespace, cname, version = (
            _text(record, k, what, 255) or "" for k in ("namespace", "name", "version")
        )
        if (namespace, cname, version) in coordinates:
            raise TransferError(f"refusing the archive: {what} appears twice")
        coordinates.add((namespace, cname, version))
        _attributes(record, what)
        _parse_when(record.get("created_at"), f"{what} created_at")
        archive.n_components += 1
    paths: set[str] = set()
    used: set[str] = set()
    for record in _records(archive.assets, ASSETS):
        path = _text(record, "path", "an asset", MAX_PATH) or ""
        what = f"asset {path[:200]!r}"
        _check_path(path)
        if path in paths:
            raise TransferError(f"refusing the archive: {what} appears twice")
        paths.add(path)
        sha256 = record.get("sha256")
        if sha256 not in archive.blobs:
            raise TransferError(f"refusing the archive: {what} names a blob the manifest does not list")
        used.add(str(sha256))
        component = record.get("component")
        if component is not None and component not in ids:
            raise TransferError(f"refusing the archive: {what} names component {component!r}, not in it")
        _text(record, "content_type", what, 255)
        _text(record, "conflict_key", what, 255, optional=True)
        _attributes(record, what)
        for key in ("created_at", "updated_at", "last_downloaded"):
            _parse_when(record.get(key), f"{what} {key}")
        count = record.get("download_count", 0)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 2**63:
            raise TransferError(f"refusing the archive: {what} has an invalid download_count")
        archive.n_assets += 1
    unused = set(archive.blobs) - used
    if unused:
        raise TransferError(f"refusing the archive: blob {min(unused)} is listed but no asset uses it")


def _check_definition(state: AppState, manifest: dict[str, Any], name: str | None) -> dict[str, Any]:
    definition = dict(manifest["repository"])
    body = {**definition["config"], "name": name or definition.get("name"), "format": definition["format"]}
    body["type"] = definition.get("type")
    try:
        checked = repo_config.validate(body, state.formats)
    except repo_config.ConfigError as exc:
        raise TransferError(f"refusing the archive: its repository definition: {exc}") from None
    with state.db.read() as session:
        if session.scalar(select(Repository.id).where(Repository.name == checked["name"])) is not None:
            raise TransferError(
                f"repository {checked['name']!r} already exists; import it under another name with --as"
            )
        try:
            state.engine.repos._check_members(session, checked)
        except repo_config.ConfigError as exc:
            raise TransferError(f"refusing the archive: {exc}") from None
    return checked


# -- import: staging, then one commit -----------------------------------------------------------
async def _stage_blobs(
    state: AppState, tar: tarfile.TarFile, first: tarfile.TarInfo | None, archive: Archive, progress: Progress
) -> dict[str, StagedBlob]:
    """Ingest each blob member, verified by digest and size, into a temporary object."""
    staged: dict[str, StagedBlob] = {}
    progress.start("blobs", len(archive.blobs), sum(archive.blobs.values()))
    try:
        member = first
        while member is not None:
            _check_member(member)
            match = BLOB_MEMBER.match(member.name)
            if match is None or match.group(1) + match.group(2) != match.group(3)[:4]:
                raise TransferError(f"refusing the archive: unexpected member {member.name!r}")
            sha256 = match.group(3)
            if sha256 not in archive.blobs:
                raise TransferError(f"refusing the archive: blob {sha256} is not in the manifest")
            if sha256 in staged:
                raise TransferError(f"refusing the archive: blob {sha256} appears twice")
            size = archive.blobs[sha256]
            if member.size != size:
                raise TransferError(
                    f"refusing the archive: blob {sha256} holds {member.size} bytes, the manifest says {size}"
                )

            async def chunks(source: tarfile.TarInfo = member, limit: int = size) -> AsyncIterator[bytes]:
                for chunk in _read_member(tar, source, limit):
                    progress.advance(nbytes=len(chunk))
                    yield chunk

            try:
                staged[sha256] = await state.blobs.ingest(chunks(), {"sha256": sha256}, max_size=size)
            except DigestMismatch as exc:
                raise TransferError(
                    f"refusing the archive: blob {sha256} does not match its digest ({exc})"
                ) from None
            except TooLarge:
                raise TransferError(
                    f"refusing the archive: blob {sha256} is larger than the manifest says"
                ) from None
            progress.advance(items=1)
            member = tar.next()
        missing = set(archive.blobs) - set(staged)
        if missing:
            raise TransferError(f"refusing the archive: blob {min(missing)} is listed but not in the archive")
        progress.finish()
    except BaseException:
        with anyio.CancelScope(shield=True):
            for blob in staged.values():
                await state.blobs.discard(blob)
        raise
    return staged


def _reserve(state: AppState, infos: list[BlobInfo]) -> None:
    until = utcnow() + timedelta(seconds=RESERVE_SECONDS)
    for start in range(0, len(infos), BATCH):
        with state.db.write() as session:
            for info in infos[start : start + BATCH]:
                queries.touch_blob(session, info, until)


def _commit(state: AppState, checked: dict[str, Any], archive: Archive, infos: list[BlobInfo]) -> int:
    """The repository, its components and its assets in one transaction; returns the repository id."""
    with state.db.write() as session:
        if session.scalar(select(Repository.id).where(Repository.name == checked["name"])) is not None:
            raise TransferError(f"repository {checked['name']!r} already exists")
        state.engine.repos._check_members(session, checked)
        repository = Repository(**checked)  # its revision starts at `first_revision()`
        session.add(repository)
        session.flush()
        for info in infos:
            queries.touch_blob(session, info)
            if not state.blobs.exists(info.sha256):
                raise TransferError(f"blob {info.sha256} vanished before it was linked; import again")
        ids: dict[int, int] = {}
        table = Component.__table__
        pending: list[dict[str, Any]] = []

        def flush_components() -> None:
            statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)  # type: ignore[arg-type]
            rows = [{k: v for k, v in r.items() if k != "_local"} for r in pending]
            for record, (new_id,) in zip(pending, session.execute(statement, rows), strict=True):
                ids[record["_local"]] = new_id
            pending.clear()

        for record in _records(archive.components, COMPONENTS):
            pending.append(
                {
                    "_local": record["id"],
                    "repository_id": repository.id,
                    "namespace": record["namespace"],
                    "name": record["name"],
                    "version": record["version"],
                    "attributes": record.get("attributes") or {},
                    "created_at": _parse_when(record.get("created_at"), "created_at") or utcnow(),
                }
            )
            if len(pending) >= BATCH:
                flush_components()
        if pending:
            flush_components()
        assets: list[dict[str, Any]] = []
        for record in _records(archive.assets, ASSETS):
            now = utcnow()
            assets.append(
                {
                    "repository_id": repository.id,
                    "path": record["path"],
                    "blob_sha256": record["sha256"],
                    "content_type": record["content_type"],
                    "attributes": record.get("attributes") or {},
                    "component_id": None if record.get("component") is None else ids[record["component"]],
                    "conflict_key": record.get("conflict_key"),
                    "created_at": _parse_when(record.get("created_at"), "created_at") or now,
                    "updated_at": _parse_when(record.get("updated_at"), "updated_at") or now,
                    "last_downloaded": _parse_when(record.get("last_downloaded"), "last_downloaded"),
                    "download_count": record.get("download_count", 0),
                }
            )
            if len(assets) >= BATCH:
                session.execute(insert(Asset.__table__), assets)  # type: ignore[arg-type]
                assets.clear()
        if assets:
            session.execute(insert(Asset.__table__), assets)  # type: ignore[arg-type]
        return int(repository.id)


def import_archive(state: AppState, source: str, name: str | None, progress: Progress) -> Summary:
    started = time.monotonic()
    summary = Summary("import", path=source)
    try:
        handle: IO[bytes] = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise TransferError(f"cannot read {source}: {exc}") from None
    with handle, tempfile.TemporaryFile() as components, tempfile.TemporaryFile() as assets:
        try:
            tar = tarfile.open(fileobj=_decompressed(handle), mode="r|", bufsize=CHUNK)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise TransferError(
                f"refusing the archive {source}: damaged, cut short or not a tar file ({exc})"
            ) from None
        with tar:
            try:
                archive, checked, first = _read_metadata(state, tar, name, components, assets)
                summary.repository, summary.format, summary.type = (
                    checked["name"],
                    checked["format"],
                    checked["type"],
                )
                staged = anyio.run(_stage_blobs, state, tar, first, archive, progress)
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise TransferError(f"refusing the archive: it is damaged or cut short ({exc})") from None
        infos = sorted((s.info for s in staged.values()), key=lambda i: i.sha256)
        try:
            _reserve(state, infos)
            progress.start("publish", len(staged), 0)
            for blob in staged.values():
                state.blobs.publish_sync(blob)
                progress.advance(items=1)
            progress.finish()
        except BaseException:
            for blob in staged.values():
                state.blobs.driver.delete_temp(blob.temp_name)
            raise
        _commit(state, checked, archive, infos)
    state.engine.repos.forget(checked["name"])
    summary.components, summary.assets = archive.n_components, archive.n_assets
    summary.blobs, summary.bytes = len(infos), sum(i.size for i in infos)
    summary.seconds = time.monotonic() - started
    summary.details["exported_from"] = archive.definition.get("name")
    _audit(
        state,
        "repository.imported",
        repository=checked["name"],
        details={"from": source, "components": summary.components, "assets": summary.assets},
    )
    state.engine.fire(
        "artifactory_repository_created",
        event=RepositoryEvent(checked["name"], checked["format"], checked["type"], OPERATOR),
    )
    return summary


def _decompressed(handle: IO[bytes]) -> IO[bytes]:
    """The archive's tar stream: gunzipped when it starts with gzip's magic number."""
    reader = handle if isinstance(handle, io.BufferedReader) else io.BufferedReader(cast(Any, handle))
    if reader.peek(2)[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=reader, mode="rb"))
    return cast(IO[bytes], reader)


def _read_metadata(
    state: AppState, tar: tarfile.TarFile, name: str | None, components: IO[bytes], assets: IO[bytes]
) -> tuple[Archive, dict[str, Any], tarfile.TarInfo | None]:
    """Read manifest, components and assets (in that order) and check everything that needs no
    blob bytes. Returns the checked archive, the repository to create and the first blob member."""
    member = tar.next()
    if member is None:
        raise TransferError("refusing the archive: it is empty")
    _check_member(member)
    if member.name != MANIFEST:
        raise TransferError(f"refusing the archive: it must start with {MANIFEST}, not {member.name!r}")
    manifest = _check_manifest(b"".join(_read_member(tar, member, MAX_MANIFEST_BYTES)), state.formats)
    archive = Archive(manifest, manifest["repository"], _blob_list(manifest), components, assets)
    for expected, spool in ((COMPONENTS, components), (ASSETS, assets)):
        member = tar.next()
        if member is None:
            raise TransferError(f"refusing the archive: {expected} is missing")
        _check_member(member)
        if member.name != expected:
            raise TransferError(f"refusing the archive: expected {expected}, found {member.name!r}")
        for chunk in _read_member(tar, member, 1 << 62):
            spool.write(chunk)
    checked = _check_definition(state, manifest, name)
    _check_records(archive)
    return archive, checked, tar.next()


# -- backup --------------------------------------------------------------------------------------
def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_verified(source: Path, target: Path, sha256: str) -> int:
    """Copy a blob file to `target` through a temporary name, checking its digest on the way."""
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(source, "rb") as reader, open(partial, "xb") as writer:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        if digest.hexdigest() != sha256:
            raise TransferError(f"blob {sha256} in the blob store does not match its digest: it is damaged")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return size


def backup(state: AppState, directory: Path, link: bool, prune: bool, progress: Progress) -> Summary:
    started = time.monotonic()
    settings = state.settings
    database = _sqlite_path(settings.resolved_database_url)
    if database is None or settings.s3.endpoint:
        what = "PostgreSQL" if database is None else "an S3 blob store"
        if database is None and settings.s3.endpoint:
            what = "PostgreSQL and an S3 blob store"
        raise BackupUnsupported(POSTGRES_S3_MESSAGE.format(what=what))
    summary = Summary("backup", path=str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for stale in directory.glob(".artifactory.db.*.partial"):
        stale.unlink(missing_ok=True)
    snapshot = directory / f".artifactory.db.{uuid.uuid4().hex[:8]}.partial"
    try:
        progress.start("database", 1, database.stat().st_size)
        source = sqlite3.connect(database, timeout=15)
        try:
            target = sqlite3.connect(snapshot)
            try:
                # One step (pages=-1): a single read transaction, so the copy is one moment of the
                # database; in WAL mode the server's writers carry on meanwhile.
                source.backup(target)
                if target.execute("PRAGMA quick_check").fetchone() != ("ok",):
                    raise TransferError("the database snapshot failed its integrity check")
                # Blobs whose rows keep their bytes (`blob.data`) are in the snapshot already.
                rows = target.execute(
                    "SELECT b.sha256, b.size, EXISTS (SELECT 1 FROM asset a WHERE a.blob_sha256 = b.sha256) "
                    "FROM blob b WHERE b.data IS NULL ORDER BY b.sha256"
                ).fetchall()
                in_database = target.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM blob WHERE data IS NOT NULL"
                ).fetchone()
                counts = {
                    table: target.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
                    for table in ("repository", "component", "asset")
                }
            finally:
                target.close()
        finally:
            source.close()
        progress.advance(items=1, nbytes=snapshot.stat().st_size)
        progress.finish()
        summary.details.update(counts)
        summary.assets, summary.components = counts["asset"], counts["component"]
        copied, linked, unchanged, missing = _backup_blobs(state, directory, rows, link, progress)
        if missing:
            raise TransferError(
                f"{len(missing)} blob(s) that assets use are missing from the blob store "
                f"(first: {missing[0]}); the backup is incomplete and was not kept"
            )
        _fsync(snapshot)
        os.replace(snapshot, directory / "artifactory.db")
    finally:
        snapshot.unlink(missing_ok=True)
    secret = Path(settings.data_dir) / "token.secret"
    if secret.exists():
        shutil.copyfile(secret, directory / "token.secret")
    pruned = _prune(directory, {row[0] for row in rows}) if prune else 0
    summary.blobs = copied + linked + unchanged + int(in_database[0])
    summary.bytes = sum(int(row[1]) for row in rows) + int(in_database[1])
    summary.seconds = time.monotonic() - started
    summary.details.update(
        {
            "copied": copied,
            "linked": linked,
            "unchanged": unchanged,
            "in_database": int(in_database[0]),
            "pruned": pruned,
            "database": str(directory / "artifactory.db"),
        }
    )
    manifest = {"server": __version__, "taken_at": _when(datetime.now(UTC)), **summary.as_dict()}
    (directory / "backup.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return summary


class BackupUnsupported(TransferError):
    """`backup` on PostgreSQL or S3: the operator is told which tools to use instead."""


def _backup_blobs(
    state: AppState, directory: Path, rows: list[tuple[str, int, int]], link: bool, progress: Progress
) -> tuple[int, int, int, list[str]]:
    copied = linked = unchanged = 0
    missing: list[str] = []
    objects = directory / "blobs" / "objects"
    progress.start("blobs", len(rows), sum(int(r[1]) for r in rows))
    for sha256, size, referenced in rows:
        key = blob_key(sha256)
        target = objects / key
        source = state.blobs.local_path(sha256)
        if target.is_file() and target.stat().st_size == size:
            unchanged += 1
        elif source is None or not source.is_file():
            # A row without bytes that nothing uses is an upload that had not promoted its blob yet
            # (or one GC is removing): not needed. One that an asset uses is a real loss.
            if referenced:
                missing.append(sha256)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            done = False
            if link:
                try:
                    os.link(source, target)
                    linked += 1
                    done = True
                except FileExistsError:
                    target.unlink()
                    os.link(source, target)
                    linked += 1
                    done = True
                except OSError:
                    done = False  # another filesystem: copy instead
            if not done:
                _copy_verified(source, target, sha256)
                copied += 1
        progress.advance(items=1, nbytes=int(size))
    progress.finish()
    return copied, linked, unchanged, missing


def _prune(directory: Path, keep: set[str]) -> int:
    """Remove blob files of earlier backups that the new snapshot no longer names."""
    removed = 0
    for dirpath, _dirs, files in os.walk(directory / "blobs" / "objects"):
        for filename in files:
            if filename not in keep:
                os.unlink(os.path.join(dirpath, filename))
                removed += 1
    return removed


# -- the command line ----------------------------------------------------------------------------
def _report(summary: Summary, as_json: bool, to_stderr: bool = False) -> None:
    stream = sys.stderr if to_stderr else sys.stdout
    if as_json:
        print(json.dumps(summary.as_dict()), file=stream, flush=True)
        return
    rate = f" ({human(summary.bytes / summary.seconds)}/s)" if summary.seconds else ""
    what = f" {summary.repository} ({summary.format} {summary.type})" if summary.repository else ""
    print(
        f"{summary.command}{what} {summary.path}: {summary.components} components, {summary.assets} assets, "
        f"{summary.blobs} blobs, {human(summary.bytes)} in {summary.seconds:.1f} s{rate}",
        file=stream,
        flush=True,
    )


def _audit(state: AppState, action: str, repository: str, details: dict[str, Any]) -> None:
    """Record the command in the audit log; the work is done, so a failure here is only reported."""
    try:
        state.audit.record(OPERATOR, action, repository=repository, details=details)
    except Exception as exc:  # noqa: BLE001
        print(f"warning: could not record {action} in the audit log: {exc}", file=sys.stderr)


def run_export(args: argparse.Namespace, state: AppState) -> int:
    try:
        summary = export_repository(state, args.repository, args.file, Progress("export"))
    except TransferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _audit(
        state,
        "repository.exported",
        repository=args.repository,
        details={"to": args.file, "assets": summary.assets, "bytes": summary.bytes},
    )
    _report(summary, args.json, to_stderr=args.file == "-")
    return 0


def run_import(args: argparse.Namespace, state: AppState) -> int:
    try:
        summary = import_archive(state, args.file, args.as_name, Progress("import"))
    except TransferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _report(summary, args.json)
    return 0


def run_backup(args: argparse.Namespace, state: AppState) -> int:
    try:
        summary = backup(state, Path(args.dir), args.link, args.prune, Progress("backup"))
    except BackupUnsupported as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TransferError, OSError, sqlite3.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _report(summary, args.json)
    return 0


@hookimpl
def artifactory_register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help)
        parser.add_argument("--data-dir", type=Path, help="data directory (default ./artifactory-data)")
        parser.add_argument("--config", help="TOML settings file")
        parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")
        return parser

    export = command("export", "write one repository (definition, components, assets, blobs) to an archive")
    export.add_argument("repository")
    export.add_argument("file", help="archive to write (.tar, or .tar.gz/.tgz to compress; - for stdout)")
    export.set_defaults(run=run_export)

    imported = command("import", "create a repository from an archive made by `artifactory export`")
    imported.add_argument("file", help="archive to read (- for stdin)")
    imported.add_argument("--as", dest="as_name", metavar="NAME", help="name of the new repository")
    imported.set_defaults(run=run_import)

    backup_parser = command(
        "backup",
        "copy the embedded database (a consistent snapshot) and new blobs to DIR while the server serves",
    )
    backup_parser.add_argument("dir", type=Path)
    backup_parser.add_argument(
        "--link", action="store_true", help="hard-link blob files instead of copying (same filesystem only)"
    )
    backup_parser.add_argument(
        "--prune", action="store_true", help="remove blob files from DIR that the new snapshot does not use"
    )
    backup_parser.set_defaults(run=run_backup)
