"""Checking a module zip before anything is stored, by the rules the go command applies when it
extracts one (the Go project's x/mod/zip and module.CheckFilePath): a zip it refused could never be
replaced under allow_once. Every name UTF-8, under `<module>@<version>/`, a clean relative path of
permitted characters with no element reserved on Windows; no two names equal up to Go's case
folding, none both a file and a directory; go.mod only at the root; bounded sizes; every entry
stored or deflated, not encrypted, and read through as Go's archive/zip reads it. And the go.mod
inside it, whose module line must name the module the URL names.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from typing import BinaryIO

from artifactory_formats.go.coordinates import WINDOWS_RESERVED

from artifactory.plugin import ARCHIVE_ERRORS, BadRequest, inflation_limit, zip_member_name

MAX_GO_MOD = 16 * 1024 * 1024  # the go command's own limits (for a LICENSE too)
MAX_UNZIPPED = 500 * 1024 * 1024  # what a module zip may hold, and may weigh
MAX_FILES = 100_000
BOMB_RATIO = 200  # uncompressed / compressed beyond which a large archive is a compression bomb
BOMB_MIN_BYTES = 8 * 1024 * 1024  # archives smaller than this uncompressed are never called bombs
RAW_CHUNK = 16 * 1024  # read at once from an entry: at most 16.5 MiB once inflated
FILE_PUNCTUATION = "!#$%&()+,-.=@[]^_{}~"
FILE_CHARS = frozenset(f"0123456789 {FILE_PUNCTUATION}")  # and letters, of any script


class InvalidZip(BadRequest):
    pass


def module_line(gomod: bytes) -> str | None:
    """The path the go.mod's `module` directive names (None: it has none). A path in quotes must be
    a plain "..." string; quote characters anywhere else are a syntax error to the go command."""
    try:
        text = gomod.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidZip("go.mod is not valid UTF-8") from None
    paths = []
    for line in text.splitlines():
        fields = line.split("//", 1)[0].split()
        if fields and fields[0] == "module":
            quoted = len(fields) == 2 and re.fullmatch(r'"([^"\\]*)"', fields[1])
            if len(fields) != 2 or not quoted and any(q in fields[1] for q in "\"'`"):
                raise InvalidZip(f"go.mod: malformed module directive {line.strip()!r}")
            paths.append(quoted.group(1) if quoted else fields[1])
    if len(paths) > 1:
        raise InvalidZip("go.mod: more than one module directive")
    return paths[0] if paths else None


def check_gomod(gomod: bytes, module: str) -> None:
    if len(gomod) > MAX_GO_MOD:
        raise InvalidZip(f"go.mod is larger than {MAX_GO_MOD} bytes")
    named = module_line(gomod)
    if named != module:
        raise InvalidZip(f"go.mod says module {named!r}, but the upload is for module {module!r}")


def entry_name(entry: zipfile.ZipInfo) -> str:
    """The name as stored (`zip_member_name`: one name only), which Go uses, and which must be UTF-8
    (zipfile decodes it as cp437 unless the entry's UTF-8 flag is set: encoding it back gives the
    stored bytes)."""
    try:
        stored = zip_member_name(entry)
    except ValueError as exc:
        raise InvalidZip(str(exc)) from None
    try:
        return stored if entry.flag_bits & 0x800 else stored.encode("cp437").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidZip(f"zip entry name {stored!r} is not valid UTF-8") from None


def fold(path: str) -> str:
    """What Go compares names by for collisions: simple case folding, character by character (so
    "ß" and "ss" differ). A character's full folding is its simple one when it is one character."""
    return "".join(
        f if len(f := c.casefold()) == 1 else c.lower() if len(c.lower()) == 1 else c for c in path
    )


def check_file_path(name: str, relative: str) -> None:
    """module.CheckFilePath: a clean relative path (no empty, "." or ".." element) of letters,
    digits, spaces and FILE_CHARS, no element ending in a dot or reserved on Windows (CON.txt)."""
    for element in relative.split("/"):
        if (
            element.strip(".") == ""
            or element.endswith(".")
            or not all(c.isalpha() or c in FILE_CHARS for c in element)
            or WINDOWS_RESERVED.fullmatch(element.split(".", 1)[0])
        ):
            raise InvalidZip(
                f"zip entry {name!r}: invalid path element {element!r} (allowed: letters, digits, spaces "
                f"and {FILE_PUNCTUATION}; no element all dots, ending in a dot or reserved on Windows)"
            )


def claim(seen: dict[str, tuple[str, bool]], path: str, is_dir: bool) -> None:
    """Record a file or directory and its parent directories, refusing a name equal to another up
    to case, a name both a file and a directory, and a file named twice."""
    while True:
        key = fold(path)
        if key in seen:
            if is_dir and seen[key] == (path, True):
                return  # a directory met before, with its parents
            other, other_is_dir = seen[key]
            why = "a file and a directory" if is_dir != other_is_dir else "the same file twice"
            why = "the same name up to case" if other != path else why
            raise InvalidZip(f"{path!r} collides with {other!r} in the module zip: {why}")
        seen[key] = (path, is_dir)
        if "/" not in path:
            return
        path, is_dir = path.rsplit("/", 1)[0], True


