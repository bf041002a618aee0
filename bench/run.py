"""Serve the same files from artifactory (uvicorn, granian) and from nginx, load them with wrk, compare.

    python bench/run.py [--duration 10] [--only small|large] [--servers uvicorn,granian,nginx]
    python bench/run.py --base /tmp/base-5af08a4 [--base-commit 5af08a4] [--rounds 3] [--only ...]

Small: GET of a 1 KB raw asset, wrk -t2 -c32, reported as requests/s.
Large: GET of a 100 MB raw asset, wrk -t2 -c4, reported as MB/s (MB = 2**20 bytes) from the bytes
wrk read. One server runs at a time; everything listens on 127.0.0.1 and lives in one temp dir.
With --base, nginx and granian are left out: the tree of --base-commit and this one run side by side
(uvicorn) holding the same files, measured in turn in each of --rounds rounds (see common.py).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from artifactory.testing.server import LiveServer, free_port  # noqa: E402

REPO = "bench"
SMALL_NAME, SMALL_SIZE = "small.bin", 1024
LARGE_NAME, LARGE_SIZE = "large.bin", 100 * 1024 * 1024
SMALL_LOAD = ("2", "32")  # wrk threads, connections
LARGE_LOAD = ("2", "4")
SERVER_WORKERS = 2
TARGETS = {"small": 15.0, "large": 60.0}  # percent of nginx
ALL_SERVERS = ("nginx", "uvicorn", "granian")
MIB = 1024 * 1024
BUSY_WARNING = 10.0  # percent of all CPUs used by other processes during a measurement

# wrk's own summary as one JSON line, so nothing depends on its human-readable output.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "bytes": %d, "duration_us": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""

# nginx as every script here runs it; `{body}` is the inside of its server block (root, locations).
NGINX_TEMPLATE = """\
{user}daemon off;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ text/html html; }}
    default_type application/octet-stream;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
{body}
    }}
}}
"""
NGINX_CONF = NGINX_TEMPLATE.replace("{body}", "        root {www};")  # a folder served as it is


class Interrupted(Exception):
    pass


@dataclass
class Result:
    server: str
    small_rps: float | None = None
    large_mbps: float | None = None
    problems: list[str] = field(default_factory=list)
    contended: bool = False  # other processes took a noticeable share of the CPUs meanwhile


# -- setup -----------------------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if os.access(p, os.X_OK)), None
    )


def make_files(directory: Path) -> dict[str, Path]:
    """The 1 KB and 100 MB files: random bytes made here, so they never compress or dedupe."""
    directory.mkdir(parents=True)
    small = directory / SMALL_NAME
    small.write_bytes(os.urandom(SMALL_SIZE))
    large = directory / LARGE_NAME
    with open(large, "wb") as handle:
        for _ in range(LARGE_SIZE // MIB):
            handle.write(os.urandom(MIB))
    return {SMALL_NAME: small, LARGE_NAME: large}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def check_served(base_url: str, files: dict[str, Path], digests: dict[str, str]) -> None:
    """Refuse to benchmark a server that does not return exactly these bytes."""
    with httpx.Client(timeout=60.0) as client:
        for name in files:
            digest = hashlib.sha256()
            with client.stream("GET", f"{base_url}/repository/{REPO}/{name}") as response:
                if response.status_code != 200:
                    raise RuntimeError(f"GET {name} from {base_url}: HTTP {response.status_code}")
                for chunk in response.iter_bytes():
                    digest.update(chunk)
            if digest.hexdigest() != digests[name]:
                raise RuntimeError(f"GET {name} from {base_url} returned different bytes")


def upload(server: LiveServer, files: dict[str, Path]) -> None:
    with server.client() as admin:
        response = admin.get(f"/repository/{REPO}/{SMALL_NAME}", auth=None)
        if response.status_code == 200:
            return  # the shared data dir already holds them (an earlier server in this run)
        created = admin.post("/api/v1/repositories", json={"name": REPO, "format": "raw", "type": "hosted"})
        if created.status_code not in (201, 409):
            raise RuntimeError(f"creating repository: {created.status_code} {created.text}")
        for name, path in files.items():
            with open(path, "rb") as handle:
                put = admin.put(f"/repository/{REPO}/{name}", content=handle)
            if put.status_code != 201:
                raise RuntimeError(f"uploading {name}: {put.status_code} {put.text}")


# -- servers ---------------------------------------------------------------------------------------


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group it leads, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def nginx_server(conf_dir: Path, body: str) -> Iterator[tuple[str, int]]:
    """nginx in the foreground on a free port with its own config, pid, logs and temp paths in
    `conf_dir`; `body` is the inside of its `server` block (root, locations). Yields (url, pid)."""
    binary = find_tool("nginx")
    if binary is None:
        raise RuntimeError("nginx is not installed: apt-get install -y nginx-light")
    conf_dir.mkdir(parents=True)
    port = free_port()
    # As root nginx hands requests to workers running as "nobody", who could not read our 0700 temp
    # dir; run them as ourselves instead. As anyone else the directive is ignored, so leave it out.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_TEMPLATE.format(user=user, dir=conf_dir, port=port, body=body))
    log = open(conf_dir / "stderr.log", "wb")  # noqa: SIM115 - closed below, the child keeps its copy
    process = subprocess.Popen(
        [binary, "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")],
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
            logs = read_tail(conf_dir / "stderr.log") + read_tail(conf_dir / "error.log")
            raise RuntimeError(f"{exc}:\n{logs}") from None
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop_process(process)


@contextmanager
def nginx(workdir: Path, files: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """nginx serving the files at the same URL paths as artifactory."""
    www = workdir / "www"
    served = www / "repository" / REPO
    served.mkdir(parents=True)
    for name, path in files.items():
        os.link(path, served / name)
    with nginx_server(workdir / "nginx", f"        root {www};") as found:
        yield found


@contextmanager
def artifactory(kind: str, data_dir: Path, files: dict[str, Path]) -> Iterator[tuple[str, LiveServer]]:
    server = LiveServer(
        data_dir,
        workers=SERVER_WORKERS,
        server=kind,
        # The default cache lifetime (LiveServer shortens it for tests).
        env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"},
    )
    server.log_path = data_dir.parent / f"{kind}-server.log"
    try:
        server.start(timeout=60.0)
        upload(server, files)
        yield server.url, server
    finally:
        server.stop()


def read_tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except FileNotFoundError:
        return ""


def server_errors(log_text: str) -> list[str]:
    """Log lines that look like trouble (tracebacks, errors, warnings) with duplicates folded."""
    seen: dict[str, int] = {}
    for line in log_text.splitlines():
        if any(word in line for word in ("Traceback", "ERROR", "Error", "WARNING", "CRITICAL", "[error]")):
            key = line.strip()[:200]
            seen[key] = seen.get(key, 0) + 1
    return [f"{line}  (x{count})" if count > 1 else line for line, count in seen.items()]


# -- load ------------------------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds summed over all CPUs since boot; irq time and steal left out of busy."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    user, nice, system = fields[0], fields[1], fields[2]
    return (user + nice + system) / TICKS, sum(fields) / TICKS


def _tree_cpu(root: int) -> float:
    """CPU seconds used so far by `root` and its living descendants (a server and its workers)."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(used.get(pid, 0.0) for pid in tree)


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Percent of all CPUs busy over `seconds` (nothing of ours runs then)."""
    try:
        busy0, total0 = _cpu_times()
        time.sleep(seconds)
        busy1, total1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return 100.0 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else None


def wrk(
    wrk_bin: str, script: Path, url: str, load: tuple[str, str], seconds: int, server_pid: int | None = None
) -> dict[str, float]:
    """One wrk run; its summary, plus `others`: percent of all CPUs used by neither wrk nor the server."""
    threads, connections = load
    command = [
        wrk_bin, "-t", threads, "-c", connections, "-d", f"{seconds}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    busy0, total0 = _cpu_times()
    server0 = _tree_cpu(server_pid) if server_pid else 0.0
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server1 = _tree_cpu(server_pid) if server_pid else 0.0
    busy1, total1 = _cpu_times()
    ours = (
        (server1 - server0)
        + (children1.ru_utime - children0.ru_utime)
        + (children1.ru_stime - children0.ru_stime)
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            report: dict[str, float] = json.loads(line[len("WRK_JSON ") :])
            report["others"] = max(0.0, 100.0 * (busy1 - busy0 - ours) / (total1 - total0 or 1))
            report["server_cores"] = (server1 - server0) / (report["duration_us"] / 1e6)
            return report
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")


def describe_errors(report: dict[str, float]) -> str | None:
    errors = {k: int(report[k]) for k in ("connect", "read", "write", "status", "timeout") if report[k]}
    if not errors:
        return None
    return ", ".join(f"{count} {kind}" for kind, count in errors.items())


def measure(
    name: str,
    base_url: str,
    server_pid: int,
    wrk_bin: str,
    script: Path,
    duration: int,
    only: str | None,
    result: Result,
) -> None:
    warmup = max(1, min(3, duration // 5))
    for kind, file_name, load in (("small", SMALL_NAME, SMALL_LOAD), ("large", LARGE_NAME, LARGE_LOAD)):
        if only not in (None, kind):
            continue
        url = f"{base_url}/repository/{REPO}/{file_name}"
        wrk(wrk_bin, script, url, load, warmup, server_pid)
        report = wrk(wrk_bin, script, url, load, duration, server_pid)
        seconds = report["duration_us"] / 1e6
        if kind == "small":
            result.small_rps = report["requests"] / seconds
            shown = f"{result.small_rps:10,.0f} req/s (p50 {report['p50_us'] / 1000:.2f} ms)"
        else:
            result.large_mbps = report["bytes"] / MIB / seconds
            shown = f"{result.large_mbps:10,.0f} MB/s  ({int(report['requests'])} whole responses)"
        print(
            f"  {name:8} {kind}: {shown}, server used {report['server_cores']:.2f} CPUs, "
            f"other processes {report['others']:.0f}% of all CPUs",
            flush=True,
        )
        if problem := describe_errors(report):
            result.problems.append(f"{kind} GET: wrk saw {problem}")
        if report["others"] > BUSY_WARNING:
            result.contended = True
            result.problems.append(
                f"{kind} GET: other processes used {report['others']:.0f}% of the CPUs meanwhile, "
                "so this number is unreliable"
            )


# -- report ----------------------------------------------------------------------------------------


def percent(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return 100.0 * value / base


def table(results: dict[str, Result]) -> str:
    nginx_result = results.get("nginx")
    base_small = nginx_result.small_rps if nginx_result else None
    base_large = nginx_result.large_mbps if nginx_result else None

    def cell(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    header = ("server", "small GET req/s", "% of nginx", "large GET MB/s", "% of nginx")
    rows = [header]
    for name in ALL_SERVERS:
        if name not in results:
            continue
        r = results[name]
        rows.append(
            (
                name,
                cell(r.small_rps, ",.0f"),
                cell(percent(r.small_rps, base_small), ".1f") + ("%" if base_small and r.small_rps else ""),
                cell(r.large_mbps, ",.0f"),
                cell(percent(r.large_mbps, base_large), ".1f") + ("%" if base_large and r.large_mbps else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = zip(row, widths, strict=True)
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdicts(results: dict[str, Result]) -> list[str]:
    base = results.get("nginx")
    if base is None:
        return ["targets: not judged (nginx was not measured in this run)"]
    lines = []
    for name in ("uvicorn", "granian"):
        if name not in results:
            continue
        r = results[name]
        parts = []
        for kind, value, reference in (
            ("small", r.small_rps, base.small_rps),
            ("large", r.large_mbps, base.large_mbps),
        ):
            share = percent(value, reference)
            if share is None:
                continue
            verdict = "met" if share >= TARGETS[kind] else "MISSED"
            parts.append(f"{kind} {share:.1f}% (target >= {TARGETS[kind]:.0f}%: {verdict})")
        if parts:
            caveat = " (UNRELIABLE: the machine was busy, see below)" if r.contended or base.contended else ""
            lines.append(f"targets {name}: " + "; ".join(parts) + caveat)
    return lines


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per measurement")
    parser.add_argument("--only", choices=["small", "large"], help="measure one file size only")
    parser.add_argument(
        "--servers", default=",".join(ALL_SERVERS), help="comma-separated: uvicorn,granian,nginx"
    )
    parser.add_argument("--base", type=Path, help="compare with an older tree: see common.py")
    parser.add_argument("--base-commit", default="5af08a4", help="the commit of --base")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of base and now (medians)")
    args = parser.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(servers) - set(ALL_SERVERS))
    if unknown or not servers:
        parser.error(f"--servers takes some of {','.join(ALL_SERVERS)}, not {args.servers!r}")
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    # nginx first so the table's reference exists before the others are measured.
    args.servers = [s for s in ALL_SERVERS if s in servers]
    return args


def compare(args: argparse.Namespace, wrk_bin: str, workdir: Path) -> None:
    """Both file sizes on the base tree and on this one, interleaved, --rounds times; prints the table."""
    from common import Comparison, order, server_pid, sides, wrk_rate

    comparison = Comparison()
    figures = {
        "small": comparison.figure(f"{SMALL_SIZE} B raw GET", "req/s", noted="12,269 (s7)"),
        "large": comparison.figure(
            f"{LARGE_SIZE // MIB} MB raw GET", "MB/s", cpu_unit="us/MB", noted="2,059 (s7)"
        ),
    }
    files = make_files(workdir / "files")
    digests = {name: sha256_of(path) for name, path in files.items()}
    script = workdir / "report.lua"
    script.write_text(WRK_REPORT)
    servers = sides(args.base, args.base_commit, workdir)
    try:
        for label, server in servers.items():
            print(f"{label}: starting", flush=True)
            server.start(timeout=60.0)
            upload(server, files)
            check_served(server.url, files, digests)
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds}", flush=True)
            for kind, name, load in (("small", SMALL_NAME, SMALL_LOAD), ("large", LARGE_NAME, LARGE_LOAD)):
                if args.only not in (None, kind):
                    continue
                for label in order(round_):
                    url = f"{servers[label].url}/repository/{REPO}/{name}"
                    pid = server_pid(servers[label])
                    rps, cpu, report = wrk_rate(wrk_bin, script, url, load, args.duration, pid)
                    if kind == "large":
                        rps = report["bytes"] / MIB / (report["duration_us"] / 1e6)
                        cpu = 1e6 * report["server_cores"] / rps if rps else 0.0
                    comparison.add(figures[kind].name, label, rps, cpu, report["others"])
    finally:
        for server in servers.values():
            server.stop()
        os.chdir("/")
    print(f"\nbase {args.base_commit} against now, --workers {SERVER_WORKERS} (uvicorn), {args.duration} s "
          f"per figure, {args.rounds} rounds")  # fmt: skip
    print(comparison.table())


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk_bin = find_tool("wrk")
    nginx_bin = find_tool("nginx") if "nginx" in args.servers else "unused"
    missing = [name for name, found in (("wrk", wrk_bin), ("nginx", nginx_bin)) if not found]
    if missing:
        print(f"missing {' and '.join(missing)}: apt-get install -y wrk nginx-light", file=sys.stderr)
        return 2
    assert wrk_bin is not None and nginx_bin is not None

    # Ctrl-C even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGHUP, _raise_interrupted)
    results: dict[str, Result] = {}
    workdir = Path(tempfile.mkdtemp(prefix="artifactory-bench-"))
    status = 0
    try:
        if args.base:
            compare(args, wrk_bin, workdir)
            return 0
        print(f"making {SMALL_SIZE} B and {LARGE_SIZE // MIB} MB random files in {workdir}", flush=True)
        files = make_files(workdir / "files")
        digests = {name: sha256_of(path) for name, path in files.items()}
        script = workdir / "report.lua"
        script.write_text(WRK_REPORT)
        data_dir = workdir / "data"
        for name in args.servers:
            result = results[name] = Result(name)
            busy = cpu_busy()
            shown = "?" if busy is None else f"{busy:.0f}%"
            print(f"{name}: starting (CPUs busy beforehand: {shown})", flush=True)
            if name == "nginx":
                with nginx(workdir, files) as (url, pid):
                    check_served(url, files, digests)
                    measure(name, url, pid, wrk_bin, script, args.duration, args.only, result)
                result.problems += server_errors(read_tail(workdir / "nginx" / "error.log", 20000))
            else:
                with artifactory(name, data_dir, files) as (url, server):
                    check_served(url, files, digests)
                    assert server.process is not None
                    pid = server.process.pid
                    measure(name, url, pid, wrk_bin, script, args.duration, args.only, result)
                result.problems += server_errors(read_tail(server.log_path, 200000))
        print()
        print(
            f"GET /repository/{REPO}/<file>, {SMALL_SIZE} B with wrk -t{SMALL_LOAD[0]} -c{SMALL_LOAD[1]}, "
            f"{LARGE_SIZE // MIB} MB with wrk -t{LARGE_LOAD[0]} -c{LARGE_LOAD[1]}, {args.duration} s each; "
            f"artifactory --workers {SERVER_WORKERS}; nginx worker_processes 2; {os.cpu_count()} CPUs"
        )
        print(table(results))
        for line in verdicts(results):
            print(line)
        for name, result in results.items():
            for problem in result.problems:
                print(f"{name}: {problem}")
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"\ninterrupted ({str(exc) or 'Ctrl-C'}); servers stopped", file=sys.stderr)
        status = 130
    except (RuntimeError, httpx.HTTPError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
