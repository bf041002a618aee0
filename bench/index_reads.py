"""Go `@v/list` and Cargo index-file GETs: this server against nginx serving the same bytes, one run.

    python bench/index_reads.py [--duration 10] [--versions 50] [--rounds 3]

Our server (`--workers 2`, SQLite) holds `--versions` versions of one Go module and of one crate in
hosted repositories, each also behind a proxy of that hosted repository and a group of (hosted,
proxy); nginx serves the documents our hosted repositories answered, byte for byte, at the same
paths. wrk -t2 -c32 loads one URL at a time, anonymously, `--rounds` times, alternating which server
goes first; the table gives the medians of req/s, p50/p99 latency and server CPU time per request
(which other load on the machine moves far less than req/s), and the ratio of req/s to nginx's.
Everything listens on 127.0.0.1 and lives in one temp dir.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import pwd
import shutil
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from run import NGINX_CONF, WRK_REPORT, find_tool, stop_process, wait_for_port, wrk  # noqa: E402

from artifactory.testing.server import LiveServer, free_port  # noqa: E402

MODULE = "example.com/bench/lib"
CRATE = "benchcrate"
LOAD = ("2", "32")


def module_zip(version: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{MODULE}@{version}/go.mod", f"module {MODULE}\n\ngo 1.19\n")
        archive.writestr(f"{MODULE}@{version}/lib.go", "package lib\n")
    return buffer.getvalue()


def publish_body(version: str) -> bytes:
    top = f"{CRATE}-{version}"
    files = {
        f"{top}/Cargo.toml": f'[package]\nname = "{CRATE}"\nversion = "{version}"\n'.encode(),
        f"{top}/src/lib.rs": b"pub fn f() {}\n",
    }
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as archive:
            for path, data in files.items():
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    crate = buffer.getvalue()
    meta = json.dumps({"name": CRATE, "vers": version, "deps": [], "features": {}}).encode()
    return struct.pack("<I", len(meta)) + meta + struct.pack("<I", len(crate)) + crate


def populate(server: LiveServer, versions: int) -> dict[str, str]:
    """Hosted and group repositories of both formats; answers {label: path below the server}."""
    go = server.create_repo("go", name="go-hosted")
    cargo = server.create_repo("cargo", name="cargo-hosted")
    server.create_repo("go", "proxy", name="go-proxy", url=f"{server.url}/repository/{go}/")
    server.create_repo("cargo", "proxy", name="cargo-proxy", url=f"{server.url}/repository/{cargo}/")
    server.create_repo("go", "group", name="go-all", members=[go, "go-proxy"])
    server.create_repo("cargo", "group", name="cargo-all", members=[cargo, "cargo-proxy"])
    with server.client() as admin:
        for i in range(versions):
            version = f"v1.{i}.0"
            answer = admin.put(f"/repository/{go}/{MODULE}/@v/{version}.zip", content=module_zip(version))
            assert answer.status_code in (200, 201), answer.text
            answer = admin.put(f"/repository/{cargo}/api/v1/crates/new", content=publish_body(f"1.{i}.0"))
            assert answer.status_code == 200, answer.text
    go_list = f"{MODULE}/@v/list"
    crate_file = f"{CRATE[:2]}/{CRATE[2:4]}/{CRATE}"
    return {
        "go @v/list, hosted": f"repository/{go}/{go_list}",
        "go @v/list, proxy": f"repository/go-proxy/{go_list}",
        "go @v/list, group": f"repository/go-all/{go_list}",
        "cargo index file, hosted": f"repository/{cargo}/{crate_file}",
        "cargo index file, proxy": f"repository/cargo-proxy/{crate_file}",
        "cargo index file, group": f"repository/cargo-all/{crate_file}",
    }


Sample = tuple[float, float, float, float]  # req/s, p50 ms, p99 ms, server CPU us per request


def sample(wrk_bin: str, script: Path, url: str, seconds: int, pid: int) -> tuple[Sample, int]:
    report = wrk(wrk_bin, script, url, LOAD, seconds, pid)
    requests = max(1.0, report["requests"])
    rate = requests / (report["duration_us"] / 1e6)
    cpu_us = report["server_cores"] * (report["duration_us"] / 1e6) / requests * 1e6
    errors = int(report["status"] + report["read"] + report["connect"] + report["timeout"])
    return (rate, report["p50_us"] / 1000, report["p99_us"] / 1000, cpu_us), errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    wrk_bin, nginx_bin = find_tool("wrk"), find_tool("nginx")
    if not wrk_bin or not nginx_bin:
        print("needs wrk and nginx", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="index-reads-"))
    try:
        script = work / "report.lua"
        script.write_text(WRK_REPORT)
        server = LiveServer(work / "data", workers=2).start()
        assert server.process is not None
        samples: dict[tuple[str, str], list[Sample]] = {}
        errors: dict[str, int] = {}
        loads: list[float] = []
        try:
            paths = populate(server, args.versions)
            files: dict[str, Path] = {}
            for label, path in paths.items():
                if "hosted" not in label:
                    continue
                body = httpx.get(f"{server.url}/{path}").raise_for_status().content
                local = work / "files" / label.replace(" ", "_").replace(",", "").replace("@", "")
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(body)
                files[path] = local
            for path in paths.values():  # warm every document once, proxy and group ones included
                httpx.get(f"{server.url}/{path}").raise_for_status()
            with static_nginx(nginx_bin, work, files) as (static, nginx_pid):
                for path in paths.values():  # warm-up, not counted: both servers' first requests
                    if path in files:
                        wrk(wrk_bin, script, f"{static}/{path}", LOAD, 1)
                    wrk(wrk_bin, script, f"{server.url}/{path}", LOAD, 1)
                for round_ in range(args.rounds):
                    loads.append(os.getloadavg()[0])
                    for label, path in paths.items():
                        targets = [("ours", f"{server.url}/{path}", server.process.pid)]
                        if path in files:
                            targets.append(("nginx", f"{static}/{path}", nginx_pid))
                        for who, url, pid in targets if round_ % 2 == 0 else targets[::-1]:
                            found, failed = sample(wrk_bin, script, url, args.duration, pid)
                            samples.setdefault((label, who), []).append(found)
                            errors[label] = errors.get(label, 0) + (failed if who == "ours" else 0)
        finally:
            server.stop()
        print(
            f"\n{args.versions} versions each; wrk -t{LOAD[0]} -c{LOAD[1]} {args.duration}s per row, "
            f"medians of {args.rounds} rounds; load average {min(loads):.1f}-{max(loads):.1f} "
            f"on {os.cpu_count()} CPUs"
        )
        print(
            "| document | ours req/s | p50 / p99 ms | CPU us/req | nginx req/s | p50 / p99 ms | "
            "CPU us/req | ours / nginx | errors |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

        def medians(found: list[Sample]) -> Sample:
            rate, p50, p99, cpu = (statistics.median(s[i] for s in found) for i in range(4))
            return rate, p50, p99, cpu

        for label in paths:
            rate, p50, p99, cpu = medians(samples[(label, "ours")])
            peer = medians(samples[(label.split(",")[0] + ", hosted", "nginx")])
            print(
                f"| {label} | {rate:,.0f} | {p50:.2f} / {p99:.2f} | {cpu:.0f} | {peer[0]:,.0f} | "
                f"{peer[1]:.2f} / {peer[2]:.2f} | {peer[3]:.0f} | {rate / peer[0]:.1%} | {errors[label]} |"
            )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def static_nginx(nginx_bin: str, work: Path, files: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """nginx serving each file at its path below the root: (its URL, its master's pid)."""
    conf_dir, www = work / "nginx", work / "www"
    conf_dir.mkdir()
    for path, local in files.items():
        (www / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, www / path)
    port = free_port()
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, dir=conf_dir, port=port, www=www))
    process = subprocess.Popen(
        [nginx_bin, "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, process, 15.0, "nginx")
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop_process(process)


if __name__ == "__main__":
    raise SystemExit(main())