def check_entries(entries: list[zipfile.ZipInfo], root: str) -> dict[str, zipfile.ZipInfo]:
    """The files of a module zip by their path under the root (its directories left out), or
    InvalidZip naming the first entry x/mod's CheckZip or Unzip would refuse."""
    if len(entries) > MAX_FILES:
        raise InvalidZip(f"more than {MAX_FILES} files in the module zip")
    seen: dict[str, tuple[str, bool]] = {}
    files = {}
    for entry in entries:
        name = entry_name(entry)
        if not name.startswith(root):
            raise InvalidZip(f"zip entry {name!r} is outside the module root {root!r}")
        if entry.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or entry.flag_bits & 0x1:
            raise InvalidZip(
                f"zip entry {name!r} is encrypted, or compressed otherwise than stored or deflated"
            )
        relative = name[len(root) :]
        if relative == "":
            continue  # the root directory itself
        is_dir = relative.endswith("/")
        relative = relative.removesuffix("/")
        check_file_path(name, relative)
        claim(seen, relative, is_dir)
        if is_dir:
            continue
        if relative.rsplit("/", 1)[-1].lower() == "go.mod" and relative != "go.mod":
            raise InvalidZip(f"zip entry {name!r}: a module has one go.mod, named in lower case, at its root")
        if relative in ("go.mod", "LICENSE") and entry.file_size > MAX_GO_MOD:
            raise InvalidZip(f"{relative} is larger than {MAX_GO_MOD} bytes")
        files[relative] = entry
    return files


def check_directory(file: BinaryIO, size: int, entries: int) -> None:
    """What Go's archive/zip requires of the central directory that zipfile does not: the end
    record's comment within the file, the directory holding as many entries as that record
    declares, the last of them ending where the directory ends (not cut short)."""
    file.seek(max(0, size - 22 - (1 << 16)))
    tail = file.read()
    end = tail.rfind(b"PK\x05\x06")  # the end record zipfile found
    count, length, _offset, comment = struct.unpack_from("<HLLH", tail, end + 10)
    if end + 22 + comment > len(tail):
        raise InvalidZip("the zip's end record declares a comment longer than the file")
    if end >= 20 and tail[end - 20 : end - 16] == b"PK\x06\x07":
        return  # zip64: zipfile reads its other end record
    file.seek(size - len(tail) + end - length)
    directory, at = file.read(length), 0
    for _ in range(entries):
        at += 46 + sum(struct.unpack_from("<HHH", directory, at + 28))
    if count != entries % (1 << 16) or at != length:
        raise InvalidZip("the zip's central directory does not hold the entries its end record declares")


def read_entry(file: BinaryIO, entry: zipfile.ZipInfo, keep: bool) -> bytes:
    """An entry's bytes (b"" unless `keep`), read to the end in bounded chunks as Go's archive/zip
    reads them, zipfile being laxer: after its local header, exactly its compressed size, a
    deflate stream through its final block, giving exactly its declared size, whose CRC-32 is the
    directory's (and its data descriptor's, when it has one)."""
    file.seek(entry.header_offset)
    local = file.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise InvalidZip(f"zip entry {entry.orig_filename!r} has no local header")
    file.seek(entry.header_offset + 30 + sum(struct.unpack_from("<HH", local, 26)))
    inflate, deflated = zlib.decompressobj(-zlib.MAX_WBITS), entry.compress_type == zipfile.ZIP_DEFLATED
    chunks: list[bytes] = []
    left, count, crc = entry.compress_size, 0, 0
    while left > 0 and count <= entry.file_size and (raw := file.read(min(RAW_CHUNK, left))):
        left -= len(raw)
        data = inflate.decompress(raw) if deflated else raw
        count, crc = count + len(data), zlib.crc32(data, crc)
        chunks += [data] if keep else []
    descriptor = file.read(16).removeprefix(b"PK\x07\x08") if entry.flag_bits & 0x8 else None
    if (
        (left, count, crc) != (0, entry.file_size, entry.CRC)
        or (deflated and not inflate.eof)
        or (descriptor is not None and (len(descriptor) < 12 or descriptor[:4] != crc.to_bytes(4, "little")))
    ):
        raise InvalidZip(f"zip entry {entry.orig_filename!r} is corrupt: its data are not what it declares")
    return b"".join(chunks)


def inspect_zip(file: BinaryIO, module: str, version: str, limit: int) -> bytes:
    """The go.mod of a module zip (a synthesized `module <path>` when it has none, as the go
    command does for modules that predate go.mod), or InvalidZip saying what is wrong."""
    compressed = file.seek(0, 2)
    if compressed > MAX_UNZIPPED:
        raise InvalidZip(f"the module zip is larger than {MAX_UNZIPPED} bytes")
    try:
        with zipfile.ZipFile(file) as archive:
            check_directory(file, compressed, len(archive.infolist()))
            files = check_entries(archive.infolist(), f"{module}@{version}/")
            total, ceiling = sum(e.file_size for e in files.values()), min(MAX_UNZIPPED, limit)
            if total > ceiling:
                raise InvalidZip(f"the module zip expands to {total} bytes, more than the {ceiling} allowed")
            if total > inflation_limit(compressed, BOMB_RATIO, BOMB_MIN_BYTES, ceiling):
                raise InvalidZip(
                    f"the module zip expands {total // max(compressed, 1)}-fold: refused as a bomb"
                )
            read = {path: read_entry(file, entry, path == "go.mod") for path, entry in files.items()}
    except ARCHIVE_ERRORS as exc:
        raise InvalidZip(f"not a readable zip file: {exc}") from None
    gomod = read.get("go.mod", f"module {module}\n".encode())
    check_gomod(gomod, module)
    return gomod
