"""The pypi read path, side by side: this server, pypiserver and nginx serving a static copy.

    python bench/pypi.py [--duration 10] [--servers ours,pypiserver,nginx] [--projects 300]
                         [--big-versions 2000] [--keep]

All three hold the same small wheels: `--projects` projects with 3 versions each, plus one project
with `--big-versions` versions. This server runs with `--workers 2`. For each server the bench
measures:
- requests/s of project pages (wrk -t2 -c32, cycling through every small project) and of the root
  index
- the latency of the big project's page (wrk -t1 -c1, p50/p99): a read must not pay for the
  version count
- the wall time of `pip download --no-deps` of 20 projects with a cold cache (median of 3)

Targets: project pages at >= 15% of nginx's req/s, and pip download within 1.3x of nginx's wall
time. pypiserver is pip-installed from the package index into a venv in the work dir (for this
benchmark only). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pwd
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
from run import stop_process, wait_for_port  # noqa: E402

from artifactory.testing.server import ADMIN_PASSWORD, LiveServer, free_port  # noqa: E402

REPO = "bench"
BIG = "bench-big"
SMALL_VERSIONS = ("1.0", "1.1", "1.2")
PIP_PROJECTS = 20
LOAD = ("2", "32")
TARGET_PAGES = 15.0  # percent of nginx's req/s
TARGET_PIP = 1.3  # times nginx's wall time

WRK_SCRIPT = """
local paths = {}
local list = os.getenv("BENCH_PATHS")
if list then for line in io.lines(list) do paths[#paths + 1] = line end end
local counter = 0
request = function()
  if #paths == 0 then return wrk.format("GET") end
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "bytes": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
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
    sendfile on;
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
        root {www};
        index index.html;
    }}
}}
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
def nginx(workdir: Path, dataset: dict[str, list[tuple[str, Path, bytes]]]) -> Iterator[str]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    conf_dir, www = workdir / "nginx", workdir / "www"
    conf_dir.mkdir()
    static_copy(www, dataset)
    port = free_port()
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, dir=conf_dir, port=port, www=www))
    command = [binary, "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")]
    with background(command, port, conf_dir / "stderr.log", "nginx"):
        yield f"http://127.0.0.1:{port}/simple/"


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
        started = time.monotonic()
        upload_all(server, dataset)
        print(
            f"  uploaded {sum(len(f) for f in dataset.values())} wheels in {time.monotonic() - started:.0f} s"
        )
        time.sleep(1.5)  # both workers past their repository snapshot
        yield f"{server.repo_url(REPO)}simple/"
    finally:
        server.stop()
        errors = [line for line in server.log().splitlines() if "ERROR" in line or "Traceback" in line]
        if errors:
            print("  server log:\n    " + "\n    ".join(errors[:10]))


# -- measurements --------------------------------------------------------------------------------------
def wrk(
    script: Path, url: str, load: tuple[str, str], seconds: int, paths: Path | None = None
) -> dict[str, float]:
    threads, connections = load
    env = {**os.environ, **({"BENCH_PATHS": str(paths)} if paths else {})}
    command = [
        "wrk",
        "-t",
        threads,
        "-c",
        connections,
        "-d",
        f"{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 120, check=False, env=env
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            report: dict[str, float] = json.loads(line[len("WRK_JSON ") :])
            return report
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")


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


def pip_download(index: str, workdir: Path, projects: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ARTIFACTORY_"))}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "NO_PROXY": "*"})
    times = []
    for attempt in range(3):
        target = Path(tempfile.mkdtemp(dir=workdir, prefix=f"pip-{attempt}-"))
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                   "--only-binary", ":all:", "-q", "-d", str(target),
                   "--index-url", index, *projects]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
        times.append(time.monotonic() - started)
        if done.returncode != 0 or len(list(target.iterdir())) != len(projects):
            raise RuntimeError(f"pip download from {index} failed: {done.stdout}\n{done.stderr}")
    return statistics.median(times)


def measure(name: str, index: str, workdir: Path, script: Path, duration: int, dataset: dict) -> Result:
    result = Result(name)
    check_index(index, dataset)
    paths = workdir / f"{name}-paths.txt"
    prefix = "/" + index.split("/", 3)[3]
    paths.write_text("".join(f"{prefix}{p}/\n" for p in sorted(dataset) if p != BIG))
    warmup = max(1, min(3, duration // 5))
    wrk(script, index, LOAD, warmup, paths)
    report = wrk(script, index, LOAD, duration, paths)
    result.pages_rps = rate(report)
    if report["errors"]:
        result.problems.append(f"project pages: {int(report['errors'])} errors")
    report = wrk(script, index, LOAD, duration)
    result.root_rps = rate(report)
    if report["errors"]:
        result.problems.append(f"root index: {int(report['errors'])} errors")
    report = wrk(script, f"{index}{BIG}/", ("1", "1"), max(3, duration // 2))
    result.big_p50_ms, result.big_p99_ms = report["p50_us"] / 1000, report["p99_us"] / 1000
    result.pip_seconds = pip_download(index, workdir, [f"bench-{i:03d}" for i in range(PIP_PROJECTS)])
    print(
        f"  {name:10} pages {result.pages_rps:9,.0f} req/s  root {result.root_rps:9,.0f} req/s  "
        f"big page p50 {result.big_p50_ms:.2f} ms p99 {result.big_p99_ms:.2f} ms  "
        f"pip {result.pip_seconds:.2f} s",
        flush=True,
    )
    return result


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
        script = workdir / "report.lua"
        script.write_text(WRK_SCRIPT)
        starters = {
            "nginx": lambda: nginx(workdir, dataset),
            "pypiserver": lambda: pypiserver(workdir, wheels),
            "ours": lambda: ours(workdir, dataset),
        }
        results: dict[str, Result] = {}
        for name in [s.strip() for s in args.servers.split(",") if s.strip()]:
            print(f"{name}:", flush=True)
            try:
                with starters[name]() as index:
                    results[name] = measure(name, index, workdir, script, args.duration, dataset)
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
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
