"""Helpers shared by the pypi tests: real clients (twine, pip, uv) isolated from the machine's own
configuration and from the network, and a direct legacy-API upload for bad input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from artifactory.testing.server import ADMIN_PASSWORD, LiveServer


def tool_env(home: Path) -> dict[str, str]:
    """The environment for pip, uv and twine: no user config, no proxies, caches inside the test."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "TWINE_", "ARTIFACTORY_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "HOME": str(home),
            "NO_PROXY": "*",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(home / "uv-cache"),
            "UV_PYTHON_DOWNLOADS": "never",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
    )
    return env


def run(command: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def twine_upload(
    url: str, files: list[Path], username: str, password: str, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return run(
        [
            sys.executable,
            "-m",
            "twine",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            url,
            "-u",
            username,
            "-p",
            password,
            *extra,
            *map(str, files),
        ],
        env,
    )


def fresh_venv(path: Path) -> Path:
    """A new virtual environment (without pip: the machine's pip installs into it with --python)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def pip_install(
    python: Path, index: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-cache-dir",
            "--index-url",
            index,
            *args,
        ],
        env,
    )


def uv_install(python: Path, index: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(["uv", "pip", "install", "--python", str(python), "--index-url", index, *args], env)


def imported(python: Path, module: str) -> str:
    result = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.VALUE)"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def post_upload(
    server: LiveServer,
    repo: str,
    filename: str,
    content: bytes,
    *,
    auth: tuple[str, str] | None = ("admin", ADMIN_PASSWORD),
    digests: dict[str, str] | None = None,
    **fields: str,
) -> httpx.Response:
    """A legacy-API upload as twine sends it (fields, then the file as the `content` part)."""
    data = {":action": "file_upload", "protocol_version": "1", **fields}
    if digests is None:
        digests = {"sha256_digest": hashlib.sha256(content).hexdigest()}
    data.update(digests)
    with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
        return client.post(
            f"/repository/{repo}/",
            data=data,
            files={"content": (filename, content, "application/octet-stream")},
        )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return tool_env(tmp_path / "home")
