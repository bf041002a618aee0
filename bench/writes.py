"""Durable small uploads: 8 clients PUTting unique 1 KB raw files, artifactory against nginx's WebDAV.

    python bench/writes.py [--duration 10] [--servers nginx,sqlite,postgresql] [--workers 1,2]
                           [--rounds 1] [--inline-blob-bytes N]

wrk (-t2 -c8) sends PUTs of unique paths with unique 1 KB bodies (so no two share a blob) to
  - nginx with `dav_methods PUT;` (it writes the body and renames it into place; no fsync),
  - artifactory (`python -m artifactory serve`, uvicorn) on SQLite, once per worker count of
    `--workers` (1, the server's default, and 2),
  - the same on PostgreSQL (a schema of its own on ARTIFACTORY_TEST_DATABASE_URL or the local
    server's database `test`, dropped at the end),
into a raw hosted repository, and reports uploads/s (201 answers per second), latency and the load
average before and after each run (the machine is shared: compare runs made under the same load, and
uploads per server CPU-second, which load moves much less). Each artifactory 201 is durable: a 1 KB
body is at most the server's `inline_blob_bytes` (16 KiB by default), so its bytes are written into
its blob's row by the commit of its asset, which is on disk before the answer is sent.
`--inline-blob-bytes 0` measures the blob store's path instead: the blob file and its name are on
disk (two syncfs per batch of uploads arriving together) before the asset row commits. Afterwards a
sample of the uploaded paths is read back, so a server that answered 201 without storing is caught.
Everything listens on 127.0.0.1.

The server runs `python -m artifactory` from the current directory, which Python puts first on the
import path: to measure another checkout, run this script from that checkout's root.
`bench/publish.py` measures twine, npm publish and OCI push rates on the same write path.

`--rounds N` measures every server N times, round after round (each time on a new server and data
directory), and reports each column's median with the lowest and highest rate: on a shared machine
whose speed drifts by a fifth or more within minutes, one run per server says little, and
interleaved rounds spread the drift over every server alike.
"""

from __future__ import annotations

import argparse
import os
import pwd
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
from bench.run import WRK_REPORT, find_tool, read_tail, server_errors, stop_process, wait_for_port, wrk  # noqa: E402

REPO = "bench"
LOAD = ("2", "8")  # wrk threads, connections: 8 clients
SIZE = 1024
TARGET = 1000.0  # durable uploads/s on each database
WRK_ERRORS = ("connect", "read", "write", "status", "timeout")

# Each request a new path and a new body: "<run>/<thread>/<n>.bin", 1 KB whose first line names it.
PUT_SCRIPT = """
local counter = 0
local threads = {}
local run = "%(run)s"
local filler = string.rep("x", %(size)d)

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "PUT"
  wrk.headers["Authorization"] = "%(auth)s"
  wrk.headers["Content-Type"] = "application/octet-stream"
end

request = function()
  counter = counter + 1
  local name = run .. "/" .. id .. "/" .. counter .. ".bin"
  local head = name .. "\\n"
  local body = head .. string.sub(filler, 1, %(size)d - #head)
  return wrk.format("PUT", "%(prefix)s" .. name, nil, body)
end
"""

NGINX_CONF = """\
{user}daemon off;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {www}/.tmp;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw;
        }}
    }}
}}
"""


