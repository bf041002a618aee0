"""Helpers for the Go tests: module zips built in memory, uploads, and the go command isolated from
the machine's configuration and from the network (every module comes through GOPROXY)."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from pathlib import Path

import httpx

from artifactory.testing.server import LiveServer


def module_zip(
    module: str, version: str, files: dict[str, str] | None = None, gomod: str | None = None
) -> bytes:
    """A module zip as the go command lays it out: every file under `<module>@<version>/`."""
    files = dict(files or {"lib.go": f"package {module.rsplit('/', 1)[-1].replace('-', '')}\n"})
    files.setdefault("go.mod", gomod if gomod is not None else f"module {module}\n\ngo 1.19\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(f"{module}@{version}/{name}", text)
    return buffer.getvalue()


def raw_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def escaped(text: str) -> str:
    return "".join("!" + c.lower() if c.isupper() else c for c in text)


def put_zip(server: LiveServer, repo: str, module: str, version: str, data: bytes) -> httpx.Response:
    with server.client() as admin:
        return admin.put(f"/repository/{repo}/{escaped(module)}/@v/{escaped(version)}.zip", content=data)


def go_env(home: Path, goproxy: str) -> dict[str, str]:
    """The go command with nothing but our GOPROXY: no checksum database, caches in the test."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GO", "ARTIFACTORY_")) and k.lower() not in ("http_proxy", "https_proxy")
    }
    env.update(
        {
            "HOME": str(home),
            "GOPROXY": goproxy,
            "GOSUMDB": "off",
            "GONOSUMDB": "*",
            "GOFLAGS": "-modcacherw",
            "GOPATH": str(home / "gopath"),
            "GOMODCACHE": str(home / "modcache"),
            "GOCACHE": str(home / "gocache"),
            "GOTOOLCHAIN": "local",
            "GO111MODULE": "on",
            "NO_PROXY": "*",
        }
    )
    return env


def go(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["go", *args], cwd=cwd, env=env, capture_output=True, text=True, errors="replace", timeout=180
    )  # errors="replace": the go command quotes the bytes of file names that are not UTF-8
