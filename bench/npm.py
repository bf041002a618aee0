"""npm registry benchmark: this server (--workers 2) side by side with Verdaccio, same packages.

    python bench/npm.py [--duration 10] [--big-versions 2000] [--installs 3] [--verdaccio-dir DIR]
    python bench/npm.py --base /tmp/base-5af08a4 [--base-commit 5af08a4] [--rounds 3] ...

Both registries get the same 200 packages x 3 versions plus one package with 2,000 versions, published
over HTTP exactly as `npm publish` sends them. Then, one registry at a time:

- req/s of full and of abbreviated packuments (wrk -t2 -c32, rotating over the 200 packages, gzip
  accepted as npm does);
- latency (p50/p99, one connection) of the 2,000-version package next to a 3-version one, full and
  abbreviated: it must not grow with the version count. Each is measured once every worker has built
  the document (eight connections for a second first): wrk makes up for a stalled connection with the
  requests it would have sent meanwhile, so one build inside the window would set the p99 by itself;
- with --base, also the first GET of the big packument after one more version is published (the
  build itself, median of three);
- wall time of `npm install` of 20 dependencies with a cold cache (median of --installs runs).

Verdaccio 6.8.0 comes from the npm registry (with node-fetch pinned to 2.7.0, which installs on this
machine) into --verdaccio-dir, once. Everything listens on 127.0.0.1 and lives in one temp dir.

With --base, Verdaccio is left out: the tree of --base-commit and this one run side by side with the
same packages, and every figure is measured on both in each of --rounds rounds (see common.py).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from common import Comparison, add_base_arguments, order, server_pid, sides, timed  # noqa: E402
from run import WRK_REPORT, describe_errors, find_tool, wrk  # noqa: E402

from artifactory.testing.server import LiveServer, free_port  # noqa: E402

VERDACCIO_VERSION = "6.8.0"
DEFAULT_VERDACCIO_DIR = Path.home() / ".cache" / "artifactory-bench" / f"verdaccio-{VERDACCIO_VERSION}"
PACKAGES = 200
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
BIG = "bench-big"
SMALL = "bench-pkg-000"
INSTALL_DEPENDENCIES = 20
ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
FULL = "application/json"


@dataclass
class Registry:
    name: str
    url: str  # the registry URL npm is given, with a trailing slash
    token: str
    results: dict[str, Any] = field(default_factory=dict)
    installs: list[float] = field(default_factory=list)
    pid: int | None = None  # the server's, to count its CPU time


# -- packages --------------------------------------------------------------------------------
def package_name(index: int) -> str:
    return f"bench-pkg-{index:03d}"


def big_version(index: int) -> str:
    return f"{index // 100}.{index % 100}.0"


def tarball(name: str, version: str) -> bytes:
    manifest = {
        "name": name,
        "version": version,
        "description": f"{name}: a package for the npm benchmark",
        "main": "index.js",
        "license": "MIT",
        "keywords": ["bench", "npm"],
        "engines": {"node": ">=18"},
        "scripts": {"test": "node test.js"},
    }
    files = {
        "package.json": json.dumps(manifest, indent=2).encode(),
        "index.js": f"module.exports = {json.dumps(name + '@' + version)};\n".encode(),
        "README.md": f"# {name}\n\nVersion {version}.\n".encode(),
    }
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w") as archive:
            for path, data in files.items():
                info = tarfile.TarInfo(f"package/{path}")
                info.size = len(data)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def publish_document(name: str, version: str, registry: str) -> dict[str, object]:
    data = tarball(name, version)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        handle = archive.extractfile("package/package.json")
        assert handle is not None
        manifest = json.loads(handle.read())
    manifest.update(
        _id=f"{name}@{version}",
        readme=f"# {name}",
        dist={
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
            "shasum": hashlib.sha1(data).hexdigest(),
            "tarball": f"{registry}{name}/-/{name}-{version}.tgz",
        },
    )
    return {
        "_id": name,
        "name": name,
        "description": manifest["description"],
        "dist-tags": {"latest": version},
        "versions": {version: manifest},
        "readme": f"# {name}",
        "_attachments": {
            f"{name}-{version}.tgz": {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(data).decode(),
                "length": len(data),
            }
        },
    }


def populate(registry: Registry, big_versions: int) -> float:
    """Publish everything; returns the seconds it took."""
    headers = {"Authorization": f"Bearer {registry.token}"}
    started = time.monotonic()

    def publish_all(name: str, versions: list[str]) -> None:
        with httpx.Client(timeout=120.0, headers=headers) as client:
            for version in versions:
                response = client.put(registry.url + name, json=publish_document(name, version, registry.url))
                if response.status_code not in (200, 201):
                    raise RuntimeError(
                        f"{registry.name}: publish {name}@{version}: {response.status_code} {response.text}"
                    )

    jobs = [(package_name(i), list(VERSIONS)) for i in range(PACKAGES)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        big = pool.submit(publish_all, BIG, [big_version(i) for i in range(big_versions)])
        for future in [pool.submit(publish_all, name, versions) for name, versions in jobs]:
            future.result()
        big.result()
    return time.monotonic() - started


def check(registry: Registry, big_versions: int) -> None:
    """Refuse to measure a registry that does not serve what was published."""
    with httpx.Client(timeout=60.0) as client:
        doc = client.get(registry.url + BIG, headers={"Accept": ABBREVIATED}).json()
        if len(doc["versions"]) != big_versions:
            raise RuntimeError(f"{registry.name}: {BIG} has {len(doc['versions'])} versions")
        small = client.get(registry.url + SMALL).json()
        tarball_url = small["versions"]["1.2.0"]["dist"]["tarball"]
        if client.get(tarball_url).content != tarball(SMALL, "1.2.0"):
            raise RuntimeError(f"{registry.name}: {tarball_url} does not serve the published bytes")


# -- servers ---------------------------------------------------------------------------------
VERDACCIO_CONFIG = """\
storage: {storage}
auth:
  htpasswd:
    file: {htpasswd}
    max_users: 100
