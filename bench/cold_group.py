"""A cold install through a group (hosted + proxy of an upstream) against the same install straight
from that upstream, in one run: pip, uv and npm.

    python bench/cold_group.py [--runs 3] [--packages 20] [--size-kib 64] [--clients pip,uv,npm]

The upstream is nginx serving a static copy of an index on 127.0.0.1: a PEP 503 simple index of
wheels for pip and uv, packuments and tarballs for npm. `--packages` packages of `--size-kib` each
(incompressible), and one root package that depends on all of them, so a client resolves the root,
then fetches every page and file.

Our server (`--workers 2`, SQLite) gets, for every run, a new proxy repository of nginx and a new
group of (a hosted repository holding an unrelated package, that proxy): every run is a cold miss
for every page and every file, single-flight and the dependency-confusion guard included. Each
client runs with an empty cache. Runs alternate direct and through the group; the table gives
medians and the ratio (target: at most 1.3x). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import html
import io
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from run import stop_process, wait_for_port  # noqa: E402

from artifactory.testing.server import LiveServer, free_port  # noqa: E402

TARGET = 1.3
NGINX_CONF = """\
{user}daemon off;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    types {{ text/html html; }}
    default_type application/octet-stream;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        index index.html;
        # A packument lives at /npm/<name>, stored as <name>.json beside the <name>/ tarball folder.
        location /npm/ {{ default_type application/json; try_files $uri.json $uri =404; }}
    }}
}}
"""


def payload(name: str, size: int) -> bytes:
    """Incompressible bytes, the same for the same name."""
    seed = hashlib.sha256(name.encode()).digest()
    blocks = (hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


# -- PyPI ------------------------------------------------------------------------------------------
def wheel(name: str, requires: list[str], size: int) -> tuple[str, bytes]:
    module = name.replace("-", "_")
    dist_info = f"{module}-1.0.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{module}/__init__.py", "")
        archive.writestr(f"{module}/data.bin", payload(name, size))
        archive.writestr(f"{dist_info}/METADATA", meta)
        archive.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any")
        archive.writestr(f"{dist_info}/RECORD", "")
    return f"{module}-1.0-py3-none-any.whl", buffer.getvalue()


def pypi_static(www: Path, packages: int, size: int) -> list[str]:
    names = [f"cold-{i:03d}" for i in range(packages)]
    projects = {name: wheel(name, [], size) for name in names}
    projects["cold-app"] = wheel("cold-app", names, 1024)
    for name, (filename, data) in projects.items():
        (www / "packages" / name).mkdir(parents=True)
        (www / "packages" / name / filename).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        link = f'<a href="../../packages/{name}/{html.escape(filename)}#sha256={digest}">{filename}</a>'
        (www / "simple" / name).mkdir(parents=True)
        (www / "simple" / name / "index.html").write_text(f"<!DOCTYPE html><html><body>{link}</body></html>")
    return names


def pip_install(index: str, work: Path) -> None:
    target = Path(tempfile.mkdtemp(dir=work, prefix="pip-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ARTIFACTORY_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", NO_PROXY="*")
    command = [sys.executable, "-m", "pip", "download", "--no-cache-dir", "-q", "-d", str(target),
               "--index-url", index, "cold-app"]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)


def uv_install(index: str, work: Path) -> None:
    target = Path(tempfile.mkdtemp(dir=work, prefix="uv-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "ARTIFACTORY_"))}
    env.update(UV_CACHE_DIR=str(target / "cache"), NO_PROXY="*")
    command = [shutil.which("uv") or "uv", "pip", "install", "--no-cache", "-q",
               "--target", str(target / "site"), "--python", sys.executable,
               "--index-url", index, "cold-app"]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)


# -- npm -------------------------------------------------------------------------------------------
def tarball(name: str, size: int, dependencies: dict[str, str]) -> bytes:
    manifest = {"name": name, "version": "1.0.0", "main": "index.js", "dependencies": dependencies}
    files = {
        "package.json": json.dumps(manifest).encode(),
        "index.js": b"module.exports = 1;\n",
        "data.bin": payload(name, size),
    }
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w") as archive:
            for path, data in files.items():
                info = tarfile.TarInfo(f"package/{path}")
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def npm_static(www: Path, base: str, packages: int, size: int) -> list[str]:
    names = [f"cold-pkg-{i:03d}" for i in range(packages)]
    for name in names:
        data = tarball(name, size, {})
        (www / "npm" / name / "-").mkdir(parents=True)
        (www / "npm" / name / "-" / f"{name}-1.0.0.tgz").write_bytes(data)
        version = {
            "name": name,
            "version": "1.0.0",
            "dependencies": {},
            "dist": {
                "tarball": f"{base}npm/{name}/-/{name}-1.0.0.tgz",
                "shasum": hashlib.sha1(data).hexdigest(),
                "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
            },
        }
        document = {"name": name, "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": version}}
        (www / "npm" / f"{name}.json").write_text(json.dumps(document))
    return names


def npm_install(registry: str, names: list[str], work: Path) -> None:
    folder = Path(tempfile.mkdtemp(dir=work, prefix="npm-"))
    (folder / "package.json").write_text(
        json.dumps({"name": "consumer", "version": "1.0.0", "dependencies": dict.fromkeys(names, "^1.0.0")})
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_")}
    env.update(HOME=str(folder), npm_config_cache=str(folder / "cache"), npm_config_update_notifier="false")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--registry", registry],
        cwd=folder, env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    if len(list((folder / "node_modules").glob("cold-pkg-*"))) != len(names):
        raise RuntimeError(f"npm install from {registry} did not install every package")


# -- servers ---------------------------------------------------------------------------------------
@contextmanager
def nginx(work: Path, www: Path, port: int) -> Iterator[str]:
    conf_dir = work / "nginx"
    conf_dir.mkdir()
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, dir=conf_dir, port=port, www=www))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    with open(conf_dir / "stderr.log", "wb") as log:
        process = subprocess.Popen(
            [binary, "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_port(port, process, 30.0, "nginx")
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_process(process)


def measure(
    client: str,
    server: LiveServer,
    hosted: dict[str, str],
    upstream: str,
    npm_names: list[str],
    work: Path,
    runs: int,
) -> dict[str, list[float]]:
    """Wall times of `client`'s install straight from nginx and through a new (cold) group."""
    fmt = "npm" if client == "npm" else "pypi"
    direct = f"{upstream}npm/" if fmt == "npm" else f"{upstream}simple/"
    install: Callable[[str], None] = {
        "pip": lambda url: pip_install(url, work),
        "uv": lambda url: uv_install(url, work),
        "npm": lambda url: npm_install(url, npm_names, work),
    }[client]
    times: dict[str, list[float]] = {"direct": [], "group": []}
    for run in range(runs):
        proxy = server.create_repo(fmt, "proxy", name=f"{client}-proxy-{run}", url=direct)
        group = server.create_repo(fmt, "group", name=f"{client}-all-{run}", members=[hosted[fmt], proxy])
        through = f"{server.url}/repository/{group}/" + ("" if fmt == "npm" else "simple/")
        order = [("direct", direct), ("group", through)]
        for label, url in order if run % 2 == 0 else reversed(order):
            started = time.monotonic()
            install(url)
            times[label].append(time.monotonic() - started)
        print(f"run {run + 1}: {client} direct {times['direct'][-1]:.2f} s, group {times['group'][-1]:.2f} s")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--packages", type=int, default=20)
    parser.add_argument("--size-kib", type=int, default=64)
    parser.add_argument("--clients", default="pip,uv,npm")
    args = parser.parse_args(argv)
    clients = [c for c in args.clients.split(",") if c]
    work = Path(tempfile.mkdtemp(prefix="cold-group-"))
    try:
        www = work / "www"
        port = free_port()
        upstream = f"http://127.0.0.1:{port}/"
        pypi_static(www, args.packages, args.size_kib * 1024)
        npm_names = npm_static(www, upstream, args.packages, args.size_kib * 1024)
        server = LiveServer(work / "data", workers=2).start()
        try:
            with nginx(work, www, port):
                hosted = {
                    "pypi": server.create_repo("pypi", name="internal-pypi"),
                    "npm": server.create_repo("npm", name="internal-npm"),
                }
                times = {c: measure(c, server, hosted, upstream, npm_names, work, args.runs) for c in clients}
        finally:
            server.stop()
        print()
        print(f"{args.packages} packages of {args.size_kib} KiB + 1 root, cold caches, median of {args.runs}")
        print(f"{'client':<8}{'direct (nginx)':>16}{'through group':>16}{'ratio':>8}  target <= {TARGET}x")
        for client in clients:
            direct = statistics.median(times[client]["direct"])
            group = statistics.median(times[client]["group"])
            verdict = "met" if group / direct <= TARGET else "MISSED"
            print(f"{client:<8}{direct:>14.2f} s{group:>14.2f} s{group / direct:>7.2f}x  {verdict}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