@contextmanager
def nginx_dav(nginx_bin: str, workdir: Path) -> Iterator[tuple[str, int]]:
    conf_dir = workdir / "nginx"
    www = workdir / "www"
    (www / ".tmp").mkdir(parents=True)
    conf_dir.mkdir()
    port = free_port()
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, dir=conf_dir, port=port, www=www))
    log = open(conf_dir / "stderr.log", "wb")  # noqa: SIM115 - the child keeps its copy
    process = subprocess.Popen(
        [nginx_bin, "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    try:
        try:
            wait_for_port(port, process, 15.0, "nginx")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{read_tail(conf_dir / 'error.log')}") from None
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop_process(process)


@contextmanager
def artifactory(
    data_dir: Path, database_url: str, workers: int, inline_blob_bytes: int | None = None
) -> Iterator[tuple[str, LiveServer, str]]:
    """The server with the raw hosted repository, and an Authorization value for its uploads: an API
    token (a password would be hashed again every time the credentials cache expires, and with the
    machine loaded that hashing, not the write path, would be what is measured)."""
    server = LiveServer(
        data_dir,
        database_url=database_url,
        workers=workers,
        env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"},
    )
    if inline_blob_bytes is not None:
        server.extra_env["ARTIFACTORY_INLINE_BLOB_BYTES"] = str(inline_blob_bytes)
    server.log_path = data_dir.parent / f"{data_dir.name}-server.log"
    try:
        server.start(timeout=60.0)
        with server.client() as admin:
            created = admin.post(
                "/api/v1/repositories", json={"name": REPO, "format": "raw", "type": "hosted"}
            )
            if created.status_code != 201:
                raise RuntimeError(f"creating repository: {created.status_code} {created.text}")
            token = admin.post("/api/v1/tokens", json={"name": "bench"})
            if token.status_code != 201:
                raise RuntimeError(f"creating a token: {token.status_code} {token.text}")
        yield server.url, server, "Bearer " + token.json()["token"]
    finally:
        server.stop()


def read_back(base_url: str, run: str, auth: str) -> str | None:
    """GET an early and a later upload of thread 1 (wrk builds, and drops, its first request
    itself) and compare their bytes; None when they match."""
    with httpx.Client(timeout=30.0, headers={"Authorization": auth}) as client:
        for n in (2, 20):
            name = f"{run}/1/{n}.bin"
            response = client.get(f"{base_url}/repository/{REPO}/{name}")
            if response.status_code != 200:
                return f"GET {name}: HTTP {response.status_code}"
            head = (name + "\n").encode()
            if response.content != head + b"x" * (SIZE - len(head)):
                return f"GET {name}: different bytes"
    return None


def measure(
    name: str, base_url: str, pid: int, wrk_bin: str, workdir: Path, duration: int, auth: str
) -> dict[str, float | str]:
    results: dict[str, float | str] = {}
    for phase, seconds in (("warmup", max(1, min(3, duration // 5))), ("run", duration)):
        run = f"{name}-{phase}-{int(time.time() * 1000)}"
        script = workdir / f"{run}.lua"
        script.write_text(
            PUT_SCRIPT % {"run": run, "size": SIZE, "auth": auth, "prefix": f"/repository/{REPO}/"}
            + WRK_REPORT
        )
        load_before = os.getloadavg()[0]
        report = wrk(wrk_bin, script, f"{base_url}/repository/{REPO}/", LOAD, seconds, pid)
        if phase == "warmup":
            continue
        load = f"{load_before:.1f}->{os.getloadavg()[0]:.1f}"
        elapsed = report["duration_us"] / 1e6
        ok = report["requests"] - report["status"]
        results = {
            "rate": ok / elapsed,
            "p50_ms": report["p50_us"] / 1000,
            "p99_ms": report["p99_us"] / 1000,
            "cpus": report["server_cores"],
            "others": report["others"],
            "load": load,
            "per_cpu": ok / elapsed / report["server_cores"] if report["server_cores"] else 0.0,
            "errors": ", ".join(
                f"{int(report[k])} {k}"
                for k in ("connect", "read", "write", "status", "timeout")
                if report[k]
            ),
        }
        problem = read_back(base_url, run, auth)
        if problem:
            results["errors"] = f"{results['errors']}; {problem}".strip("; ")
        print(
            f"  {name:10} {results['rate']:8,.0f} uploads/s  p50 {results['p50_ms']:.1f} ms  "
            f"p99 {results['p99_ms']:.1f} ms  server {results['cpus']:.2f} CPUs "
            f"({results['per_cpu']:,.0f} per CPU-second)  others {results['others']:.0f}%  "
            f"load {load}  {results['errors']}",
            flush=True,
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, choices=range(1, 601), metavar="SECONDS")
    parser.add_argument("--servers", default="nginx,sqlite,postgresql")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, choices=range(1, 21), metavar="N")
    parser.add_argument(
        "--inline-blob-bytes",
        type=int,
        default=None,
        metavar="N",
        help="the servers' inline_blob_bytes (default: theirs); 0 stores every body as a blob file",
    )
    args = parser.parse_args()
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    unknown = [name for name in wanted if name not in ("nginx", "sqlite", "postgresql")]
    if unknown:
        print(f"unknown server {unknown[0]!r}", file=sys.stderr)
        return 2
    wrk_bin, nginx_bin = find_tool("wrk"), find_tool("nginx")
    if wrk_bin is None or (nginx_bin is None and "nginx" in wanted):
        print("needs wrk and nginx: apt-get install -y wrk nginx-light", file=sys.stderr)
        return 2
    runs: dict[str, list[dict[str, float | str]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp:
        workdir = Path(tmp)
        for round_number in range(args.rounds):
            if args.rounds > 1:
                print(f"round {round_number + 1} of {args.rounds}", flush=True)
            for name in wanted:
                if name == "nginx":
                    assert nginx_bin is not None
                    with nginx_dav(nginx_bin, workdir / f"nginx-{round_number}") as (url, pid):
                        runs.setdefault(name, []).append(
                            measure(name, url, pid, wrk_bin, workdir, args.duration, "")
                        )
                    continue
                base = test_database_url()
                for workers in counts:
                    label = f"{name}-x{workers}"
                    schema, url = new_schema(base) if name == "postgresql" else ("", "")
                    try:
                        folder = workdir / f"{name}-{workers}-{round_number}"
                        with artifactory(folder, url, workers, args.inline_blob_bytes) as (
                            server_url,
                            server,
                            auth,
                        ):
                            assert server.process is not None
                            pid = server.process.pid
                            runs.setdefault(label, []).append(
                                measure(label, server_url, pid, wrk_bin, workdir, args.duration, auth)
                            )
                            for line in server_errors(server.log())[:8]:
                                print(f"    log: {line}")
                    finally:
                        if schema:
                            drop_schema(base, schema)
    results = {name: summary(measured) for name, measured in runs.items()}
    nginx_rate = results.get("nginx", {}).get("rate")
    print()
    rounds = f", median of {args.rounds} rounds (lowest-highest uploads/s)" if args.rounds > 1 else ""
    inline = "" if args.inline_blob_bytes is None else f", inline_blob_bytes={args.inline_blob_bytes}"
    print(f"{args.duration} s per server, wrk -t2 -c8, unique 1 KB bodies{inline}; -xN: --workers N{rounds}")
    print("| server | uploads/s | % of nginx | p50 ms | p99 ms | server CPUs | per CPU-s | load | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        share = f"{100 * float(r['rate']) / float(nginx_rate):.0f}%" if nginx_rate else "-"
        spread = f" ({r['spread']})" if args.rounds > 1 else ""
        print(
            f"| {name} | {float(r['rate']):,.0f}{spread} | {share} | {float(r['p50_ms']):.1f} | "
            f"{float(r['p99_ms']):.1f} | {float(r['cpus']):.2f} | {float(r['per_cpu']):,.0f} | "
            f"{r['load']} | {r['errors'] or '-'} |"
        )
    verdict = 0
    for name, r in results.items():
        if name != "nginx":
            met = float(r["rate"]) >= TARGET
            verdict |= 0 if met else 1
            print(f"{name}: {'meets' if met else 'misses'} the target of {TARGET:,.0f} durable uploads/s")
    return verdict


def summary(measured: list[dict[str, float | str]]) -> dict[str, float | str]:
    """Each numeric column's median over the rounds, the lowest and highest rate, the load range,
    and every round's errors."""
    numbers = ("rate", "p50_ms", "p99_ms", "cpus", "others", "per_cpu")
    result: dict[str, float | str] = {
        key: statistics.median(float(m[key]) for m in measured) for key in numbers
    }
    rates = [float(m["rate"]) for m in measured]
    result["spread"] = f"{min(rates):,.0f}-{max(rates):,.0f}"
    loads = [str(m["load"]) for m in measured]
    first, last = loads[0].split("->")[0], loads[-1].split("->")[-1]
    result["load"] = loads[0] if len(loads) == 1 else f"{first}..{last}"
    result["errors"] = "; ".join(str(m["errors"]) for m in measured if m["errors"])
    return result


if __name__ == "__main__":
    sys.exit(main())
