"""OCI benchmark: our registry (uvicorn, --workers 2) side by side with the CNCF distribution registry
(Debian package docker-registry) and nginx, all holding the same image (3 layers: 1, 10 and 100 MB).

    python bench/oci.py [--duration 10] [--server uvicorn,granian]
    python bench/oci.py --base /tmp/base-5af08a4 [--base-commit 5af08a4] [--rounds 3] ...

Measured with wrk (-t2 -c32 for requests, -t2 -c4 for the big blob): req/s of manifest GET by tag;
req/s of blob HEAD (with ab -c32 -k, since wrk 4.1 waits for a body after HEAD); MB/s (MB = 2**20
bytes) of GET of the 100 MB blob (nginx serves the same file); and the wall time of
`skopeo copy docker://... oci:DIR` pulling the whole image. One server is loaded
at a time; everything listens on 127.0.0.1 inside one temporary directory. Targets (issue 6): manifests
and HEADs >= 2x distribution's req/s, the blob >= 70% of nginx's MB/s, the pull no slower than from
distribution.

With --base, distribution and nginx are left out: the tree of --base-commit and this one run side by
side (uvicorn) holding the same image, and every figure is measured on both in each of --rounds
rounds (see common.py).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from common import Comparison, add_base_arguments, nginx, order, server_pid, sides, timed, wrk_rate  # noqa: E402
from run import WRK_REPORT as REPORT  # noqa: E402
from run import _tree_cpu, describe_errors, find_tool, stop_process, wait_for_port, wrk  # noqa: E402

from artifactory.testing.server import ADMIN_PASSWORD, LiveServer, free_port  # noqa: E402

MIB = 1024 * 1024
LAYER_SIZES = (1 * MIB, 10 * MIB, 100 * MIB)
REPO, IMAGE, TAG = "bench", "app", "v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REQUEST_LOAD = ("2", "32")
BLOB_LOAD = ("2", "4")

DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layout(directory: Path) -> tuple[dict[str, Path], str]:
    """An OCI layout of random (incompressible) layers; returns blob files by digest and the big one."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    files: dict[str, Path] = {}
    layers = []
    for size in LAYER_SIZES:
        # A real gzip stream (of incompressible bytes, so the size stays), else skopeo compresses it.
        data = gzip.compress(os.urandom(size), compresslevel=1, mtime=0)
        digest = sha256(data)
        (blobs / digest[7:]).write_bytes(data)
        files[digest] = blobs / digest[7:]
        layers.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": len(data)}
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
        }
    ).encode()
    (blobs / sha256(config)[7:]).write_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    (blobs / sha256(manifest)[7:]).write_bytes(manifest)
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(manifest),
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": TAG},
    }
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return files, str(layers[-1]["digest"])


def skopeo(*args: str) -> float:
    started = time.monotonic()
    done = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args[:2])} failed: {done.stderr[-2000:]}")
    return time.monotonic() - started


@contextmanager
def ours(workdir: Path, layout: Path, kind: str) -> Iterator[str]:
    server = LiveServer(
        workdir / f"artifactory-{kind}",
        workers=2,
        server=kind,
        env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"},
    )
    server.log_path = workdir / f"artifactory-{kind}-server.log"
    server.start(timeout=60.0)
    try:
        push(server, layout)
        yield server.url
    finally:
        server.stop()


def push(server: LiveServer, layout: Path) -> None:
    """A repository `bench` on a running server of ours, and the image pushed into it."""
    server.create_repo("oci", name=REPO)
    host = server.url.removeprefix("http://")
    skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", f"admin:{ADMIN_PASSWORD}",
        f"oci:{layout}:{TAG}", f"docker://{host}/{REPO}/{IMAGE}:{TAG}",
    )  # fmt: skip


@contextmanager
def distribution(binary: str, workdir: Path, layout: Path) -> Iterator[str]:
    port = free_port()
    config = workdir / "distribution.yml"
    config.write_text(DISTRIBUTION_CONFIG.format(root=workdir / "distribution-data", port=port))
    log = open(workdir / "distribution.log", "wb")  # noqa: SIM115 - the child keeps its copy
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    try:
        wait_for_port(port, process, 15.0, "docker-registry")
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"oci:{layout}:{TAG}",
            f"docker://127.0.0.1:{port}/{IMAGE}:{TAG}",
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@contextmanager
def static(workdir: Path, blob: Path) -> Iterator[str]:
    www = workdir / "www"
    www.mkdir()
    os.link(blob, www / "blob")
    with nginx(workdir / "nginx", f"        root {www};") as (url, _pid):
        yield url


def scripts(workdir: Path) -> dict[str, Path]:
    found = {}
    for name, prelude in (
        ("get", f'wrk.headers["Accept"] = "{OCI_MANIFEST}"\n'),
        ("blob", ""),
    ):
        path = workdir / f"{name}.lua"
        path.write_text(prelude + REPORT)
        found[name] = path
    return found