uplinks: {{}}
packages:
  '@*/*':
    access: $all
    publish: $authenticated
  '**':
    access: $all
    publish: $authenticated
max_body_size: 200mb
web:
  enable: false
log: {{type: stdout, format: pretty, level: error}}
"""


def install_verdaccio(directory: Path) -> Path:
    binary = directory / "node_modules" / "verdaccio" / "bin" / "verdaccio"
    if binary.exists():
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "package.json").write_text(
        json.dumps(
            {
                "name": "verdaccio-bench",
                "version": "1.0.0",
                "private": True,
                "dependencies": {"verdaccio": VERDACCIO_VERSION},
                "overrides": {"node-fetch": "2.7.0"},
            }
        )
    )
    print(f"installing Verdaccio {VERDACCIO_VERSION} into {directory} ...", flush=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=directory, check=True)
    return binary


@contextmanager
def verdaccio(work: Path, directory: Path) -> Iterator[Registry]:
    binary = install_verdaccio(directory)
    port = free_port()
    config = work / "verdaccio.yaml"
    (work / "verdaccio").mkdir()
    config.write_text(
        VERDACCIO_CONFIG.format(
            storage=work / "verdaccio" / "storage", htpasswd=work / "verdaccio" / "htpasswd"
        )
    )
    log = open(work / "verdaccio.log", "wb")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        ["node", str(binary), "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Verdaccio exited: {(work / 'verdaccio.log').read_text()[-2000:]}")
            try:
                if httpx.get(url + "-/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Verdaccio did not start")
            time.sleep(0.2)
        response = httpx.put(
            url + "-/user/org.couchdb.user:bench", json={"name": "bench", "password": "bench-password"}
        )
        response.raise_for_status()
        yield Registry("verdaccio", url, response.json()["token"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextmanager
def artifactory(work: Path) -> Iterator[Registry]:
    server = LiveServer(
        work / "artifactory", workers=2, env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"}
    ).start()
    try:
        yield registry("artifactory", server)
    finally:
        server.stop()


def registry(name: str, server: LiveServer) -> Registry:
    """A hosted npm repository `bench` on a running server of ours, and a token to publish with."""
    repo = server.create_repo("npm", name="bench")
    with server.client() as admin:
        token = admin.post("/api/v1/tokens", json={"name": "bench"}).json()["token"]
    return Registry(name, server.repo_url(repo), token, pid=server_pid(server))


# -- measurements ----------------------------------------------------------------------------
def load(
    registry: Registry,
    paths: list[str],
    accept: str,
    threads: int,
    connections: int,
    duration: int,
    work: Path,
) -> dict:
    """wrk's report of `paths` in turn, gzip accepted as npm does, with req/s and server CPU us/request."""
    script = work / "wrk.lua"
    listed = ", ".join(json.dumps(p) for p in paths)
    script.write_text(
        f"local paths = {{{listed}}}\nlocal i = 0\n"
        f'wrk.headers["Accept"] = "{accept}"\nwrk.headers["Accept-Encoding"] = "gzip"\n'
        'request = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n' + WRK_REPORT
    )
    wrk_bin = find_tool("wrk") or "wrk"
    report: dict[str, Any] = dict(
        wrk(wrk_bin, script, registry.url, (str(threads), str(connections)), duration, registry.pid)
    )
    report["rps"] = report["requests"] / (report["duration_us"] / 1e6)
    report["cpu_us"] = 1e6 * report["server_cores"] / report["rps"] if report["rps"] else 0.0
    if problem := describe_errors(report):
        report["problem"] = problem
    return report


