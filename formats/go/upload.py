"""Checking a module zip before anything is stored, by the rules the go command applies when it
extracts one (the Go project's x/mod/zip): every file under `<module>@<version>/`, no `..`, absolute or
duplicate names, no two names that differ only in case, bounded sizes; and the go.mod inside it,
whose module line must name the module the URL names.
"""

from __future__ import annotations

import zipfile
from typing import BinaryIO

from artifactory.plugin import BadRequest

MAX_GO_MOD = 16 * 1024 * 1024  # the go command's own limits
MAX_UNZIPPED = 500 * 1024 * 1024
MAX_FILES = 100_000
BOMB_RATIO = 200  # uncompressed / compressed beyond which a large archive is a compression bomb
BOMB_MIN_BYTES = 8 * 1024 * 1024  # archives smaller than this uncompressed are never called bombs


class InvalidZip(BadRequest):
    pass


def module_line(gomod: bytes) -> str | None:
    """The path the go.mod's `module` directive names (None: it has none)."""
    try:
        text = gomod.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidZip("go.mod is not valid UTF-8") from None
    for line in text.splitlines():
        fields = line.split("//", 1)[0].split()
        if fields and fields[0] == "module":
            if len(fields) != 2:
                raise InvalidZip(f"go.mod: malformed module directive {line.strip()!r}")
            return fields[1].strip('"`')
    return None


def check_gomod(gomod: bytes, module: str) -> None:
    if len(gomod) > MAX_GO_MOD:
        raise InvalidZip(f"go.mod is larger than {MAX_GO_MOD} bytes")
    named = module_line(gomod)
    if named != module:
        raise InvalidZip(f"go.mod says module {named!r}, but the upload is for module {module!r}")


def inspect_zip(file: BinaryIO, module: str, version: str, limit: int) -> bytes:
    """The go.mod of a module zip (a synthesized `module <path>` when it has none, as the go
    command does for modules that predate go.mod), or InvalidZip saying what is wrong."""
    root = f"{module}@{version}/"
    compressed = file.seek(0, 2)
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidZip(f"not a zip file: {exc}") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_FILES:
            raise InvalidZip(f"more than {MAX_FILES} files in the module zip")
        seen: set[str] = set()
        total = 0
        gomod: zipfile.ZipInfo | None = None
        for entry in entries:
            name = entry.filename
            if not name.startswith(root):
                raise InvalidZip(f"zip entry {name!r} is outside the module root {root!r}")
            relative = name[len(root) :]
            parts = relative.removesuffix("/").split("/")
            if "\\" in name or not entry.orig_filename.isprintable():
                raise InvalidZip(
                    f"zip entry {entry.orig_filename!r} contains a backslash or control character"
                )
            if relative and any(p in ("", ".", "..") for p in parts):
                raise InvalidZip(f"zip entry {name!r} has an empty, '.' or '..' path element")
            folded = relative.rstrip("/").casefold()
            if folded in seen:
                raise InvalidZip(f"zip entry {name!r} collides with another entry (same name or case)")
            seen.add(folded)
            total += entry.file_size
            if relative == "go.mod":
                gomod = entry
        ceiling = min(MAX_UNZIPPED, limit)
        if total > ceiling:
            raise InvalidZip(f"the module zip expands to {total} bytes, more than the {ceiling} allowed")
        if total > BOMB_MIN_BYTES and total > BOMB_RATIO * max(compressed, 1):
            raise InvalidZip(f"the module zip expands {total // max(compressed, 1)}-fold: refused as a bomb")
        if gomod is None:
            return f"module {module}\n".encode()
        try:
            with archive.open(gomod) as handle:
                data = handle.read(MAX_GO_MOD + 1)  # check_gomod refuses more than MAX_GO_MOD
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InvalidZip(f"cannot read go.mod from the zip: {exc}") from None
    check_gomod(data, module)
    return data