def rate(
    wrk_bin: str, script: Path, url: str, load: tuple[str, str], seconds: int
) -> tuple[float, dict[str, float]]:
    wrk(wrk_bin, script, url, load, max(1, min(3, seconds // 5)))  # warm-up
    report = wrk(wrk_bin, script, url, load, seconds)
    return report["requests"] / (report["duration_us"] / 1e6), report


def head_rate(url: str, seconds: int) -> float:
    """HEAD req/s with ab (wrk 4.1 waits for a body after HEAD), -c32 with keep-alive like wrk's load."""
    return head_load(url, seconds)[0]


def head_load(url: str, seconds: int) -> tuple[float, int]:
    """(HEAD req/s, requests completed) of one ab run after a 1 s warm-up."""
    command = ["ab", "-q", "-i", "-k", "-c", REQUEST_LOAD[1], "-t", str(seconds), "-n", "50000000", url]
    subprocess.run([*command[:7], "-t", "1", "-n", "50000000", url], capture_output=True, check=False)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = re.search(r"Requests per second:\s+([\d.]+)", done.stdout)
    complete = re.search(r"Complete requests:\s+(\d+)", done.stdout)
    bad = re.search(r"Non-2xx responses:\s+(\d+)", done.stdout)
    if match is None or complete is None or bad is not None:
        raise RuntimeError(f"ab failed: {done.stdout[-1500:]} {done.stderr[-500:]}")
    return float(match[1]), int(complete[1])


def measure(
    label: str,
    base: str,
    prefix: str,
    big: str,
    wrk_bin: str,
    lua: dict[str, Path],
    seconds: int,
    pulls: Path,
) -> dict[str, float]:
    results: dict[str, float] = {}
    for key, script, url, load in (
        ("manifest_rps", lua["get"], f"{base}/v2/{prefix}/manifests/{TAG}", REQUEST_LOAD),
        ("blob_mbps", lua["blob"], f"{base}/v2/{prefix}/blobs/{big}", BLOB_LOAD),
    ):
        value, report = rate(wrk_bin, script, url, load, seconds)
        if key == "blob_mbps":
            value = report["bytes"] / MIB / (report["duration_us"] / 1e6)
        results[key] = value
        problem = describe_errors(report)
        print(f"  {label:13} {key:13} {value:10,.0f}{'  (' + problem + ')' if problem else ''}", flush=True)
    results["head_rps"] = head_rate(f"{base}/v2/{prefix}/blobs/{big}", seconds)
    print(f"  {label:13} {'head_rps':13} {results['head_rps']:10,.0f}", flush=True)
    host = base.removeprefix("http://")
    times = []
    for attempt in range(3):
        target = pulls / f"{label}-{attempt}"
        times.append(
            skopeo("copy", "--src-tls-verify=false", f"docker://{host}/{prefix}:{TAG}", f"oci:{target}:{TAG}")
        )
        shutil.rmtree(target)
    results["pull_seconds"] = min(times)
    print(f"  {label:13} {'pull_seconds':13} {results['pull_seconds']:10.2f}", flush=True)
    return results


def compare(args: argparse.Namespace, workdir: Path, layout: Path, big: str) -> Comparison:
    """Every figure on the base tree and on this one, interleaved, --rounds times."""
    comparison = Comparison()
    comparison.figure("manifest GET by tag", "req/s", noted="11,296 (s7)")
    comparison.figure("blob HEAD (ab -c32 -k)", "req/s", noted="6,918 (s7)")
    comparison.figure("100 MB blob GET", "MB/s", cpu_unit="us/MB", noted="2,474 (s7)")
    comparison.figure("skopeo pull", "s", lower_is_better=True, cpu_unit="ms/run", noted="0.46 (s7)")
    wrk_bin = find_tool("wrk") or "wrk"
    lua = scripts(workdir)
    pulls = workdir / "pulls"
    pulls.mkdir()
    servers = sides(args.base, args.base_commit, workdir)
    prefix = f"{REPO}/{IMAGE}"
    try:
        for label, server in servers.items():
            print(f"{label}: starting and pushing", flush=True)
            server.start(timeout=60.0)
            push(server, layout)
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds}", flush=True)
            for label in order(round_):
                url, pid = servers[label].url, server_pid(servers[label])
                rps, cpu, report = wrk_rate(
                    wrk_bin,
                    lua["get"],
                    f"{url}/v2/{prefix}/manifests/{TAG}",
                    REQUEST_LOAD,
                    args.duration,
                    pid,
                )
                comparison.add("manifest GET by tag", label, rps, cpu, report["others"])
            for label in order(round_):
                url, pid = servers[label].url, server_pid(servers[label])
                used = _tree_cpu(pid)
                rps, count = head_load(f"{url}/v2/{prefix}/blobs/{big}", args.duration)
                comparison.add("blob HEAD (ab -c32 -k)", label, rps, 1e6 * (_tree_cpu(pid) - used) / count)
            for label in order(round_):
                url, pid = servers[label].url, server_pid(servers[label])
                _rps, _cpu, report = wrk_rate(
                    wrk_bin, lua["blob"], f"{url}/v2/{prefix}/blobs/{big}", BLOB_LOAD, args.duration, pid
                )
                seconds = report["duration_us"] / 1e6
                mbps = report["bytes"] / MIB / seconds
                cpu = 1e6 * report["server_cores"] / mbps if mbps else 0.0
                comparison.add("100 MB blob GET", label, mbps, cpu, report["others"])
            for label in order(round_):
                host = servers[label].url.removeprefix("http://")
                target = pulls / f"{label}-{round_}"
                command = (
                    "copy",
                    "--src-tls-verify=false",
                    f"docker://{host}/{prefix}:{TAG}",
                    f"oci:{target}:{TAG}",
                )
                seconds, cpu = timed(server_pid(servers[label]), skopeo, *command)
                shutil.rmtree(target)
                comparison.add("skopeo pull", label, seconds, cpu)
    finally:
        for server in servers.values():
            server.stop()
        os.chdir("/")
    return comparison


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per measurement")
    parser.add_argument(
        "--server",
        default="uvicorn",
        help="our server(s), comma-separated: uvicorn, granian (default uvicorn)",
    )
    add_base_arguments(parser)
    args = parser.parse_args()
    needed = ("wrk", "ab", "skopeo") if args.base else ("wrk", "ab", "nginx", "docker-registry", "skopeo")
    tools = {name: find_tool(name) for name in needed}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        print(
            f"missing tools: {', '.join(missing)} "
            "(apt-get install wrk apache2-utils nginx docker-registry skopeo)"
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="oci-bench-") as temp:
        workdir = Path(temp)
        layout = workdir / "layout"
        files, big = make_layout(layout)
        if args.base:
            comparison = compare(args, workdir, layout, big)
            print(f"\nbase {args.base_commit} against now, --workers 2 (uvicorn), {args.duration} s per "
                  f"figure, {args.rounds} rounds")  # fmt: skip
            print(comparison.table())
            return 0
        lua = scripts(workdir)
        pulls = workdir / "pulls"
        pulls.mkdir()
        results: dict[str, dict[str, float]] = {}
        print("measuring (one server at a time)", flush=True)
        with distribution(str(tools["docker-registry"]), workdir, layout) as url:
            results["distribution"] = measure(
                "distribution", url, IMAGE, big, str(tools["wrk"]), lua, args.duration, pulls
            )
        for kind in [k.strip() for k in args.server.split(",") if k.strip()]:
            label = f"ours ({kind})"
            with ours(workdir, layout, kind) as url:
                results[label] = measure(
                    label, url, f"{REPO}/{IMAGE}", big, str(tools["wrk"]), lua, args.duration, pulls
                )
        with static(workdir, files[big]) as url:
            value, report = rate(str(tools["wrk"]), lua["blob"], f"{url}/blob", BLOB_LOAD, args.duration)
            results["nginx"] = {"blob_mbps": report["bytes"] / MIB / (report["duration_us"] / 1e6)}
            print(f"  {'nginx':13} {'blob_mbps':13} {results['nginx']['blob_mbps']:10,.0f}", flush=True)
    print()
    print(table(results))
    print()
    for line in verdicts(results):
        print(line)
    return 0


COLUMNS = (("manifest_rps", ",.0f"), ("head_rps", ",.0f"), ("blob_mbps", ",.0f"), ("pull_seconds", ".2f"))


def table(results: dict[str, dict[str, float]]) -> str:
    header = ("server", "manifest GET req/s", "blob HEAD req/s", "100 MB blob MB/s", "skopeo pull s")
    rows: list[tuple[str, ...]] = [header]
    for name in results:
        r = results[name]
        rows.append((name, *(format(r[k], f) if k in r else "-" for k, f in COLUMNS)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def verdicts(results: dict[str, dict[str, float]]) -> list[str]:
    dist, web = results["distribution"], results["nginx"]
    lines = []
    for label, ours_ in results.items():
        if not label.startswith("ours"):
            continue
        checks = (
            ("manifest GET", ours_["manifest_rps"] / dist["manifest_rps"], 2.0, "x distribution"),
            ("blob HEAD", ours_["head_rps"] / dist["head_rps"], 2.0, "x distribution"),
            ("100 MB blob", ours_["blob_mbps"] / web["blob_mbps"], 0.7, "x nginx"),
            ("skopeo pull", dist["pull_seconds"] / ours_["pull_seconds"], 1.0, "x distribution's speed"),
        )
        lines += [
            f"{label} {what}: {ratio:.2f}{unit} "
            f"(target >= {target}{unit}: {'met' if ratio >= target else 'MISSED'})"
            for what, ratio, target, unit in checks
        ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
