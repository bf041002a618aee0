"""The proxy's cold-miss path before and after streaming verification, measured in one run.

    git worktree add /tmp/base 880f158         # the tree before verification (once)
    python bench/proxy_verify.py [--base /tmp/base] [--rounds 3] [--small 200] [--large 6]

Starts one loopback upstream (`python -m http.server` over generated files) and two servers side by
side, each `python -m artifactory serve --workers 2` on its own SQLite data dir: the base tree
(PYTHONPATH pointing at --base) and this tree. Every round creates a fresh raw proxy on each server
and fetches every file once through it (all misses), with 8 client threads:

- small: --small files of 16 KiB, reported as files/s (the per-miss cost: lease, fetch, store, commit);
- large: --large files of 32 MiB, reported as MB/s (MB = 2**20 bytes; the streaming path).

This tree is measured twice: as it runs with no digest declared (what every raw proxy does), and with
a sha256 declared for every file, so each byte is also checked. A format declares digests as pypi and
npm do: `declared_by(path)` names the upstream document that lists the file, and `parse` turns that
document into `Parsed.files` ({path: FileRef(url, digests)}), which the proxy fetches once and
verifies every file against while it streams. The declared variant is a proxy of `raw-declared`
(`DeclaredRaw` below: raw, plus an upstream `index.json` mapping every path to its sha256), which the
current server loads as a plugin (this module, through the `plugins` setting). Before anything is
measured, a file that does not match the sha256 index.json declares for it must be refused by the
declared variant and served whole by plain raw, so the figures are those of a proxy that verifies.

Rounds alternate which server goes first; the table gives medians, and each result of this tree as
a percentage of the base. Every body is checked against its sha256. Nothing is written
outside a temporary directory, which is removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from artifactory_formats.raw.format import RawFormat  # noqa: E402

from artifactory.plugin import (  # noqa: E402
    FileRef,
    FormatRegistry,
    IndexKey,
    Parsed,
    UpstreamDocument,
    hookimpl,
)
from artifactory.testing.server import LiveServer, free_port  # noqa: E402

SMALL_SIZE, LARGE_SIZE = 16 * 1024, 32 * 1024 * 1024
CLIENTS = 8
MIB = 1024 * 1024
INDEX = "index.json"  # {path: {"sha256": hex}} of every file the upstream serves
TAMPERED = "check/tampered.bin"  # index.json declares another file's sha256 for it
PLUGIN = "proxy_verify"  # this module, as the current server imports it


class DeclaredRaw(RawFormat):
    """Raw, with every file's sha256 declared by the upstream's index.json, as a simple page declares
    a wheel's (the document is fetched once per proxy and cached like any index document)."""

    id = "raw-declared"

    def declared_by(self, path: str) -> IndexKey | None:
        return IndexKey("index")

    def upstream_document(self, key: IndexKey) -> UpstreamDocument | None:
        return UpstreamDocument(INDEX, accept="application/json")

    def parse(self, key: IndexKey, body: bytes, url: str) -> Parsed | None:
        declared = json.loads(body)
        base = url.rsplit("/", 1)[0] + "/"
        return Parsed(declared, {path: FileRef(base + path, digests) for path, digests in declared.items()})


@hookimpl
def artifactory_register_formats(registry: FormatRegistry) -> None:
    registry.add(DeclaredRaw())


