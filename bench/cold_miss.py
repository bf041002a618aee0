"""Proxy cold misses: the first GET of each file through a raw proxy whose upstream is nginx.

    python bench/cold_miss.py [--files 1500] [--clients 8] [--servers sqlite,postgresql] [--workers 2]

nginx serves `--files` distinct 4 KB files statically on 127.0.0.1. For each database, artifactory
(`python -m artifactory serve`, uvicorn) gets a raw proxy repository of that nginx, and `--clients`
concurrent httpx clients GET every file once through it (every GET a cold miss: lookup, claim,
upstream fetch, store, answer), then once more (every GET a hit). The same clients GET the same
files straight from nginx for scale. Each body is checked against the file's bytes. Reported:
requests/s and latency percentiles per phase. The transaction count per cold miss is a test
(tests/artifactory/engine/test_write_path.py), not a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from artifactory.testing.fixtures import drop_schema, new_schema, test_database_url  # noqa: E402
from artifactory.testing.server import LiveServer, free_port  # noqa: E402
from bench.run import NGINX_CONF, find_tool, read_tail, server_errors, stop_process, wait_for_port  # noqa: E402

SIZE = 4096
REPO = "upstream"


@contextmanager
def nginx_static(nginx_bin: str, workdir: Path, files: dict[str, bytes]) -> Iterator[str]:
    import pwd

    conf_dir, www = workdir / "nginx", workdir / "www"
    served = www / "repository" / REPO
    served.mkdir(parents=True)
    conf_dir.mkdir()
    for name, data in files.items():
        (served / name).write_bytes(data)
    port = free_port()
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, dir=conf_dir, port=port, www=www))
    process = subprocess.Popen(
        [nginx_bin, "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        try:
            wait_for_port(port, process, 15.0, "nginx")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{read_tail(conf_dir / 'error.log')}") from None
        yield f"http://127.0.0.1:{port}/repository/{REPO}/"
    finally:
        stop_process(process)


async def fetch_all(base: str, names: list[str], digests: dict[str, str], clients: int) -> dict[str, float]:
    """GET every name once with `clients` concurrent connections; rate and latency percentiles."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        queue.put_nowait(name)
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                name = queue.get_nowait()
                started = time.perf_counter()
                response = await client.get(base + name)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors.append(f"{name}: HTTP {response.status_code}")
                elif hashlib.sha256(response.content).hexdigest() != digests[name]:
                    errors.append(f"{name}: different bytes")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} failed GETs, e.g. {errors[:3]}")
    cuts = statistics.quantiles(latencies, n=100)
    return {"rate": len(names) / elapsed, "p50": cuts[49] * 1000, "p99": cuts[98] * 1000}


def show(name: str, phase: str, result: dict[str, float]) -> None:
    print(
        f"  {name:10} {phase:5} {result['rate']:8,.0f} GETs/s  p50 {result['p50']:6.1f} ms  "
        f"p99 {result['p99']:6.1f} ms",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--servers", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    nginx_bin = find_tool("nginx")
    if nginx_bin is None:
        print("needs nginx: apt-get install -y nginx-light", file=sys.stderr)
        return 2
    files = {f"f{i:06d}.bin": os.urandom(SIZE) for i in range(args.files)}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    names = list(files)
    rows: list[tuple[str, str, dict[str, float]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp,
        nginx_static(nginx_bin, Path(tmp), files) as upstream,
    ):
        direct = asyncio.run(fetch_all(upstream, names, digests, args.clients))
        show("nginx", "direct", direct)
        rows.append(("nginx", "direct", direct))
        for name in [s.strip() for s in args.servers.split(",") if s.strip()]:
            base_url = test_database_url()
            schema, url = new_schema(base_url) if name == "postgresql" else ("", "")
            server = LiveServer(
                Path(tmp) / name, database_url=url, workers=args.workers,
                env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"},
            )  # fmt: skip
            server.log_path = Path(tmp) / f"{name}-server.log"
            try:
                server.start(timeout=60.0)
                with server.client() as admin:
                    created = admin.post(
                        "/api/v1/repositories",
                        json={"name": "proxy", "format": "raw", "type": "proxy", "url": upstream},
                    )
                    if created.status_code != 201:
                        raise RuntimeError(f"creating the proxy: {created.status_code} {created.text}")
                through = server.repo_url("proxy")
                for phase in ("cold", "warm"):
                    result = asyncio.run(fetch_all(through, names, digests, args.clients))
                    show(name, phase, result)
                    rows.append((name, phase, result))
                for line in server_errors(server.log())[:5]:
                    print(f"    log: {line}")
            finally:
                server.stop()
                if schema:
                    drop_schema(base_url, schema)
    print()
    print(f"{args.files} files of {SIZE} bytes, {args.clients} clients, --workers {args.workers}")
    print("| server | phase | GETs/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, phase, r in rows:
        print(f"| {name} | {phase} | {r['rate']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
