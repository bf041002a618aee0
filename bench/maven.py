"""Maven: artifactory against nginx serving the same tree, side by side in one run.

    python bench/maven.py [--duration 10] [--runs 3] [--deps 50]
    python bench/maven.py --base /tmp/base-5af08a4 [--base-commit 5af08a4] [--rounds 3] ...

- pom GET req/s, from a hosted repository and through a group (wrk -t2 -c32);
- maven-metadata.xml req/s from a group of 3 members (two hosted members holding versions of the
  artifact, one proxy), merged by the server;
- wall time of `mvn compile` of a project with 50 dependencies and a cold local repository, through
  the group (plugins come through the group's proxy, whose upstream is ~/.m2 served by the same nginx).

nginx serves the identical files: the dependency tree (downloaded from the group, so the bytes and
the metadata documents are the same), and ~/.m2 for the plugins. Target: mvn within 1.5x of nginx.
Everything listens on 127.0.0.1; nothing reaches the internet.

With --base, nginx only serves ~/.m2 to the proxies: the tree of --base-commit and this one run side
by side with the same content, and every figure is measured on both in each of --rounds rounds (the
mvn figure once per round; see common.py).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import run  # noqa: E402
from common import Comparison, add_base_arguments, nginx, order, server_pid, sides, timed, wrk_rate  # noqa: E402

from artifactory.testing.server import LiveServer  # noqa: E402

M2 = Path.home() / ".m2" / "repository"
GROUP_ID = "com.bench"
GROUP_PATH = GROUP_ID.replace(".", "/")
LOAD = ("2", "32")
WORKERS = 2
TARGET_RATIO = 1.5
PLUGINS = {
    "maven-resources-plugin": "3.3.1",
    "maven-compiler-plugin": "3.13.0",
    "maven-surefire-plugin": "3.2.5",
    "maven-jar-plugin": "3.4.1",
    "maven-install-plugin": "3.1.1",
    "maven-deploy-plugin": "3.1.1",
    "maven-clean-plugin": "3.3.2",
}

NGINX_BODY = """\
        location /m2/ {{ alias {m2}/; }}
        location /repo/ {{ root {www}; try_files $uri @m2; }}
        location @m2 {{ rewrite ^/repo/(.*)$ /m2/$1 last; }}"""


# -- content -----------------------------------------------------------------------------------
def jar(seed: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        archive.writestr(f"com/bench/dep{seed}/Data.bin", os.urandom(4096 + seed * 97))
    return buffer.getvalue()


def pom(artifact: str, version: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<project xmlns="http://maven.apache.org/POM/4.0.0">'
        f"<modelVersion>4.0.0</modelVersion><groupId>{GROUP_ID}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></project>"
    ).encode()


def consumer_pom(deps: int) -> str:
    dependencies = "".join(
        f"<dependency><groupId>{GROUP_ID}</groupId><artifactId>dep-{i:02d}</artifactId>"
        "<version>1.0</version></dependency>"
        for i in range(deps)
    )
    plugins = "".join(
        f"<plugin><groupId>org.apache.maven.plugins</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></plugin>"
        for a, v in PLUGINS.items()
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>com.bench.app</groupId><artifactId>app</artifactId><version>1.0</version>"
        "<properties><maven.compiler.release>17</maven.compiler.release></properties>"
        f"<dependencies>{dependencies}</dependencies>"
        f"<build><pluginManagement><plugins>{plugins}</plugins></pluginManagement></build></project>"
    )


def settings(url: str) -> str:
    return (
        '<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0"><mirrors><mirror><id>bench</id>'
        f"<mirrorOf>*</mirrorOf><url>{url}</url></mirror></mirrors></settings>"
    )


# -- servers -----------------------------------------------------------------------------------
@contextmanager
def static(workdir: Path) -> Iterator[str]:
    """nginx serving the mirrored tree under /repo/ (falling back to ~/.m2) and ~/.m2 under /m2/."""
    with nginx(workdir / "nginx", NGINX_BODY.format(m2=M2, www=workdir / "www")) as (url, _pid):
        yield url


def populate(server: LiveServer, upstream: str, deps: int) -> dict[str, str]:
    """Two hosted members with the dependencies (and versions of one shared artifact), a proxy of
    ~/.m2 for the plugins, one group of the three."""
    names = {
        "a": server.create_repo("maven", name="bench-a"),
        "b": server.create_repo("maven", name="bench-b"),
        "plugins": server.create_repo("maven", "proxy", name="bench-plugins", url=upstream),
    }
    names["group"] = server.create_repo(
        "maven", "group", name="bench-public", members=[names["a"], names["b"], names["plugins"]]
    )
    with server.client() as admin:

        def put(repo: str, path: str, data: bytes) -> None:
            response = admin.put(f"/repository/{repo}/{path}", content=data)
            if response.status_code != 201:
                raise RuntimeError(f"PUT {path}: {response.status_code} {response.text}")

        for i in range(deps):
            artifact = f"dep-{i:02d}"
            repo = names["a"] if i % 2 == 0 else names["b"]
            folder = f"{GROUP_PATH}/{artifact}/1.0/{artifact}-1.0"
            put(repo, f"{folder}.jar", jar(i))
            put(repo, f"{folder}.pom", pom(artifact, "1.0"))
        for member, versions in ((names["a"], range(10)), (names["b"], range(10, 20))):
            for minor in versions:
                version = f"1.{minor}"
                put(member, f"{GROUP_PATH}/shared/{version}/shared-{version}.pom", pom("shared", version))
    return names


def mirror_tree(server: LiveServer, group: str, www: Path, deps: int) -> list[str]:
    """Copy what the group serves for the dependency tree into nginx's folder, byte for byte."""
    paths = [f"{GROUP_PATH}/shared/maven-metadata.xml"]
    for i in range(deps):
        artifact = f"dep-{i:02d}"
        paths.append(f"{GROUP_PATH}/{artifact}/maven-metadata.xml")
        for ext in ("jar", "pom"):
            paths.append(f"{GROUP_PATH}/{artifact}/1.0/{artifact}-1.0.{ext}")
    with httpx.Client(base_url=server.repo_url(group), timeout=60) as client:
        for path in list(paths):
            for name in (path, path + ".sha1", path + ".md5"):
                response = client.get(name)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {name} from the group: {response.status_code}")
                target = www / "repo" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(response.content)
    return paths


