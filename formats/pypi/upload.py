"""Parsing an upload: the legacy upload API's multipart form (streamed, never held in memory), and
the core metadata inside a wheel or sdist, read safely (bounded sizes, nothing extracted to disk,
archives with unsafe member names or compression bombs refused).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import sys
import tarfile
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from artifactory_formats.pypi.coordinates import (
    Distribution,
    InvalidFilename,
    normalize,
    parse_filename,
)
from artifactory_formats.pypi.metadata import INFO_FIELDS, iso_time
from packaging.metadata import parse_email
from packaging.version import InvalidVersion, Version
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from artifactory.plugin import ARCHIVE_ERRORS, BadRequest, gunzip_bounded, inflation_limit, zip_member_name

MAX_FIELD_BYTES = 4 * 1024 * 1024  # one form field (a long description can be large)
MAX_FORM_BYTES = 16 * 1024 * 1024  # all form fields together
MAX_FIELDS = 2000
MAX_METADATA_BYTES = 2 * 1024 * 1024
MAX_ENTRIES = 200_000
BOMB_RATIO = 200  # uncompressed / compressed beyond which a large member is a compression bomb
BOMB_MIN_BYTES = 8 * 1024 * 1024  # members smaller than this are never called bombs
MAX_EXPANSION = 512 * 1024 * 1024  # an archive may always expand to this much, whatever its ratio
NO_CEILING = sys.maxsize  # beyond MAX_EXPANSION, only the ratio bounds an archive (a large wheel)
DIGEST_FIELDS = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2b_256"}
DIGEST = re.compile(r"^[0-9a-fA-F]+$")


class UnsafeArchive(BadRequest):
    pass


def same_version(stated: str, dist: Distribution) -> bool:
    """Whether a version another source states (the form, METADATA, the .dist-info directory) is the
    filename's: equal once normalised (01.0 is 1.0), so a file named 1.0.0 whose METADATA says 1.0
    (equal as PEP 440 versions, yet another spelling of the release) is refused."""
    try:
        return str(Version(stated)) == str(dist.version)
    except InvalidVersion:
        return False


# -- the multipart form --------------------------------------------------------------------------
@dataclass
class UploadForm:
    """The fields of a legacy-API upload; the file part is streamed to whoever iterates `file_chunks`."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    filename: str | None = None
    blake2b: Any = field(default_factory=lambda: hashlib.blake2b(digest_size=32))

    def value(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    async def file_chunks(self, request: Request) -> AsyncIterator[bytes]:
        """Parse the request body, yielding the bytes of the `content` part as they arrive."""
        content_type, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise BadRequest("an upload is a multipart/form-data POST (the legacy upload API twine uses)")
        out: list[bytes] = []
        state: dict[str, Any] = {
            "headers": {},
            "name": None,
            "file": False,
            "buffer": bytearray(),
            "total": 0,
        }
        header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

        def on_part_begin() -> None:
            state.update(headers={}, name=None, file=False, buffer=bytearray())

        def on_header_field(data: bytes, start: int, end: int) -> None:
            header["field"] += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            header["value"] += data[start:end]

        def on_header_end() -> None:
            state["headers"][bytes(header["field"]).lower()] = bytes(header["value"])
            header["field"], header["value"] = bytearray(), bytearray()

        def on_headers_finished() -> None:
            _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
            name = disposition.get(b"name", b"").decode("utf-8", "replace")
            state["name"] = name
            if name == "content" and b"filename" in disposition:
                if self.filename is not None:
                    raise BadRequest("an upload carries exactly one file")
                self.filename = disposition[b"filename"].decode("utf-8", "replace")
                state["file"] = True

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if state["file"]:
                chunk = bytes(data[start:end])
                self.blake2b.update(chunk)
                out.append(chunk)
                return
            state["buffer"] += data[start:end]
            state["total"] += end - start
            if len(state["buffer"]) > MAX_FIELD_BYTES or state["total"] > MAX_FORM_BYTES:
                raise BadRequest(f"form field {state['name']!r} is too large")

        def on_part_end() -> None:
            if state["file"]:
                return
            if sum(len(v) for v in self.fields.values()) >= MAX_FIELDS:
                raise BadRequest("too many form fields")
            text = bytes(state["buffer"]).decode("utf-8", "replace")
            self.fields.setdefault(state["name"] or "", []).append(text)

        parser = MultipartParser(
            boundary,
            callbacks={  # type: ignore[arg-type]
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
                "on_part_end": on_part_end,
            },
        )
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except BadRequest:
                raise
            except Exception as exc:  # noqa: BLE001 - python-multipart's own parse errors
                raise BadRequest(f"malformed multipart body: {exc}") from None
            while out:
                yield out.pop(0)
        try:
            parser.finalize()
        except Exception as exc:  # noqa: BLE001
            raise BadRequest(f"malformed multipart body: {exc}") from None


def check_form(form: UploadForm, digests: dict[str, str]) -> Distribution:
    """The form's fields against the PyPI rules and the received bytes; the parsed filename."""
    action = form.value(":action")
    if action != "file_upload":
        raise BadRequest(f"unsupported :action {action!r}; only file_upload is supported")
    if form.value("protocol_version") not in (None, "1"):
        raise BadRequest("unsupported protocol_version; only 1 is supported")
    if not form.filename:
        raise BadRequest("the upload has no file: send it as the 'content' part")
    try:
        dist = parse_filename(form.filename)
    except InvalidFilename as exc:
        raise BadRequest(str(exc)) from None
    name, version, filetype = form.value("name"), form.value("version"), form.value("filetype")
    if name is not None and normalize(name) != dist.project:
        raise BadRequest(f"the form's name {name!r} does not match the filename {dist.filename!r}")
    if version is not None and not same_version(version, dist):
        raise BadRequest(f"the form's version {version!r} does not match the filename {dist.filename!r}")
    if filetype is not None and filetype != dist.packagetype:
        raise BadRequest(f"filetype {filetype!r} does not match {dist.filename!r} ({dist.packagetype})")
    sent = 0
    for field_name, algorithm in DIGEST_FIELDS.items():
        value = (form.value(field_name) or "").strip()
        if not value:
            continue
        sent += 1
        if not DIGEST.match(value) or not hmac.compare_digest(value.lower(), digests[algorithm]):
            raise BadRequest(
                f"{field_name} does not match the uploaded file {dist.filename!r}: "
                f"the client sent {value!r}, the bytes received hash to {digests[algorithm]!r}"
            )
    if not sent:
        raise BadRequest("the upload carries no digest: send sha256_digest (twine does)")
    return dist


# -- core metadata inside the file ---------------------------------------------------------------
@dataclass(frozen=True)
class Inspected:
    metadata: bytes  # the METADATA / PKG-INFO bytes
    display_name: str
    info: dict[str, Any]  # version-level facts for the JSON API
    requires_python: str | None
    served_metadata: bool  # whether <file>.metadata is served (wheels; PEP 658)


def inspect(file: BinaryIO, dist: Distribution, size: int) -> Inspected:
    """Find, bound and parse the core metadata of a distribution; refuse unsafe archives."""
    if dist.packagetype == "bdist_wheel":
        data = _from_zip(file, dist, wheel=True)
    elif dist.filename.endswith(".zip"):
        data = _from_zip(file, dist, wheel=False)
    else:
        data = _from_tar(file, dist, size)
    return _parse_metadata(data, dist)


def _check_member(name: str) -> None:
    if "\x00" in name:
        raise UnsafeArchive(f"archive member {name!r} has a NUL character")
    normal = name.replace("\\", "/")
    if normal.startswith("/") or re.match(r"^[A-Za-z]:", normal):
        raise UnsafeArchive(f"archive member {name!r} has an absolute path")
    if ".." in normal.split("/"):
        raise UnsafeArchive(f"archive member {name!r} leaves the archive ('..')")


def _bomb(size: int, compressed: int) -> bool:
    return size > inflation_limit(compressed, BOMB_RATIO, BOMB_MIN_BYTES, NO_CEILING)


def _from_zip(file: BinaryIO, dist: Distribution, wheel: bool) -> bytes:
    try:
        archive = zipfile.ZipFile(file)
    except ARCHIVE_ERRORS as exc:
        raise BadRequest(f"{dist.filename} is not a valid zip archive: {exc}") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise UnsafeArchive(f"{dist.filename} has more than {MAX_ENTRIES} members")
        total = 0
        for info in infos:
            try:
                _check_member(zip_member_name(info))  # the name every other unzip uses
            except ValueError as exc:
                raise UnsafeArchive(f"{dist.filename}: {exc}") from None
            if info.flag_bits & 0x1:
                raise UnsafeArchive(f"{dist.filename} has an encrypted member {info.filename!r}")
            if _bomb(info.file_size, info.compress_size):
                raise UnsafeArchive(
                    f"{dist.filename}: member {info.filename!r} expands {info.file_size} bytes from "
                    f"{info.compress_size}: a compression bomb"
                )
            total += info.file_size
        try:
            _check_overlap(file, infos, dist)
        except ARCHIVE_ERRORS as exc:  # a member's offset that points before the file
            raise BadRequest(f"{dist.filename} is not a valid zip archive: {exc}") from None
        if total > inflation_limit(_size(file), BOMB_RATIO, MAX_EXPANSION, NO_CEILING):
            raise UnsafeArchive(f"{dist.filename} expands to {total} bytes: a compression bomb")
        if wheel:
            candidates = [i for i in infos if re.fullmatch(r"[^/]+\.dist-info/METADATA", i.filename)]
            if len(candidates) != 1:
                raise BadRequest(f"{dist.filename} must hold exactly one .dist-info/METADATA")
            _check_dist_info(candidates[0].filename.split("/", 1)[0], dist)
        else:
            candidates = [i for i in infos if re.fullmatch(r"[^/]+/PKG-INFO", i.filename)]
            if len(candidates) != 1:
                raise BadRequest(f"{dist.filename} must hold exactly one top-level */PKG-INFO")
        entry = candidates[0]
        if entry.file_size > MAX_METADATA_BYTES:
            raise UnsafeArchive(f"{entry.filename} is {entry.file_size} bytes; at most {MAX_METADATA_BYTES}")
        try:
            with archive.open(entry) as handle:
                data = handle.read(MAX_METADATA_BYTES + 1)
        except ARCHIVE_ERRORS as exc:
            raise BadRequest(f"cannot read {entry.filename} in {dist.filename}: {exc}") from None
        if len(data) > MAX_METADATA_BYTES:
            raise UnsafeArchive(f"{entry.filename} is larger than {MAX_METADATA_BYTES} bytes")
        return data


def _size(file: BinaryIO) -> int:
    position = file.tell()
    end = file.seek(0, io.SEEK_END)
    file.seek(position)
    return end


def _check_overlap(file: BinaryIO, infos: list[zipfile.ZipInfo], dist: Distribution) -> None:
    """Members whose data overlap (the 'non-recursive zip bomb' trick) are refused."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for current, following in zip(ordered, ordered[1:], strict=False):
        file.seek(current.header_offset + 26)
        lengths = file.read(4)
        if len(lengths) != 4:
            raise BadRequest(f"{dist.filename} is truncated")
        name_len = int.from_bytes(lengths[:2], "little")
        extra_len = int.from_bytes(lengths[2:], "little")
        end = current.header_offset + 30 + name_len + extra_len + current.compress_size
        if end > following.header_offset:
            raise UnsafeArchive(f"{dist.filename} has overlapping members: a compression bomb")


def _check_dist_info(directory: str, dist: Distribution) -> None:
    stem = directory.removesuffix(".dist-info")
    name, sep, version = stem.rpartition("-")
    if not (sep and normalize(name) == dist.project and same_version(version, dist)):
        raise BadRequest(f"{directory} does not match the wheel filename {dist.filename!r}")


def _expands_past(limit: int) -> UnsafeArchive:
    return UnsafeArchive(f"the archive expands past {limit} bytes: a compression bomb")


def _from_tar(file: BinaryIO, dist: Distribution, size: int) -> bytes:
    limit = inflation_limit(size, BOMB_RATIO, MAX_EXPANSION, NO_CEILING)
    found: bytes | None = None
    count = 0
    try:
        stream = gunzip_bounded(file, limit, _expands_past)
        with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
            declared = 0
            for member in archive:
                count += 1
                if count > MAX_ENTRIES:
                    raise UnsafeArchive(f"{dist.filename} has more than {MAX_ENTRIES} members")
                _check_member(member.name)
                if member.issym() or member.islnk():
                    _check_member(member.linkname)
                declared += member.size
                if declared > limit:
                    raise UnsafeArchive(f"{dist.filename} expands past {limit} bytes: a compression bomb")
                if re.fullmatch(r"[^/]+/PKG-INFO", member.name) and member.isfile():
                    if found is not None:
                        raise BadRequest(f"{dist.filename} holds more than one top-level */PKG-INFO")
                    if member.size > MAX_METADATA_BYTES:
                        raise UnsafeArchive(
                            f"{member.name} is {member.size} bytes; at most {MAX_METADATA_BYTES}"
                        )
                    handle = archive.extractfile(member)
                    found = handle.read(MAX_METADATA_BYTES + 1) if handle is not None else b""
    except ARCHIVE_ERRORS as exc:
        raise BadRequest(f"{dist.filename} is not a valid .tar.gz archive: {exc}") from None
    if found is None:
        raise BadRequest(f"{dist.filename} has no top-level */PKG-INFO")
    return found


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value[:4000]
    if isinstance(value, list):
        return [_clip(v) for v in value[:500]]
    if isinstance(value, dict):
        return {str(k)[:200]: _clip(v) for k, v in list(value.items())[:100]}
    return value


def _parse_metadata(data: bytes, dist: Distribution) -> Inspected:
    raw, _unparsed = parse_email(data)
    name, version = raw.get("name"), raw.get("version")
    if not name or not version:
        raise BadRequest(f"the core metadata of {dist.filename} has no Name or Version")
    if normalize(name) != dist.project:
        raise BadRequest(f"the metadata name {name!r} does not match the filename {dist.filename!r}")
    if not same_version(version, dist):
        raise BadRequest(f"the metadata version {version!r} does not match the filename {dist.filename!r}")
    info: dict[str, Any] = {"name": name}
    for key in INFO_FIELDS:
        value: Any = raw.get(key)  # type: ignore[misc]
        if key == "keywords" and isinstance(value, list):
            value = ",".join(value)
        if value not in (None, "", [], {}):
            info[key] = _clip(value)
    requires_python = raw.get("requires_python") or None
    return Inspected(
        metadata=data,
        display_name=name,
        info=info,
        requires_python=requires_python,
        served_metadata=dist.packagetype == "bdist_wheel",
    )


def file_attributes(
    dist: Distribution, inspected: Inspected, blake2b_256: str, metadata_sha256: str | None
) -> dict[str, Any]:
    """Per-file facts stored with the asset at upload, so an index page never opens a file."""
    return {
        "pypi": {
            "filename": dist.filename,
            "name": inspected.display_name,
            "version": str(dist.version),
            "packagetype": dist.packagetype,
            "python_version": dist.python_version,
            "requires_python": inspected.requires_python,
            "upload_time": iso_time(datetime.now(UTC)),
            "blake2b_256": blake2b_256,
            "metadata_sha256": metadata_sha256,
        }
    }