@contextmanager
def upstream(directory: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the upstream did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def importable(tree: Path, directory: Path) -> Path:
    """A PYTHONPATH entry under which the engine, the formats and the migrations all come from `tree`
    (the editable install maps the last two to this checkout's folders, whatever PYTHONPATH says)."""
    shim = directory / "path"
    shim.mkdir(parents=True)
    for name, folder in (("artifactory", "artifactory"), ("artifactory_formats", "formats"),
                         ("artifactory_migrations", "migrations")):  # fmt: skip
        (shim / name).symlink_to(tree / folder)
    return shim


def make_files(directory: Path, small: int, large: int) -> dict[str, str]:
    """{path: sha256} of every file the upstream serves; its index.json declares them."""
    digests = {}
    for kind, count, size in (("small", small, SMALL_SIZE), ("large", large, LARGE_SIZE)):
        (directory / kind).mkdir(parents=True)
        for i in range(count):
            data = os.urandom(size)
            path = f"{kind}/{i}.bin"
            (directory / path).write_bytes(data)
            digests[path] = hashlib.sha256(data).hexdigest()
    declared = {path: {"sha256": d} for path, d in digests.items()}
    (directory / TAMPERED).parent.mkdir()
    (directory / TAMPERED).write_bytes(os.urandom(1024))
    declared[TAMPERED] = {"sha256": hashlib.sha256(b"other bytes").hexdigest()}
    (directory / INDEX).write_text(json.dumps(declared))
    return digests


def serves_tampered(server: LiveServer, name: str) -> bool:
    """Whether proxy `name` answers the whole of a file that does not match its declared sha256."""
    try:
        with httpx.stream("GET", server.repo_url(name) + TAMPERED, timeout=60) as response:
            if response.status_code != 200:
                return False
            response.read()
    except httpx.HTTPError:  # cut before its last chunk
        return False
    return True


def fetch_all(server: LiveServer, name: str, digests: dict[str, str]) -> float:
    """Seconds to fetch every path once through the proxy `name`, checking each body."""

    def one(client_paths: list[str]) -> None:
        with httpx.Client(timeout=120) as client:
            for path in client_paths:
                sha = hashlib.sha256()
                with client.stream("GET", server.repo_url(name) + path) as response:
                    if response.status_code != 200:
                        raise RuntimeError(f"{path}: HTTP {response.status_code}")
                    for chunk in response.iter_bytes():
                        sha.update(chunk)
                if sha.hexdigest() != digests[path]:
                    raise RuntimeError(f"{path}: wrong bytes")

    paths = list(digests)
    shares = [paths[i::CLIENTS] for i in range(CLIENTS)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(one, shares))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=Path("/tmp/base"), help="worktree of the base commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=6)
    args = parser.parse_args(argv)
    if not (args.base / "artifactory" / "repository" / "proxy.py").is_file():
        print(f"no base tree at {args.base}: git worktree add {args.base} 880f158", file=sys.stderr)
        return 2

    # Here, not at the top: the server imports this module as a plugin, and common imports it too.
    from common import base_importable
    from run import _tree_cpu

    work = Path(tempfile.mkdtemp(prefix="proxy-verify-"))
    # `python -m` puts the working directory first on sys.path: it must not be a checkout.
    os.chdir(work)
    servers: dict[str, LiveServer] = {}
    cpu_of: dict[str, LiveServer] = {}
    try:
        files = work / "upstream"
        digests = make_files(files, args.small, args.large)
        small = {p: d for p, d in digests.items() if p.startswith("small/")}
        large = {p: d for p, d in digests.items() if p.startswith("large/")}
        with upstream(files) as url:
            for label, tree in (("base", args.base.resolve()), ("current", ROOT)):
                if label == "base":  # with an empty module for each plugin the base lacks
                    shim = base_importable(tree, work / label)
                    env = {}
                else:  # with the format of the declared variant
                    shim = importable(tree, work / label)
                    (shim / f"{PLUGIN}.py").symlink_to(Path(__file__).resolve())
                    env = {"ARTIFACTORY_PLUGINS": PLUGIN}
                env |= {"PYTHONPATH": str(shim), "ARTIFACTORY_CONFIG_CACHE_SECONDS": "1"}
                server = LiveServer(work / label / "data", workers=2, env=env)
                servers[label] = server.start()
                cpu_of[label] = server
            warmups = [("base", "raw"), ("current", "raw"), ("current", DeclaredRaw.id)]
            for label, fmt in warmups:  # not counted: imports, pools, first SQL, the first document
                name = f"warmup-{fmt}"
                servers[label].create_repo(fmt, "proxy", name=name, url=url, block_after_failures=0)
                fetch_all(servers[label], name, dict(list(small.items())[:16]))
                if serves_tampered(servers[label], name) != (fmt == "raw"):
                    raise RuntimeError(f"{fmt} on {label}: declared digests are not what decides")
            variants = [("base", False), ("current", False), ("current", True)]
            results: dict[tuple[str, bool, str], list[tuple[float, float]]] = {}
            for round_ in range(args.rounds):
                order = variants if round_ % 2 == 0 else variants[::-1]
                for label, declared in order:
                    server = servers[label]
                    assert server.process is not None
                    for kind, wanted in (("small", small), ("large", large)):
                        if not wanted:
                            continue
                        name = f"p{uuid.uuid4().hex[:8]}"
                        fmt = DeclaredRaw.id if declared else "raw"
                        server.create_repo(fmt, "proxy", name=name, url=url, block_after_failures=0)
                        cpu = _tree_cpu(server.process.pid)
                        seconds = fetch_all(server, name, wanted)
                        cpu = _tree_cpu(server.process.pid) - cpu
                        if kind == "small":  # files/s, server CPU ms per miss
                            value, cost = len(wanted) / seconds, 1000 * cpu / len(wanted)
                        else:  # MB/s, server CPU s per GiB
                            value, cost = (
                                len(wanted) * LARGE_SIZE / MIB / seconds,
                                cpu / (len(wanted) * LARGE_SIZE / 2**30),
                            )
                        results.setdefault((label, declared, kind), []).append((value, cost))
                        unit = "files/s, CPU ms/miss" if kind == "small" else "MB/s, CPU s/GiB"
                        tag = f"{label}{' +sha256' if declared else ''}"
                        print(
                            f"round {round_ + 1}: {tag:<16} {kind:<5} {value:8.1f} {cost:8.2f} ({unit})",
                            flush=True,
                        )
        print()
        print(table(results))
    except BaseException:
        for label, server in servers.items():
            print(f"--- {label} server log ---\n{server.log()}", file=sys.stderr)
        raise
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def table(results: dict[tuple[str, bool, str], list[tuple[float, float]]]) -> str:
    rows = [
        "| cold miss (median) | base (880f158) | current, no digest | current, sha256 declared |",
        "|---|---:|---:|---:|",
    ]
    for kind, units in (
        ("small", ("files/s (16 KiB)", "server CPU ms per miss")),
        ("large", ("MB/s (32 MiB files)", "server CPU s per GiB")),
    ):
        if ("base", False, kind) not in results:
            continue
        for column, unit in enumerate(units):
            base = statistics.median(v[column] for v in results[("base", False, kind)])
            cells = [f"{base:.2f}"]
            for declared in (False, True):
                value = statistics.median(v[column] for v in results[("current", declared, kind)])
                cells.append(f"{value:.2f} ({100 * value / base:.0f}%)")
            rows.append(f"| {unit} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
