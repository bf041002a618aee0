"""Building .crate files and `cargo publish` bodies, and running the real `cargo` against our server only."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Any

CARGO = shutil.which("cargo") or "cargo"


def crate(
    name: str,
    version: str,
    files: dict[str, bytes] | None = None,
    manifest_name: str | None = None,
    manifest_version: str | None = None,
    top: str | None = None,
) -> bytes:
    """A .crate as `cargo package` lays it out: everything below `<name>-<version>/`."""
    top = f"{name}-{version}" if top is None else top
    manifest = f'[package]\nname = "{manifest_name or name}"\nversion = "{manifest_version or version}"\n'
    contents = {f"{top}/Cargo.toml": manifest.encode(), f"{top}/src/lib.rs": b"pub fn f() {}\n"}
    contents.update(files or {})
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as archive:
            for path, data in contents.items():
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def publish_body(name: str, version: str, data: bytes | None = None, **meta: Any) -> bytes:
    """What `cargo publish` PUTs to api/v1/crates/new: u32 LE length, JSON, u32 LE length, .crate."""
    data = crate(name, version) if data is None else data
    document = json.dumps({"name": name, "vers": version, "deps": [], "features": {}, **meta}).encode()
    return struct.pack("<I", len(document)) + document + struct.pack("<I", len(data)) + data


def index_lines(response: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def cargo_home(tmp: Path, registries: dict[str, str], tokens: dict[str, str]) -> dict[str, str]:
    """The environment of a `cargo` that knows only these registries (sparse URLs) and tokens."""
    home = tmp / "cargo-home"
    home.mkdir(parents=True, exist_ok=True)
    lines = [f'[registries.{name}]\nindex = "sparse+{url}"\n' for name, url in registries.items()]
    (home / "config.toml").write_text("\n".join(lines))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_")}
    env.update(CARGO_HOME=str(home), CARGO_TARGET_DIR=str(tmp / "target"), CARGO_TERM_COLOR="never")
    for name, token in tokens.items():
        env[f"CARGO_REGISTRIES_{name.upper()}_TOKEN"] = token
    return env


def library(root: Path, name: str, version: str, deps: str = "", body: str = "") -> Path:
    """A library package on disk, depending on `deps` (Cargo.toml [dependencies] lines)."""
    folder = root / f"{name}-{version}"
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "Cargo.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "{version}"\nedition = "2021"\n'
        f'description = "test crate"\nlicense = "MIT"\n\n[dependencies]\n{deps}'
    )
    (folder / "src" / "lib.rs").write_text(
        body or f'pub fn which() -> &\'static str {{ "{name} {version}" }}\n'
    )
    return folder


def cargo(env: dict[str, str], cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CARGO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"cargo {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
