"""Distributions built in the test, offline: wheels with zipfile, sdists with tarfile."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path


def escaped(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def metadata_text(
    name: str,
    version: str,
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    summary: str = "a test package",
    metadata_version: str = "2.1",
) -> str:
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(lines) + "\n\nA long description.\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def wheel_bytes(
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    metadata: str | bytes | None = None,
    dist_info: str | None = None,
    extra: Iterable[tuple[zipfile.ZipInfo | str, bytes]] = (),
    module: str | None = None,
) -> bytes:
    module = module or escaped(name)
    dist_info = dist_info or f"{escaped(name)}-{version}.dist-info"
    meta = metadata if metadata is not None else metadata_text(name, version, requires, requires_python)
    meta_bytes = meta.encode() if isinstance(meta, str) else meta
    files: list[tuple[zipfile.ZipInfo | str, bytes]] = [
        (f"{module}/__init__.py", f'VALUE = "{name} {version}"\n'.encode()),
        (f"{dist_info}/METADATA", meta_bytes),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        *extra,
    ]
    record = [_record_line(n if isinstance(n, str) else n.filename, d) for n, d in files]
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry, data in files:
            archive.writestr(entry, data)
    return buffer.getvalue()


def wheel_name(name: str, version: str) -> str:
    return f"{escaped(name)}-{version}-py3-none-any.whl"


def write_wheel(
    directory: Path, name: str, version: str, filename: str | None = None, **kwargs: object
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (filename or wheel_name(name, version))
    path.write_bytes(wheel_bytes(name, version, **kwargs))  # type: ignore[arg-type]
    return path


def sdist_bytes(
    name: str,
    version: str,
    *,
    metadata: str | None = None,
    top: str | None = None,
    extra: Iterable[tuple[tarfile.TarInfo, bytes]] = (),
) -> bytes:
    top = top or f"{escaped(name)}-{version}"
    meta = (metadata if metadata is not None else metadata_text(name, version)).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in ((f"{top}/PKG-INFO", meta), (f"{top}/setup.py", b"raise SystemExit\n")):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info, data in extra:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def write_sdist(directory: Path, name: str, version: str, **kwargs: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{escaped(name)}-{version}.tar.gz"
    path.write_bytes(sdist_bytes(name, version, **kwargs))  # type: ignore[arg-type]
    return path
