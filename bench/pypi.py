"""The pypi read path, side by side: this server, pypiserver and nginx serving a static copy.

    python bench/pypi.py [--duration 10] [--servers ours,pypiserver,nginx] [--projects 300]
                         [--big-versions 2000] [--keep]
    python bench/pypi.py --base /tmp/base-5af08a4 [--base-commit 5af08a4] [--rounds 3] ...

All three hold the same small wheels: `--projects` projects with 3 versions each, plus one project
with `--big-versions` versions. This server runs with `--workers 2`. For each server the bench
measures:
- requests/s of project pages (wrk -t2 -c32, cycling through every small project) and of the root
  index
- the latency of the big project's page (wrk -t1 -c1, p50/p99): a read must not pay for the
  version count. Measured once every worker has built the page (eight connections for a second
  first): wrk makes up for a stalled connection with the requests it would have sent meanwhile, so
  one build inside the window would set the p99 by itself
- the wall time of `pip download --no-deps` of 20 projects with a cold cache (median of 3)

Targets: project pages at >= 15% of nginx's req/s, and pip download within 1.3x of nginx's wall
time. pypiserver is pip-installed from the package index into a venv in the work dir (for this
benchmark only). Everything listens on 127.0.0.1.

With --base, the peers are left out: the tree of --base-commit and this one run side by side with
the same wheels, and every figure is measured on both in each of --rounds rounds (see common.py).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from artifactory_formats.pypi import metadata  # noqa: E402
from artifactory_formats.pypi.metadata import File, Project  # noqa: E402
from common import Comparison, add_base_arguments, nginx, order, server_pid, sides, timed, wrk_rate  # noqa: E402
from run import WRK_REPORT, describe_errors, find_tool, stop_process, wait_for_port, wrk  # noqa: E402

from artifactory.testing.server import ADMIN_PASSWORD, LiveServer, free_port  # noqa: E402

REPO = "bench"
BIG = "bench-big"
SMALL_VERSIONS = ("1.0", "1.1", "1.2")
PIP_PROJECTS = 20
LOAD = ("2", "32")
WARM_EVERY_WORKER = ("2", "8")  # wrk threads, connections: every worker gets some

TARGET_PAGES = 15.0  # percent of nginx's req/s
TARGET_PIP = 1.3  # times nginx's wall time

ROTATING = """
local paths = {{{paths}}}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end
"""


@dataclass
class Result:
    server: str
    pages_rps: float | None = None
    root_rps: float | None = None
    big_p50_ms: float | None = None
    big_p99_ms: float | None = None
    pip_seconds: float | None = None
    problems: list[str] = field(default_factory=list)


# -- the data set ------------------------------------------------------------------------------------
def wheel(name: str, version: str) -> tuple[str, bytes, bytes]:
    """(filename, wheel bytes, METADATA bytes) of a tiny pure-Python wheel."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: bench\n".encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{module}/__init__.py", f"VALUE = {version!r}\n")
        archive.writestr(f"{dist_info}/METADATA", meta)
        archive.writestr(
            f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{dist_info}/RECORD", "")
    return f"{module}-{version}-py3-none-any.whl", buffer.getvalue(), meta


def make_dataset(
    directory: Path, projects: int, big_versions: int
) -> dict[str, list[tuple[str, Path, bytes]]]:
    """project -> [(filename, path, METADATA)], the wheels written flat into `directory`."""
    directory.mkdir(parents=True)
    wanted = {f"bench-{i:03d}": list(SMALL_VERSIONS) for i in range(projects)}
    wanted[BIG] = [f"1.{i}" for i in range(big_versions)]
    found: dict[str, list[tuple[str, Path, bytes]]] = {}
    for name, versions in wanted.items():
        for version in versions:
            filename, data, meta = wheel(name, version)
            path = directory / filename
            path.write_bytes(data)
            found.setdefault(name, []).append((filename, path, meta))
    return found


def static_copy(www: Path, dataset: dict[str, list[tuple[str, Path, bytes]]]) -> None:
    """The same index as static files: pages with relative links, wheels, PEP 658 .metadata files."""
    for project, files in dataset.items():
        entries = []
        target = www / "packages" / project
        target.mkdir(parents=True)
        for filename, path, meta in files:
            os.link(path, target / filename)
            (target / f"{filename}.metadata").write_bytes(meta)
            entries.append(
                File(
                    filename=filename,
                    path=f"packages/{project}/{filename}",
                    version=filename.split("-")[1],
                    hashes={"sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
                    core_metadata={"sha256": hashlib.sha256(meta).hexdigest()},
                )
            )
        page = Project(name=project, files=tuple(entries), versions=tuple(f.version for f in entries))
        (www / "simple" / project).mkdir(parents=True)
        (www / "simple" / project / "index.html").write_bytes(
            metadata.render_html(page, lambda f: "../../" + f.path)
        )
    (www / "simple" / "index.html").write_bytes(
        metadata.render_root_html(sorted(dataset), lambda name: f"{name}/")
    )


# -- servers -------------------------------------------------------------------------------------------
@contextmanager
def background(
    command: list[str], port: int, log: Path, what: str, env: dict[str, str] | None = None
) -> Iterator[None]:
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    try:
        wait_for_port(port, process, 60.0, what)
        yield
    finally:
        stop_process(process)


@contextmanager
def static(workdir: Path, dataset: dict[str, list[tuple[str, Path, bytes]]]) -> Iterator[str]:
    www = workdir / "www"
    static_copy(www, dataset)
    with nginx(workdir / "nginx", f"        root {www};\n        index index.html;") as (url, _pid):
        yield f"{url}/simple/"


@contextmanager
def pypiserver(workdir: Path, wheels: Path) -> Iterator[str]:
    venv = workdir / "pypiserver-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "pypiserver",
        ],
        check=True,
    )
    port = free_port()
    command = [str(venv / "bin" / "pypi-server"), "run", "-i", "127.0.0.1", "-p", str(port), str(wheels)]
    with background(command, port, workdir / "pypiserver.log", "pypiserver"):
        yield f"http://127.0.0.1:{port}/simple/"