def rotating(registry: Registry) -> list[str]:
    prefix = httpx.URL(registry.url).path
    return [prefix + package_name(i) for i in range(PACKAGES)]


def single(registry: Registry, package: str) -> list[str]:
    return [httpx.URL(registry.url).path + package]


def measure(registries: list[Registry], duration: int, installs: int, work: Path) -> None:
    """Each measurement on every registry in turn, so that load from elsewhere hits both alike."""
    for label, accept in (("full", FULL), ("abbreviated", ABBREVIATED)):
        for registry in registries:
            load(registry, rotating(registry), accept, 2, 32, 2, work)  # warm caches
            registry.results[f"{label}_rps"] = load(
                registry, rotating(registry), accept, 2, 32, duration, work
            )
        for package in (SMALL, BIG):
            for registry in registries:
                key = f"{label}_latency_{'big' if package == BIG else 'small'}"
                one = single(registry, package)
                load(registry, one, accept, 2, 8, 1, work)  # every worker has built it
                registry.results[key] = load(registry, one, accept, 1, 1, max(3, duration // 2), work)
    for run in range(installs):
        for registry in registries:
            seconds = npm_install(registry, work / f"install-{registry.name}-{run}")
            registry.installs.append(seconds)


def compare(args: argparse.Namespace, work: Path) -> Comparison:
    """Every figure on the base tree and on this one, interleaved, --rounds times."""
    comparison = Comparison()
    big = f"{args.big_versions}-version"
    noted = {
        "full packuments": "10,490 (s7)",
        "abbreviated packuments": "9,429 (s7)",
        f"abbreviated, {big} p50": "0.2 (s7)",
        f"abbreviated, {big} p99": "4.5 (s7)",
    }
    for label in ("full", "abbreviated"):
        comparison.figure(f"{label} packuments", "req/s", noted=noted.get(f"{label} packuments", ""))
        for size in ("3-version", big):
            for pct in ("p50", "p99"):
                name = f"{label}, {size} {pct}"
                comparison.figure(name, "ms", lower_is_better=True, noted=noted.get(name, ""))
    for label in ("full", "abbreviated"):
        comparison.figure(f"{label}, {big}, first GET after a publish", "ms", lower_is_better=True)
    comparison.figure(
        f"npm install {INSTALL_DEPENDENCIES} deps, cold", "s", lower_is_better=True, cpu_unit="ms/run",
        noted="0.58 (s7)",
    )  # fmt: skip
    servers = sides(args.base, args.base_commit, work)
    try:
        registries: dict[str, Registry] = {}
        for label, server in servers.items():
            print(f"{label}: starting and publishing", flush=True)
            server.start(timeout=60.0)
            registries[label] = registry(label, server)
            registries[label].results["populate_seconds"] = populate(registries[label], args.big_versions)
            check(registries[label], args.big_versions)
        for accept in (FULL, ABBREVIATED):
            for r in registries.values():
                load(r, rotating(r), accept, 2, 32, 2, work)  # warm caches, not counted
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds}", flush=True)
            for label, accept in (("full", FULL), ("abbreviated", ABBREVIATED)):
                for side in order(round_):
                    r = registries[side]
                    report = load(r, rotating(r), accept, 2, 32, args.duration, work)
                    comparison.add(
                        f"{label} packuments", side, report["rps"], report["cpu_us"], report["others"]
                    )
                for size, package in (("3-version", SMALL), (big, BIG)):
                    for side in order(round_):
                        r = registries[side]
                        load(r, single(r, package), accept, 2, 8, 1, work)  # both workers built it
                        report = load(r, single(r, package), accept, 1, 1, max(3, args.duration // 2), work)
                        for pct in ("p50", "p99"):
                            value = report[f"{pct}_us"] / 1000
                            comparison.add(
                                f"{label}, {size} {pct}", side, value, report["cpu_us"], report["others"]
                            )
                for side in order(round_):
                    r = registries[side]
                    times = [after_publish(r, accept, f"{90 + round_}.{len(label)}.{i}") for i in range(3)]
                    comparison.add(
                        f"{label}, {big}, first GET after a publish", side, statistics.median(times)
                    )
            for side in order(round_):
                r = registries[side]
                folder = work / f"install-{side}-{round_}"
                seconds, cpu = timed(server_pid(servers[side]), npm_install, r, folder)
                comparison.add(f"npm install {INSTALL_DEPENDENCIES} deps, cold", side, seconds, cpu)
    finally:
        for server in servers.values():
            server.stop()
    return comparison


def after_publish(registry: Registry, accept: str, version: str) -> float:
    """Milliseconds of the first GET of the big packument after one more version of it is published:
    the document is built again (the latency figures above are measured once it is cached)."""
    headers = {"Authorization": f"Bearer {registry.token}"}
    response = httpx.put(
        registry.url + BIG, json=publish_document(BIG, version, registry.url), headers=headers, timeout=60.0
    )
    response.raise_for_status()
    url = httpx.URL(registry.url + BIG)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=60.0)
    try:
        started = time.perf_counter()
        connection.request("GET", url.path, headers={"Accept": accept, "Accept-Encoding": "gzip"})
        answer = connection.getresponse()
        answer.read()  # the compressed bytes, as they come: no decoding counted
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if answer.status != 200:
        raise RuntimeError(f"{registry.name}: GET {BIG} after a publish: {answer.status}")
    return elapsed * 1000


def npm_install(registry: Registry, folder: Path) -> float:
    folder.mkdir(parents=True)
    dependencies = {package_name(i): "^1.0.0" for i in range(INSTALL_DEPENDENCIES)}
    (folder / "package.json").write_text(
        json.dumps({"name": "consumer", "version": "1.0.0", "dependencies": dependencies})
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_")}
    env.update(HOME=str(folder), npm_config_cache=str(folder / "cache"), npm_config_update_notifier="false")
    started = time.monotonic()
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--registry", registry.url],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
    )
    elapsed = time.monotonic() - started
    if len(list((folder / "node_modules").glob("bench-pkg-*"))) != INSTALL_DEPENDENCIES:
        raise RuntimeError(f"{registry.name}: npm install did not install {INSTALL_DEPENDENCIES} packages")
    return elapsed


# -- report ----------------------------------------------------------------------------------
def report(registries: list[Registry], big_versions: int) -> str:
    ours, theirs = registries

    def rps(r: Registry, label: str) -> str:
        return f"{r.results[f'{label}_rps']['rps']:,.0f}"

    def latency(r: Registry, key: str) -> str:
        result = r.results[key]
        return f"{result['p50_us'] / 1000:.1f} / {result['p99_us'] / 1000:.1f}"

    def install(r: Registry) -> str:
        return f"{statistics.median(r.installs):.2f}"

    rows = [
        ("full packuments, req/s (200 packages, -t2 -c32)", rps(ours, "full"), rps(theirs, "full")),
        ("abbreviated packuments, req/s", rps(ours, "abbreviated"), rps(theirs, "abbreviated")),
        (
            "full, 3 versions: p50 / p99 ms (1 connection)",
            latency(ours, "full_latency_small"),
            latency(theirs, "full_latency_small"),
        ),
        (
            f"full, {big_versions} versions: p50 / p99 ms",
            latency(ours, "full_latency_big"),
            latency(theirs, "full_latency_big"),
        ),
        (
            "abbreviated, 3 versions: p50 / p99 ms",
            latency(ours, "abbreviated_latency_small"),
            latency(theirs, "abbreviated_latency_small"),
        ),
        (
            f"abbreviated, {big_versions} versions: p50 / p99 ms",
            latency(ours, "abbreviated_latency_big"),
            latency(theirs, "abbreviated_latency_big"),
        ),
        (
            f"npm install of {INSTALL_DEPENDENCIES} dependencies, cold cache, s (median)",
            install(ours),
            install(theirs),
        ),
        (
            "publishing everything, s",
            f"{ours.results['populate_seconds']:.0f}",
            f"{theirs.results['populate_seconds']:.0f}",
        ),
    ]
    lines = [
        f"| measure | {ours.name} (--workers 2) | {theirs.name} {VERDACCIO_VERSION} |",
        "|---|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    abbreviated_ratio = ours.results["abbreviated_rps"]["rps"] / theirs.results["abbreviated_rps"]["rps"]
    install_ratio = statistics.median(ours.installs) / statistics.median(theirs.installs)
    lines.append("")
    lines.append(
        f"abbreviated req/s: {abbreviated_ratio:.1f}x Verdaccio (target >= 2x: "
        f"{'met' if abbreviated_ratio >= 2 else 'NOT met'}); install time: {install_ratio:.2f}x Verdaccio's "
        f"(target <= 1: {'met' if install_ratio <= 1.0 else 'NOT met'})"
    )
    for registry in registries:
        for key, value in registry.results.items():
            if isinstance(value, dict) and value.get("problem"):
                lines.append(f"{registry.name} {key}: {value['problem']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per req/s measurement")
    parser.add_argument("--big-versions", type=int, default=2000)
    parser.add_argument("--installs", type=int, default=3)
    parser.add_argument("--verdaccio-dir", type=Path, default=DEFAULT_VERDACCIO_DIR)
    add_base_arguments(parser)
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("npm") is None:
        print("needs wrk and npm on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="npm-bench-") as temp:
        work = Path(temp)
        if args.base:
            try:
                comparison = compare(args, work)
            finally:
                os.chdir("/")
            print(f"\nbase {args.base_commit} against now, {PACKAGES} packages + {args.big_versions} "
                  "versions, "
                  f"--workers 2, wrk -t2 -c32 {args.duration} s, {args.rounds} rounds")  # fmt: skip
            print(comparison.table())
            return 0
        with artifactory(work) as ours, verdaccio(work, args.verdaccio_dir) as theirs:
            registries = [ours, theirs]
            for registry_ in registries:
                print(f"{registry_.name}: publishing ...", flush=True)
                registry_.results["populate_seconds"] = populate(registry_, args.big_versions)
                check(registry_, args.big_versions)
            print("measuring ...", flush=True)
            measure(registries, args.duration, args.installs, work)
        print(report(registries, args.big_versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