# -- measurements --------------------------------------------------------------------------------
def rps(wrk_bin: str, script: Path, url: str, seconds: int) -> tuple[float, str | None]:
    with httpx.Client(timeout=10) as client:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
    run.wrk(wrk_bin, script, url, LOAD, max(1, min(3, seconds // 5)))
    report = run.wrk(wrk_bin, script, url, LOAD, seconds)
    return report["requests"] / (report["duration_us"] / 1e6), run.describe_errors(report)


def mvn_resolve(project: Path, url: str, workdir: Path, label: str) -> float:
    settings_file = workdir / f"settings-{label}.xml"
    settings_file.write_text(settings(url))
    local = Path(tempfile.mkdtemp(prefix=f"m2-{label}-", dir=workdir))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAVEN_")}
    command = ["mvn", "-B", "-q", "-s", str(settings_file), f"-Dmaven.repo.local={local}", "compile"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    shutil.rmtree(local, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"mvn against {label} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed


def compare(args: argparse.Namespace, workdir: Path, project: Path, script: Path) -> Comparison:
    """Every figure on the base tree and on this one, interleaved, --rounds times."""
    comparison = Comparison()
    comparison.figure("pom GET, hosted", "req/s", noted="12,833 (s7)")
    comparison.figure("pom GET, group", "req/s", noted="10,010 (s7)")
    comparison.figure("group maven-metadata.xml, 3 members", "req/s", noted="17,366 (s7)")
    mvn = f"mvn compile, {args.deps} deps, cold local repo"
    comparison.figure(mvn, "s", lower_is_better=True, cpu_unit="ms/run", noted="2.66 (s7)")
    wrk_bin = run.find_tool("wrk") or "wrk"
    servers = sides(args.base, args.base_commit, workdir)
    pom_path = f"{GROUP_PATH}/dep-00/1.0/dep-00-1.0.pom"
    meta_path = f"{GROUP_PATH}/shared/maven-metadata.xml"
    try:
        with static(workdir) as nginx_url:
            urls: dict[str, dict[str, str]] = {}
            for label, server in servers.items():
                print(f"{label}: starting and uploading", flush=True)
                server.start(timeout=60)
                names = populate(server, f"{nginx_url}/m2/", args.deps)
                group, hosted = server.repo_url(names["group"]), server.repo_url(names["a"])
                urls[label] = {
                    "pom GET, hosted": hosted + pom_path,
                    "pom GET, group": group + pom_path,
                    "group maven-metadata.xml, 3 members": group + meta_path,
                    mvn: group,
                }
                for url in list(urls[label].values())[:3]:
                    if httpx.get(url, timeout=30).status_code != 200:
                        raise RuntimeError(f"GET {url} from {label} did not answer 200")
                mvn_resolve(project, group, workdir, label)  # the proxy caches the plugins: not counted
            for round_ in range(args.rounds):
                print(f"round {round_ + 1} of {args.rounds}", flush=True)
                for name in list(comparison.figures)[:3]:
                    for label in order(round_):
                        pid = server_pid(servers[label])
                        rps, cpu, report = wrk_rate(
                            wrk_bin, script, urls[label][name], LOAD, args.duration, pid
                        )
                        comparison.add(name, label, rps, cpu, report["others"])
                        if problem := run.describe_errors(report):
                            print(f"  {label} {name}: wrk saw {problem}")
                for label in order(round_):
                    pid = server_pid(servers[label])
                    seconds, cpu = timed(pid, mvn_resolve, project, urls[label][mvn], workdir, label)
                    comparison.add(mvn, label, seconds, cpu)
    finally:
        for server in servers.values():
            server.stop()
        os.chdir("/")
    return comparison


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk load per measurement")
    parser.add_argument("--runs", type=int, default=3, help="cold mvn runs per server (median reported)")
    parser.add_argument("--deps", type=int, default=50, help="dependencies of the resolved project")
    add_base_arguments(parser)
    args = parser.parse_args(argv)
    wrk_bin, nginx_bin, mvn_bin = run.find_tool("wrk"), run.find_tool("nginx"), shutil.which("mvn")
    if not (wrk_bin and nginx_bin and mvn_bin):
        print("needs wrk, nginx and mvn on PATH", file=sys.stderr)
        return 2
    if not (M2 / "org/apache/maven/plugins").is_dir():
        print("~/.m2/repository holds no Maven plugins to build with", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="artifactory-bench-maven-"))
    script = workdir / "report.lua"
    script.write_text(run.WRK_REPORT)
    project = workdir / "app"
    project.mkdir()
    (project / "pom.xml").write_text(consumer_pom(args.deps))
    if args.base:
        try:
            comparison = compare(args, workdir, project, script)
        except (RuntimeError, httpx.HTTPError, subprocess.TimeoutExpired) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"\nbase {args.base_commit} against now, --workers {WORKERS}, wrk -t{LOAD[0]} -c{LOAD[1]} "
              f"{args.duration} s, {args.rounds} rounds")  # fmt: skip
        print(comparison.table())
        return 0
    rows: list[tuple[str, str, str, str]] = []
    problems: list[str] = []
    server = LiveServer(workdir / "data", workers=WORKERS, env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"})
    try:
        busy = run.cpu_busy()
        if busy is not None and busy > 30:
            problems.append(f"the machine was {busy:.0f}% busy before the run: numbers are unreliable")
        with static(workdir) as nginx_url:
            server.start(timeout=60)
            names = populate(server, f"{nginx_url}/m2/", args.deps)
            mirror_tree(server, names["group"], workdir / "www", args.deps)
            group_url, repo_url = server.repo_url(names["group"]), server.repo_url(names["a"])
            pom_path = f"{GROUP_PATH}/dep-00/1.0/dep-00-1.0.pom"
            meta_path = f"{GROUP_PATH}/shared/maven-metadata.xml"
            for label, ours, theirs in (
                ("pom GET, hosted (req/s)", repo_url + pom_path, f"{nginx_url}/repo/{pom_path}"),
                ("pom GET, group (req/s)", group_url + pom_path, f"{nginx_url}/repo/{pom_path}"),
                (
                    "group maven-metadata.xml, 3 members (req/s)",
                    group_url + meta_path,
                    f"{nginx_url}/repo/{meta_path}",
                ),
            ):
                ours_rps, ours_err = rps(wrk_bin, script, ours, args.duration)
                nginx_rps, nginx_err = rps(wrk_bin, script, theirs, args.duration)
                problems += [f"{label}: {e}" for e in (ours_err, nginx_err) if e]
                rows.append(
                    (label, f"{ours_rps:,.0f}", f"{nginx_rps:,.0f}", f"{100 * ours_rps / nginx_rps:.1f}%")
                )
                print(f"  {label}: {ours_rps:,.0f} vs nginx {nginx_rps:,.0f}", flush=True)
            # Warm both sides once (the proxy caches the plugins, nginx its file handles).
            mvn_resolve(project, group_url, workdir, "artifactory")
            mvn_resolve(project, f"{nginx_url}/repo/", workdir, "nginx")
            ours_times, nginx_times = [], []
            for _ in range(args.runs):
                ours_times.append(mvn_resolve(project, group_url, workdir, "artifactory"))
                nginx_times.append(mvn_resolve(project, f"{nginx_url}/repo/", workdir, "nginx"))
            ours_s, nginx_s = statistics.median(ours_times), statistics.median(nginx_times)
            ratio = ours_s / nginx_s
            rows.append(
                (f"mvn compile, {args.deps} deps, cold local repo (s, median of {args.runs})",
                 f"{ours_s:.2f}", f"{nginx_s:.2f}", f"{ratio:.2f}x")
            )  # fmt: skip
        problems += run.server_errors(run.read_tail(server.log_path, 200000))
    except (RuntimeError, httpx.HTTPError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    header = ("measurement", "artifactory", "nginx", "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print(f"\nartifactory --workers {WORKERS} (uvicorn), nginx worker_processes 2, {os.cpu_count()} CPUs; "
          f"wrk -t{LOAD[0]} -c{LOAD[1]} {args.duration} s")  # fmt: skip
    for index, row in enumerate([header, *rows]):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"target: mvn resolution within {TARGET_RATIO}x of nginx: {ratio:.2f}x ({verdict})")
    for problem in problems:
        print(f"problem: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