def upload_all(server: LiveServer, dataset: dict[str, list[tuple[str, Path, bytes]]]) -> None:
    with server.client() as admin:
        created = admin.post("/api/v1/repositories", json={"name": REPO, "format": "pypi", "type": "hosted"})
        if created.status_code != 201:
            raise RuntimeError(f"creating {REPO}: {created.status_code} {created.text}")
    jobs = [path for files in dataset.values() for _name, path, _meta in files]

    def one(path: Path) -> None:
        data = path.read_bytes()
        fields = {
            ":action": "file_upload",
            "protocol_version": "1",
            "sha256_digest": hashlib.sha256(data).hexdigest(),
        }
        with httpx.Client(auth=("admin", ADMIN_PASSWORD), timeout=120) as client:
            response = client.post(server.repo_url(REPO), data=fields, files={"content": (path.name, data)})
        if response.status_code != 200:
            raise RuntimeError(f"uploading {path.name}: {response.status_code} {response.text}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, jobs))


@contextmanager
def ours(workdir: Path, dataset: dict[str, list[tuple[str, Path, bytes]]]) -> Iterator[str]:
    server = LiveServer(workdir / "ours", workers=2, env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"})
    server.start(timeout=60.0)
    try:
        populate(server, dataset)
        yield f"{server.repo_url(REPO)}simple/"
    finally:
        server.stop()
        report_log(server)


def populate(server: LiveServer, dataset: dict[str, list[tuple[str, Path, bytes]]]) -> None:
    started = time.monotonic()
    upload_all(server, dataset)
    print(f"  uploaded {sum(len(f) for f in dataset.values())} wheels in {time.monotonic() - started:.0f} s")
    time.sleep(1.5)  # both workers past their repository snapshot


def report_log(server: LiveServer) -> None:
    errors = [line for line in server.log().splitlines() if "ERROR" in line or "Traceback" in line]
    if errors:
        print("  server log:\n    " + "\n    ".join(errors[:10]))


# -- measurements --------------------------------------------------------------------------------------
def scripts(workdir: Path, index: str, dataset: dict[str, list[tuple[str, Path, bytes]]]) -> dict[str, Path]:
    """wrk scripts: "pages" cycles through every small project's page, "plain" GETs the URL given."""
    prefix = "/" + index.split("/", 3)[3]
    listed = ", ".join(json.dumps(f"{prefix}{p}/") for p in sorted(dataset) if p != BIG)
    found = {"pages": workdir / "pages.lua", "plain": workdir / "plain.lua"}
    found["pages"].write_text(ROTATING.format(paths=listed) + WRK_REPORT)
    found["plain"].write_text(WRK_REPORT)
    return found


def rate(report: dict[str, float]) -> float:
    return report["requests"] / (report["duration_us"] / 1e6)


def check_index(index: str, dataset: dict[str, list[tuple[str, Path, bytes]]]) -> None:
    """Refuse to benchmark a server that does not list exactly the data set."""
    with httpx.Client(timeout=120, follow_redirects=True) as client:
        for project in ("bench-000", BIG):
            page = client.get(f"{index}{project}/")
            if page.status_code != 200:
                raise RuntimeError(f"{index}{project}/: HTTP {page.status_code}")
            missing = [name for name, _path, _meta in dataset[project] if name not in page.text]
            if missing:
                raise RuntimeError(f"{index}{project}/ lacks {len(missing)} files, e.g. {missing[0]}")


def pip_once(index: str, workdir: Path, projects: list[str]) -> None:
    """`pip download --no-deps` of `projects` with no cache, into a new directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ARTIFACTORY_"))}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "NO_PROXY": "*"})
    target = Path(tempfile.mkdtemp(dir=workdir, prefix="pip-"))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
               "--only-binary", ":all:", "-q", "-d", str(target),
               "--index-url", index, *projects]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    if done.returncode != 0 or len(list(target.iterdir())) != len(projects):
        raise RuntimeError(f"pip download from {index} failed: {done.stdout}\n{done.stderr}")
    shutil.rmtree(target, ignore_errors=True)


def pip_projects(dataset: dict[str, list[tuple[str, Path, bytes]]]) -> list[str]:
    return [f"bench-{i:03d}" for i in range(min(PIP_PROJECTS, len(dataset) - 1))]


def pip_download(index: str, workdir: Path, projects: list[str]) -> float:
    times = []
    for _attempt in range(3):
        started = time.monotonic()
        pip_once(index, workdir, projects)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def measure(name: str, index: str, workdir: Path, duration: int, dataset: dict) -> Result:
    result = Result(name)
    check_index(index, dataset)
    wrk_bin = find_tool("wrk") or "wrk"
    lua = scripts(workdir, index, dataset)
    warmup = max(1, min(3, duration // 5))
    wrk(wrk_bin, lua["pages"], index, LOAD, warmup)
    report = wrk(wrk_bin, lua["pages"], index, LOAD, duration)
    result.pages_rps = rate(report)
    if problem := describe_errors(report):
        result.problems.append(f"project pages: {problem}")
    report = wrk(wrk_bin, lua["plain"], index, LOAD, duration)
    result.root_rps = rate(report)
    if problem := describe_errors(report):
        result.problems.append(f"root index: {problem}")
    wrk(wrk_bin, lua["plain"], f"{index}{BIG}/", WARM_EVERY_WORKER, 1)
    report = wrk(wrk_bin, lua["plain"], f"{index}{BIG}/", ("1", "1"), max(3, duration // 2))
    result.big_p50_ms, result.big_p99_ms = report["p50_us"] / 1000, report["p99_us"] / 1000
    result.pip_seconds = pip_download(index, workdir, pip_projects(dataset))
    print(
        f"  {name:10} pages {result.pages_rps:9,.0f} req/s  root {result.root_rps:9,.0f} req/s  "
        f"big page p50 {result.big_p50_ms:.2f} ms p99 {result.big_p99_ms:.2f} ms  "
        f"pip {result.pip_seconds:.2f} s",
        flush=True,
    )
    return result


def compare(args: argparse.Namespace, workdir: Path, dataset: dict) -> Comparison:
    """Every figure on the base tree and on this one, interleaved, --rounds times."""
    comparison = Comparison()
    comparison.figure("project pages", "req/s", noted="16,029 (s7); 7,802 (s15, 100 projects)")
    comparison.figure("root index", "req/s", noted="8,582 (s7); 5,954 (s15)")
    comparison.figure(f"{args.big_versions}-version page p50", "ms", lower_is_better=True, noted="0.40; 0.51")
    comparison.figure(f"{args.big_versions}-version page p99", "ms", lower_is_better=True, noted="1.27; 3.20")
    comparison.figure("pip download, cold", "s", lower_is_better=True, cpu_unit="ms/run", noted="0.86; 0.83")
    servers = sides(args.base, args.base_commit, workdir)
    wrk_bin = find_tool("wrk") or "wrk"
    try:
        index: dict[str, str] = {}
        for label, server in servers.items():
            print(f"{label}: starting and uploading", flush=True)
            server.start(timeout=60.0)
            populate(server, dataset)
            index[label] = f"{server.repo_url(REPO)}simple/"
            check_index(index[label], dataset)
        lua = scripts(workdir, index["now"], dataset)  # the same URL paths on both
        projects = pip_projects(dataset)
        big_seconds = max(3, args.duration // 2)
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds}", flush=True)
            for key, script, path, load, seconds in (
                ("project pages", lua["pages"], "", LOAD, args.duration),
                ("root index", lua["plain"], "", LOAD, args.duration),
                ("big", lua["plain"], f"{BIG}/", ("1", "1"), big_seconds),
            ):
                for label in order(round_):
                    pid = server_pid(servers[label])
                    if key == "big":
                        wrk(wrk_bin, script, index[label] + path, WARM_EVERY_WORKER, 1)
                    rps, cpu, report = wrk_rate(wrk_bin, script, index[label] + path, load, seconds, pid)
                    if key != "big":
                        comparison.add(key, label, rps, cpu, report["others"])
                    else:
                        for pct in ("p50", "p99"):
                            name = f"{args.big_versions}-version page {pct}"
                            comparison.add(name, label, report[f"{pct}_us"] / 1000, cpu, report["others"])
                    if problem := describe_errors(report):
                        print(f"  {label} {key}: wrk saw {problem}")
            for label in order(round_):
                seconds, cpu = timed(server_pid(servers[label]), pip_once, index[label], workdir, projects)
                comparison.add("pip download, cold", label, seconds, cpu)
    finally:
        for server in servers.values():
            server.stop()
            report_log(server)
    return comparison


def table(results: dict[str, Result]) -> str:
    base = results.get("nginx")

    def share(value: float | None, reference: float | None) -> str:
        return f"{100 * value / reference:.1f}%" if value and reference else "-"

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        "| server | project pages req/s | % of nginx | root index req/s | % of nginx | "
        "2,000-version page p50 / p99 ms | pip download 20 (s) | x nginx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        pip_ratio = (
            f"{r.pip_seconds / base.pip_seconds:.2f}x" if base and base.pip_seconds and r.pip_seconds else "-"
        )
        pages = share(r.pages_rps, base.pages_rps if base else None)
        root = share(r.root_rps, base.root_rps if base else None)
        lines.append(
            f"| {name} | {num(r.pages_rps, ',.0f')} | {pages} | {num(r.root_rps, ',.0f')} | {root} | "
            f"{num(r.big_p50_ms, '.2f')} / {num(r.big_p99_ms, '.2f')} | {num(r.pip_seconds, '.2f')} | "
            f"{pip_ratio} |"
        )
    return "\n".join(lines)


def verdicts(results: dict[str, Result]) -> list[str]:
    base, mine = results.get("nginx"), results.get("ours")
    if base is None or mine is None or not base.pages_rps or not base.pip_seconds:
        return ["targets: not judged (nginx and ours must both be measured)"]
    pages = 100 * (mine.pages_rps or 0) / base.pages_rps
    pip = (mine.pip_seconds or 0) / base.pip_seconds
    return [
        f"project pages: {pages:.1f}% of nginx (target >= {TARGET_PAGES:.0f}%): "
        + ("met" if pages >= TARGET_PAGES else "MISSED"),
        f"pip download: {pip:.2f}x nginx's wall time (target <= {TARGET_PIP}x): "
        + ("met" if pip <= TARGET_PIP else "MISSED"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--servers", default="nginx,pypiserver,ours")
    parser.add_argument("--projects", type=int, default=300)
    parser.add_argument("--big-versions", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    add_base_arguments(parser)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="pypi-bench-"))
    os.chmod(workdir, 0o755)
    try:
        print(f"work dir {workdir}; building {args.projects} x 3 + {args.big_versions} wheels", flush=True)
        wheels = workdir / "wheels"
        dataset = make_dataset(wheels, args.projects, args.big_versions)
        if args.base:
            comparison = compare(args, workdir, dataset)
            print(f"\nbase {args.base_commit} against now, {args.projects} projects, --workers 2, "
                  f"wrk -t{LOAD[0]} -c{LOAD[1]} {args.duration} s, {args.rounds} rounds")  # fmt: skip
            print(comparison.table())
            return 0
        starters = {
            "nginx": lambda: static(workdir, dataset),
            "pypiserver": lambda: pypiserver(workdir, wheels),
            "ours": lambda: ours(workdir, dataset),
        }
        results: dict[str, Result] = {}
        for name in [s.strip() for s in args.servers.split(",") if s.strip()]:
            print(f"{name}:", flush=True)
            try:
                with starters[name]() as index:
                    results[name] = measure(name, index, workdir, args.duration, dataset)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"  {name} failed: {exc}", flush=True)
                results[name] = Result(name, problems=[str(exc)[:300]])
        print()
        print(table(results))
        for line in verdicts(results):
            print(line)
        for r in results.values():
            for problem in r.problems:
                print(f"{r.server}: {problem}")
        return 0
    finally:
        os.chdir("/")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
