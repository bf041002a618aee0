"""What metrics and download counting cost a small GET, measured in one run.

    python bench/metrics_overhead.py [--base /tmp/bench-base] [--duration 10] [--rounds 5]

Starts three servers side by side, each `python -m artifactory serve --workers 2` on its own SQLite
data dir holding the same 1 KB raw file:

- base: the tree of 880f158, before metrics and download counting existed (a git worktree at
  --base, made with `git worktree add` when missing; PYTHONPATH points at it, as in proxy_verify.py);
- counting on: this tree as it runs by default (metrics, ARTIFACTORY_DOWNLOAD_COUNTING=true);
- counting off: this tree with ARTIFACTORY_DOWNLOAD_COUNTING=false (metrics cannot be switched off).

Each round loads every server in turn with wrk -t2 -c32 for --duration seconds, anonymously, on
`/repository/bench/small.bin`; rounds rotate which server goes first. The table gives the medians of
req/s and of the server's CPU time per request, each as a ratio to the base and (for counting on)
to counting off. Besides the worktree, nothing is written outside a temporary directory, which is
removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from common import base_importable, worktree  # noqa: E402
from proxy_verify import importable  # noqa: E402
from run import (  # noqa: E402
    BUSY_WARNING,
    REPO,
    SERVER_WORKERS,
    SMALL_LOAD,
    SMALL_NAME,
    SMALL_SIZE,
    WRK_REPORT,
    Interrupted,
    _raise_interrupted,
    check_served,
    cpu_busy,
    describe_errors,
    find_tool,
    read_tail,
    server_errors,
    sha256_of,
    upload,
    wrk,
)

from artifactory.testing.server import LiveServer  # noqa: E402

BASE_COMMIT = "880f158"
VARIANTS = ("base", "counting on", "counting off")


def servers(base: Path, work: Path) -> dict[str, LiveServer]:
    """The three servers, not started yet; each in a folder of its own under `work`."""
    common = {"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"}  # the default (LiveServer shortens it for tests)
    variants = {
        "base": (base, {}),
        "counting on": (ROOT, {"ARTIFACTORY_DOWNLOAD_COUNTING": "true"}),
        "counting off": (ROOT, {"ARTIFACTORY_DOWNLOAD_COUNTING": "false"}),
    }
    found = {}
    for label, (tree, env) in variants.items():
        folder = work / label.replace(" ", "-")
        folder.mkdir()
        # The engine, formats and migrations all from `tree`.
        path = base_importable(tree, folder) if tree == base else importable(tree, folder)
        server = LiveServer(
            folder / "data", workers=SERVER_WORKERS, env={**common, **env, "PYTHONPATH": str(path)}
        )
        server.log_path = folder / "server.log"
        found[label] = server
    return found


def downloads_counted(server: LiveServer) -> int:
    """The download count stored for the 1 KB file (read after the server stopped and flushed)."""
    import sqlite3

    connection = sqlite3.connect(f"file:{server.data_dir / 'artifactory.db'}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT download_count FROM asset WHERE path = ?", (SMALL_NAME,)).fetchone()
    finally:
        connection.close()
    return int(row[0]) if row else 0


def table(results: dict[str, list[tuple[float, float]]], duration: int, rounds: int) -> str:
    base_rps = statistics.median(r for r, _ in results["base"])
    base_cpu = statistics.median(c for _, c in results["base"])
    off_rps = statistics.median(r for r, _ in results["counting off"])
    off_cpu = statistics.median(c for _, c in results["counting off"])
    lines = [
        f"GET /repository/{REPO}/{SMALL_NAME} ({SMALL_SIZE} B), wrk -t{SMALL_LOAD[0]} -c{SMALL_LOAD[1]}, "
        f"{duration} s x {rounds} rounds, medians; artifactory --workers {SERVER_WORKERS}; "
        f"{os.cpu_count()} CPUs",
        "",
        "| server | req/s | vs base | vs counting off | server CPU us/request | vs base | vs counting off |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label in VARIANTS:
        rps = statistics.median(r for r, _ in results[label])
        cpu = statistics.median(c for _, c in results[label])
        versus_off = label == "counting on"
        lines.append(
            f"| {label}{f' ({BASE_COMMIT})' if label == 'base' else ''} | {rps:,.0f} | "
            f"{rps / base_rps:.3f} | {f'{rps / off_rps:.3f}' if versus_off else '-'} | {cpu:.0f} | "
            f"{cpu / base_cpu:.3f} | {f'{cpu / off_cpu:.3f}' if versus_off else '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=Path, default=Path("/tmp/bench-base"), help="worktree of 880f158")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk load per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="measurements of each server")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    wrk_bin = find_tool("wrk")
    if not wrk_bin:
        print("missing wrk: apt-get install -y wrk", file=sys.stderr)
        return 2

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGHUP, _raise_interrupted)
    work = Path(tempfile.mkdtemp(prefix="artifactory-metrics-overhead-"))
    os.chdir(work)  # `python -m` puts the working directory first on sys.path: it must not be a checkout
    running: dict[str, LiveServer] = {}
    status = 0
    try:
        base = worktree(args.base, BASE_COMMIT)
        small = work / SMALL_NAME
        small.write_bytes(os.urandom(SMALL_SIZE))
        files = {SMALL_NAME: small}
        digests = {SMALL_NAME: sha256_of(small)}
        script = work / "report.lua"
        script.write_text(WRK_REPORT)
        for label, server in servers(base, work).items():
            running[label] = server.start(timeout=60.0)
            upload(server, files)
            check_served(server.url, files, digests)
        warmup = max(1, min(3, args.duration // 3))
        for server in running.values():  # imports, pools, first SQL: not counted
            assert server.process is not None
            wrk(wrk_bin, script, server.url + f"/repository/{REPO}/{SMALL_NAME}", SMALL_LOAD, warmup)
        busy = cpu_busy()
        print(f"CPUs busy before measuring: {'?' if busy is None else f'{busy:.0f}%'}", flush=True)
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in VARIANTS}
        problems: list[str] = []
        for round_ in range(args.rounds):
            shift = round_ % len(VARIANTS)
            for label in VARIANTS[shift:] + VARIANTS[:shift]:
                server = running[label]
                assert server.process is not None
                url = server.url + f"/repository/{REPO}/{SMALL_NAME}"
                report = wrk(wrk_bin, script, url, SMALL_LOAD, args.duration, server.process.pid)
                seconds = report["duration_us"] / 1e6
                rps = report["requests"] / seconds
                cpu_us = 1e6 * report["server_cores"] / rps if rps else 0.0
                results[label].append((rps, cpu_us))
                flag = ""
                if report["others"] > BUSY_WARNING:
                    flag = "  UNRELIABLE: the machine was busy"
                    problems.append(
                        f"round {round_ + 1}, {label}: other processes used {report['others']:.0f}% "
                        "of the CPUs meanwhile"
                    )
                if problem := describe_errors(report):
                    problems.append(f"round {round_ + 1}, {label}: wrk saw {problem}")
                print(
                    f"round {round_ + 1}: {label:<13} {rps:9,.0f} req/s  {cpu_us:6.0f} us CPU/request  "
                    f"others {report['others']:.0f}% of the CPUs{flag}",
                    flush=True,
                )
        for label, server in running.items():
            server.stop()
            problems += [
                f"{label} log: {line}" for line in server_errors(read_tail(server.log_path, 200_000))
            ]
        counted = {label: downloads_counted(running[label]) for label in ("counting on", "counting off")}
        if counted["counting on"] == 0 or counted["counting off"] != 0:
            problems.append("download counting did not behave as configured (see the stored counts)")
        print()
        print(table(results, args.duration, args.rounds))
        print(
            f"stored download count of {SMALL_NAME} afterwards: counting on {counted['counting on']:,}, "
            f"counting off {counted['counting off']:,}"
        )
        for problem in problems:
            print(f"- {problem}")
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"\ninterrupted ({str(exc) or 'Ctrl-C'}); servers stopped", file=sys.stderr)
        status = 130
    except (RuntimeError, OSError, httpx.HTTPError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        print(f"benchmark failed: {exc} {detail}".rstrip(), file=sys.stderr)
        for label, server in running.items():
            print(f"--- {label} server log ---\n{server.log()}", file=sys.stderr)
        status = 1
    finally:
        for server in running.values():
            server.stop()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.chdir("/")
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
