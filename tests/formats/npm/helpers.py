"""Building npm packages and publish documents, and running the real `npm` against our server only."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

NPM = shutil.which("npm") or "npm"


def tarball(
    name: str,
    version: str,
    manifest: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
    top: str = "package",
) -> bytes:
    """A package tarball as `npm pack` lays it out: everything below `package/`."""
    package_json = {"name": name, "version": version, "main": "index.js", **(manifest or {})}
    contents = {"package.json": json.dumps(package_json).encode(), "index.js": b"module.exports = 1;\n"}
    contents.update(files or {})
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:  # same input, same bytes
        with tarfile.open(fileobj=compressed, mode="w") as archive:
            for path, data in contents.items():
                info = tarfile.TarInfo(f"{top}/{path}")
                info.size = len(data)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def publish_document(
    name: str,
    version: str,
    data: bytes | None = None,
    tags: dict[str, str] | None = None,
    manifest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What `npm publish` PUTs to /{name}: the manifest plus the tarball as a base64 attachment."""
    data = tarball(name, version, manifest) if data is None else data
    version_manifest = {
        "name": name,
        "version": version,
        "main": "index.js",
        **(manifest or {}),
        "_id": f"{name}@{version}",
        "dist": {
            "integrity": integrity(data),
            "shasum": hashlib.sha1(data).hexdigest(),
            "tarball": f"http://ignored.invalid/{name}/-/{name.split('/')[-1]}-{version}.tgz",
        },
    }
    return {
        "_id": name,
        "name": name,
        "description": version_manifest.get("description"),
        "dist-tags": tags if tags is not None else {"latest": version},
        "versions": {version: version_manifest},
        "access": None,
        "_attachments": {
            f"{name}-{version}.tgz": {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(data).decode(),
                "length": len(data),
            }
        },
    }


def escaped(name: str) -> str:
    """How npm spells a package name in a URL path."""
    return name.replace("/", "%2f")


class Npm:
    """The real npm with a home, user config and cache of its own, pointed at one registry."""

    def __init__(self, root: Path, registry: str, token: str | None = None) -> None:
        self.root = root
        self.registry = registry
        self.home = root / "home"
        self.cache = root / "cache"
        self.home.mkdir(parents=True, exist_ok=True)
        self.userconfig = self.home / ".npmrc"
        lines = [f"registry={registry}"]
        if token:
            lines.append(f"{self.auth_key}:_authToken={token}")
        self.userconfig.write_text("\n".join(lines) + "\n")

    @property
    def auth_key(self) -> str:
        """The .npmrc key prefix npm looks credentials up by: //host:port/path/."""
        parts = urlsplit(self.registry)
        return f"//{parts.netloc}{parts.path}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_")}
        for ci in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "CONTINUOUS_INTEGRATION", "BUILD_NUMBER"):
            env.pop(ci, None)
        env.update(
            HOME=str(self.home),
            npm_config_userconfig=str(self.userconfig),
            npm_config_cache=str(self.cache),
            npm_config_registry=self.registry,
            npm_config_update_notifier="false",
            npm_config_fund="false",
            npm_config_loglevel="warn",
            npm_config_progress="false",
            NO_COLOR="1",
        )
        return env

    def run(
        self, *args: str, cwd: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [NPM, *args, "--registry", self.registry],
            cwd=cwd or self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"npm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def json(self, *args: str, cwd: Path | None = None) -> Any:
        return json.loads(self.run(*args, "--json", cwd=cwd).stdout)


def package_folder(root: Path, name: str, version: str, **manifest: Any) -> Path:
    folder = root / name.replace("/", "__") / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(
        json.dumps({"name": name, "version": version, "main": "index.js", **manifest})
    )
    return folder


class TinyRegistry:
    """A scripted npm upstream on 127.0.0.1: fixed answers per path, request counts, a failure switch."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.answers: dict[str, tuple[int, bytes, str]] = {}
        self.hits: dict[tuple[str, str], int] = {}
        self.bodies: list[bytes] = []
        self.down = False
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                path = self.path.split("?", 1)[0]
                registry.hits[(self.command, path)] = registry.hits.get((self.command, path), 0) + 1
                length = int(self.headers.get("content-length") or 0)
                if length:
                    registry.bodies.append(self.rfile.read(length))
                if registry.down:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, body, content_type = registry.answers.get(
                    path, (404, b'{"error":"not found"}', "application/json")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def serve(self, path: str, body: bytes | dict[str, Any], content_type: str = "application/json") -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.answers[path] = (200, data, content_type)

    def count(self, path: str, method: str = "GET") -> int:
        return self.hits.get((method, path), 0)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
