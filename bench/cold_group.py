"""A cold install through a group (hosted + proxy of an upstream) against the same install straight
from that upstream, in one run: pip, uv, npm and mvn.

    python bench/cold_group.py [--runs 3] [--packages 20] [--size-kib 64] [--clients pip,uv,npm,mvn]
                               [--shape flat|requests-flask] [--baseline DIR] [--reference] [--pin]

The upstream is nginx serving a static copy of an index on 127.0.0.1: a PEP 503 simple index of
wheels for pip and uv, packuments and tarballs for npm, a Maven repository layout for mvn.
`--packages` packages of `--size-kib` each (incompressible), and one root package that depends on
all of them, so a client resolves the root, then fetches every page and file.

mvn: the static Maven repository holds, for each package, a jar, a pom, their .sha1 files and a
maven-metadata.xml (with .sha1), and a root artifact whose pom depends on all of them. The measured
build is `mvn -B -q compile` of a one-class project that depends on the root through the version
range [1.0,2.0) (so mvn reads the root's maven-metadata.xml too), with `-s settings.xml` mirroring
every repository (`<mirrorOf>*</mirrorOf>`) to nginx or to our group, an empty local repository
(`-Dmaven.repo.local`) and `-o` off. Maven 3.8 has no read-only shared local repository, so the
plugins the build runs (pinned versions, see MAVEN_PLUGINS) and everything they depend on are cold
too, and come from the same upstream: before measuring, the script builds the project once against
nginx serving `~/.m2/repository` (which must hold those plugins; it is only read) into a scratch
local repository, and copies every jar and pom that build downloaded into the static repository,
each with its .sha1. Direct and group runs then download exactly the same files from the same tree,
plugins included, which is what a first build on a new machine does.

Our server (`--workers 2`, SQLite) gets, for every run, a new proxy repository of nginx and a new
group of (a hosted repository holding an unrelated package, that proxy): every run is a cold miss
for every page and every file, single-flight and the dependency-confusion guard included. Each
client runs with an empty cache. Runs alternate direct and through the group; the table gives
medians and the ratio (target: at most 1.3x), the server's CPU seconds per install through the group
(which load on the machine moves less than wall times), the client's own CPU seconds per install
(direct / through the group) and the load average seen. Everything
listens on 127.0.0.1.

`--shape requests-flask`: pip's and uv's index is instead the install the issue's first figures were
taken on, `requests flask`: twelve wheels of those projects' sizes, requiring each other as they do
(three rounds of resolution); npm's and mvn's stay flat.

`--reference`: pip, uv and mvn also install through nginx caching the static index
(`proxy_cache`, cold on every run), in the group's stead: what a proxy in C costs on this machine
(npm is left out: its packuments name the tarballs' upstream URLs, which bypass the cache).

`--pin`: the clients run on CPU 0, nginx and the servers on CPU 1, so that a client and the server
it talks to never take each other's core (a diagnostic: on two cores the client's own CPU competes
with the server's, and the ratio follows the machine's speed).

`--baseline DIR`: a second server run from another source tree (say `git archive <commit> | tar -x
-C DIR`), measured the same way in the same runs, its installs interleaved with the others, for an
A/B comparison on a noisy machine (rows `<client>@base`).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import html
import io
import json
import os
import pwd
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from run import _tree_cpu, stop_process, wait_for_port  # noqa: E402

from artifactory.testing.server import LiveServer, free_port  # noqa: E402

TARGET = 1.3
CURRENT = "current"  # the server run from this tree (`--baseline` adds "base")
# Where each installed package lives in a source tree (pyproject's package-dir).
PACKAGE_DIRS = {
    "artifactory": "artifactory",
    "artifactory_formats": "formats",
    "artifactory_plugins": "plugins",
    "artifactory_migrations": "migrations",
}
NGINX_CONF = """\
{user}daemon off;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
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
        # A packument lives at /npm/<name>, stored as <name>.json beside the <name>/ tarball folder.
        location /npm/ {{ default_type application/json; try_files $uri.json $uri =404; }}
        # Read only, to seed the static Maven repository with the plugins a build needs (not measured).
        location /m2/ {{ alias {m2}/; }}
    }}
{reference}}}
"""
# `--reference`: nginx as a caching proxy of the static index, where the group stands in the measured
# installs. Every run asks under a prefix of its own (/run-<client>-<n>/), part of the cache key:
# every run starts cold, as the group does.
REFERENCE_CONF = """\
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=reference:10m inactive=1h use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location ~ ^/run-[^/]+(/.*)$ {{
            proxy_pass http://127.0.0.1:{upstream}$1;
            proxy_cache reference;
            proxy_cache_valid 200 1h;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""
REFERENCE = "nginx-cache"  # its rows' label
# `--pin`: the clients run on CPU 0, nginx and the servers on CPU 1 (this script's own affinity,
# which they inherit), so that neither takes the other's core.
CLIENT_PREFIX: list[str] = []


def payload(name: str, size: int) -> bytes:
    """Incompressible bytes, the same for the same name."""
    seed = hashlib.sha256(name.encode()).digest()
    blocks = (hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


# -- PyPI ------------------------------------------------------------------------------------------
def wheel(name: str, requires: list[str], size: int) -> tuple[str, bytes]:
    module = name.replace("-", "_")
    dist_info = f"{module}-1.0.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{module}/__init__.py", "")
        archive.writestr(f"{module}/data.bin", payload(name, size))
        archive.writestr(f"{dist_info}/METADATA", meta)
        archive.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any")
        archive.writestr(f"{dist_info}/RECORD", "")
    return f"{module}-1.0-py3-none-any.whl", buffer.getvalue()


# The install the issue's figures were taken on, `requests flask`: its twelve projects, their wheels'
# sizes in KiB (the pure-Python wheels of late 2024) and what each requires. The wheels here hold
# incompressible bytes of that size, so only the shape is theirs: three rounds of resolution (the two
# roots, what they require, MarkupSafe under Werkzeug and Jinja2), small files and large.
REQUESTS_FLASK: dict[str, tuple[int, list[str]]] = {
    "requests": (64, ["charset-normalizer", "idna", "urllib3", "certifi"]),
    "charset-normalizer": (49, []),
    "idna": (70, []),
    "urllib3": (126, []),
    "certifi": (167, []),
    "flask": (101, ["werkzeug", "jinja2", "itsdangerous", "click", "blinker"]),
    "werkzeug": (227, ["markupsafe"]),
    "jinja2": (133, ["markupsafe"]),
    "markupsafe": (18, []),
    "itsdangerous": (16, []),
    "click": (97, []),
    "blinker": (9, []),
}
SHAPES = ("flat", "requests-flask")


def pypi_static(www: Path, packages: int, size: int, shape: str = "flat") -> tuple[list[str], list[str]]:
    """The static index of `shape`: (its projects but the root, the requirements an install asks
    for). "flat": `packages` projects of `size` bytes, all required by one root, `cold-app`."""
    if shape == "requests-flask":
        projects = {name: wheel(name, needs, kib * 1024) for name, (kib, needs) in REQUESTS_FLASK.items()}
        names, wanted = list(projects), ["requests", "flask"]
    else:
        names, wanted = [f"cold-{i:03d}" for i in range(packages)], ["cold-app"]
        projects = {name: wheel(name, [], size) for name in names}
        projects["cold-app"] = wheel("cold-app", names, 1024)
    for name, (filename, data) in projects.items():
        (www / "packages" / name).mkdir(parents=True)
        (www / "packages" / name / filename).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        link = f'<a href="../../packages/{name}/{html.escape(filename)}#sha256={digest}">{filename}</a>'
        (www / "simple" / name).mkdir(parents=True)
        (www / "simple" / name / "index.html").write_text(f"<!DOCTYPE html><html><body>{link}</body></html>")
    return names, wanted


def pip_install(index: str, work: Path, requirements: list[str]) -> None:
    target = Path(tempfile.mkdtemp(dir=work, prefix="pip-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ARTIFACTORY_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", NO_PROXY="*")
    command = [*CLIENT_PREFIX, sys.executable, "-m", "pip", "download", "--no-cache-dir", "-q",
               "-d", str(target), "--index-url", index, *requirements]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)


def uv_install(index: str, work: Path, requirements: list[str]) -> None:
    target = Path(tempfile.mkdtemp(dir=work, prefix="uv-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "ARTIFACTORY_"))}
    env.update(UV_CACHE_DIR=str(target / "cache"), NO_PROXY="*")
    command = [*CLIENT_PREFIX, shutil.which("uv") or "uv", "pip", "install", "--no-cache", "-q",
               "--target", str(target / "site"), "--python", sys.executable,
               "--index-url", index, *requirements]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"uv failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")


# -- npm -------------------------------------------------------------------------------------------
def tarball(name: str, size: int, dependencies: dict[str, str]) -> bytes:
    manifest = {"name": name, "version": "1.0.0", "main": "index.js", "dependencies": dependencies}
    files = {
        "package.json": json.dumps(manifest).encode(),
        "index.js": b"module.exports = 1;\n",
        "data.bin": payload(name, size),
    }
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w") as archive:
            for path, data in files.items():
                info = tarfile.TarInfo(f"package/{path}")
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def npm_static(www: Path, base: str, packages: int, size: int) -> list[str]:
    names = [f"cold-pkg-{i:03d}" for i in range(packages)]
    for name in names:
        data = tarball(name, size, {})
        (www / "npm" / name / "-").mkdir(parents=True)
        (www / "npm" / name / "-" / f"{name}-1.0.0.tgz").write_bytes(data)
        version = {
            "name": name,
            "version": "1.0.0",
            "dependencies": {},
            "dist": {
                "tarball": f"{base}npm/{name}/-/{name}-1.0.0.tgz",
                "shasum": hashlib.sha1(data).hexdigest(),
                "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
            },
        }
        document = {"name": name, "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": version}}
        (www / "npm" / f"{name}.json").write_text(json.dumps(document))
    return names


def npm_install(registry: str, names: list[str], work: Path) -> None:
    folder = Path(tempfile.mkdtemp(dir=work, prefix="npm-"))
    (folder / "package.json").write_text(
        json.dumps({"name": "consumer", "version": "1.0.0", "dependencies": dict.fromkeys(names, "^1.0.0")})
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_")}
    env.update(HOME=str(folder), npm_config_cache=str(folder / "cache"), npm_config_update_notifier="false")
    subprocess.run(
        [*CLIENT_PREFIX, "npm", "install", "--no-audit", "--no-fund", "--registry", registry],
        cwd=folder, env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    if len(list((folder / "node_modules").glob("cold-pkg-*"))) != len(names):
        raise RuntimeError(f"npm install from {registry} did not install every package")


# -- Maven ---------------------------------------------------------------------------------------
MAVEN_GROUP = "com.cold"
M2 = Path.home() / ".m2" / "repository"
MAVEN_PLUGINS = {
    "maven-resources-plugin": "3.3.1",
    "maven-compiler-plugin": "3.13.0",
    "maven-surefire-plugin": "3.2.5",
    "maven-jar-plugin": "3.4.1",
    "maven-install-plugin": "3.1.1",
    "maven-deploy-plugin": "3.1.1",
    "maven-clean-plugin": "3.3.2",
}


def maven_pom(artifact: str, dependencies: dict[str, str], packaging: str = "jar") -> str:
    deps = "".join(
        f"<dependency><groupId>{MAVEN_GROUP}</groupId><artifactId>{name}</artifactId>"
        f"<version>{version}</version></dependency>"
        for name, version in dependencies.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<project xmlns="http://maven.apache.org/POM/4.0.0">'
        f"<modelVersion>4.0.0</modelVersion><groupId>{MAVEN_GROUP}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>1.0</version><packaging>{packaging}</packaging><dependencies>{deps}</dependencies></project>"
    )


def maven_jar(name: str, size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        archive.writestr(f"com/cold/{name.replace('-', '_')}/data.bin", payload(name, size))
    return buffer.getvalue()


def with_sha1(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.with_name(path.name + ".sha1").write_text(hashlib.sha1(data).hexdigest())


def maven_static(www: Path, packages: int, size: int) -> None:
    """Our artifacts, each with .sha1 files and a maven-metadata.xml (the plugins come from `seed_maven`)."""
    names = [f"dep-{i:03d}" for i in range(packages)]
    artifacts = {name: (maven_pom(name, {}), maven_jar(name, size)) for name in names}
    root = maven_pom("cold-root", dict.fromkeys(names, "1.0"))
    artifacts["cold-root"] = (root, maven_jar("cold-root", 1024))
    folder = www / "maven" / MAVEN_GROUP.replace(".", "/")
    for name, (pom, jar) in artifacts.items():
        with_sha1(folder / name / "1.0" / f"{name}-1.0.pom", pom.encode())
        with_sha1(folder / name / "1.0" / f"{name}-1.0.jar", jar)
        metadata = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<metadata><groupId>{MAVEN_GROUP}</groupId>'
            f"<artifactId>{name}</artifactId><versioning><latest>1.0</latest><release>1.0</release>"
            "<versions><version>1.0</version></versions><lastUpdated>20260101000000</lastUpdated>"
            "</versioning></metadata>"
        )
        with_sha1(folder / name / "maven-metadata.xml", metadata.encode())


def maven_project(work: Path) -> Path:
    project = work / "mvn-project"
    source = project / "src" / "main" / "java" / "app"
    source.mkdir(parents=True)
    (source / "App.java").write_text("package app;\npublic class App { }\n")
    plugins = "".join(
        f"<plugin><groupId>org.apache.maven.plugins</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></plugin>"
        for a, v in MAVEN_PLUGINS.items()
    )
    (project / "pom.xml").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>app</groupId><artifactId>app</artifactId><version>1.0</version>"
        "<properties><maven.compiler.release>17</maven.compiler.release>"
        "<project.build.sourceEncoding>UTF-8</project.build.sourceEncoding></properties>"
        f"<dependencies><dependency><groupId>{MAVEN_GROUP}</groupId><artifactId>cold-root</artifactId>"
        "<version>[1.0,2.0)</version></dependency></dependencies>"
        f"<build><pluginManagement><plugins>{plugins}</plugins></pluginManagement></build></project>"
    )
    return project


def mvn_install(url: str, project: Path, work: Path) -> Path:
    """`mvn compile` with every repository mirrored to `url` and an empty local repository (returned)."""
    local = Path(tempfile.mkdtemp(dir=work, prefix="m2-"))
    settings = local.with_suffix(".settings.xml")
    settings.write_text(
        '<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0"><mirrors><mirror><id>cold</id>'
        f"<mirrorOf>*</mirrorOf><url>{url}</url></mirror></mirrors></settings>"
    )
    shutil.rmtree(project / "target", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAVEN_", "ARTIFACTORY_"))}
    command = [*CLIENT_PREFIX, "mvn", "-B", "-q", "-s", str(settings), f"-Dmaven.repo.local={local}",
               "compile"]  # fmt: skip
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"mvn against {url} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if not list(local.glob("com/cold/dep-*/1.0/dep-*-1.0.jar")):
        raise RuntimeError(f"mvn against {url} did not download the dependencies")
    return local


def seed_maven(www: Path, upstream: str, project: Path, work: Path) -> None:
    """Copy the plugins (and their dependencies) one build needs from ~/.m2, as nginx serves them
    read-only at /m2/, into the static repository, each jar and pom with its .sha1 (not measured)."""
    # Our own artifacts are not in ~/.m2: the seeding build finds them through a second mirror.
    local = Path(tempfile.mkdtemp(dir=work, prefix="m2-seed-"))
    settings = local.with_suffix(".settings.xml")
    settings.write_text(
        '<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0"><mirrors><mirror><id>seed</id>'
        f"<mirrorOf>*,!cold</mirrorOf><url>{upstream}m2/</url></mirror></mirrors>"
        "<profiles><profile><id>cold</id><repositories><repository><id>cold</id>"
        f"<url>{upstream}maven/</url></repository></repositories></profile></profiles>"
        "<activeProfiles><activeProfile>cold</activeProfile></activeProfiles></settings>"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAVEN_", "ARTIFACTORY_"))}
    command = [*CLIENT_PREFIX, "mvn", "-B", "-q", "-s", str(settings), f"-Dmaven.repo.local={local}",
               "compile"]  # fmt: skip
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"seeding the Maven repository from {M2} failed:\n{done.stdout[-3000:]}")
    shutil.rmtree(project / "target", ignore_errors=True)
    for found in local.rglob("*"):
        relative = found.relative_to(local)
        if found.suffix in (".jar", ".pom") and relative.parts[:2] != ("com", "cold"):
            with_sha1(www / "maven" / relative, found.read_bytes())
    shutil.rmtree(local, ignore_errors=True)


# -- servers ---------------------------------------------------------------------------------------
@contextmanager
def nginx(work: Path, www: Path, port: int, reference_port: int | None = None) -> Iterator[str]:
    """nginx serving `www` on `port` (its URL is yielded), and with `reference_port` a caching proxy
    of it there too (REFERENCE_CONF)."""
    conf_dir = work / "nginx"
    conf_dir.mkdir()
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    conf = conf_dir / "nginx.conf"
    reference = (
        REFERENCE_CONF.format(dir=conf_dir, port=reference_port, upstream=port) if reference_port else ""
    )
    conf.write_text(
        NGINX_CONF.format(user=user, dir=conf_dir, port=port, www=www, m2=M2, reference=reference)
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    with open(conf_dir / "stderr.log", "wb") as log:
        process = subprocess.Popen(
            [binary, "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_port(port, process, 30.0, "nginx")
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_process(process)


def baseline_path(tree: Path, work: Path) -> str:
    """A PYTHONPATH on which the packages of the source tree `tree` import under their installed
    names (pyproject's package-dir: formats/ is artifactory_formats, ...)."""
    folder = work / "baseline-path"
    folder.mkdir()
    for name, source in PACKAGE_DIRS.items():
        (folder / name).symlink_to(tree.resolve() / source)
    return str(folder)


def _children_cpu() -> float:
    """CPU seconds of this script's finished child processes (and theirs): a client's own CPU."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    client: str,
    servers: dict[str, LiveServer],
    hosted: dict[str, dict[str, str]],
    upstream: str,
    npm_names: list[str],
    requirements: list[str],
    project: Path | None,
    work: Path,
    runs: int,
    reference: str | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Wall times of `client`'s install straight from nginx and through a new (cold) group on each
    server (by label), and each server's CPU seconds per install; with `reference` (the caching
    nginx's URL), through it as well (label REFERENCE, no CPU figure)."""
    fmt = {"npm": "npm", "mvn": "maven"}.get(client, "pypi")
    folder = {"npm": "npm/", "maven": "maven/"}.get(fmt, "simple/")
    direct = upstream + folder
    install: Callable[[str], object] = {
        "pip": lambda url: pip_install(url, work, requirements),
        "uv": lambda url: uv_install(url, work, requirements),
        "npm": lambda url: npm_install(url, npm_names, work),
        "mvn": lambda url: shutil.rmtree(mvn_install(url, project or work, work), ignore_errors=True),
    }[client]
    labels = [*servers, *([REFERENCE] if reference else [])]
    times: dict[str, dict[str, list[float]]] = {
        label: {"direct": [], "group": [], "cpu": [], "load": [], "client": []} for label in labels
    }
    directs: list[float] = []
    direct_client: list[float] = []
    for run in range(runs):
        order: list[tuple[str, str]] = [("", direct)]
        for label, server in servers.items():
            proxy = server.create_repo(fmt, "proxy", name=f"{client}-proxy-{run}", url=direct)
            members = [hosted[label][fmt], proxy]
            group = server.create_repo(fmt, "group", name=f"{client}-all-{run}", members=members)
            order.append((label, f"{server.url}/repository/{group}/" + ("simple/" if fmt == "pypi" else "")))
        if reference:
            order.append((REFERENCE, f"{reference}run-{client}-{run}/{folder}"))
        shift = run % len(order)  # each position in turn, so no install always runs first
        for label, url in order[shift:] + order[:shift]:
            process = servers[label].process if label in servers else None
            cpu = _tree_cpu(process.pid) if process is not None else 0.0
            client_cpu = _children_cpu()
            started = time.monotonic()
            install(url)
            elapsed = time.monotonic() - started
            client_cpu = _children_cpu() - client_cpu
            if not label:
                directs.append(elapsed)
                direct_client.append(client_cpu)
            else:
                times[label]["group"].append(elapsed)
                times[label]["cpu"].append(_tree_cpu(process.pid) - cpu if process is not None else 0.0)
                times[label]["client"].append(client_cpu)
        load = os.getloadavg()[0]
        through = ", ".join(
            f"group{'@' + label if label != CURRENT else ''} {times[label]['group'][-1]:.2f} s"
            f" (server CPU {times[label]['cpu'][-1]:.2f} s)"
            for label in servers
        ) + (f", {REFERENCE} {times[REFERENCE]['group'][-1]:.2f} s" if reference else "")
        print(f"run {run + 1}: {client} direct {directs[-1]:.2f} s, {through}, load average {load:.1f}")
        for label in labels:
            times[label]["load"].append(load)
    for label in labels:
        times[label]["direct"] = directs
        times[label]["direct_client"] = direct_client
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--packages", type=int, default=20)
    parser.add_argument("--size-kib", type=int, default=64)
    parser.add_argument("--clients", default="pip,uv,npm,mvn")
    parser.add_argument(
        "--shape", choices=SHAPES, default="flat",
        help="pip's and uv's index: flat (a root and --packages projects) or requests-flask",
    )  # fmt: skip
    parser.add_argument("--baseline", type=Path, help="a source tree to measure beside this one (A/B)")
    parser.add_argument(
        "--reference", action="store_true",
        help="also install through nginx caching the upstream (pip, uv, mvn): what a proxy costs here",
    )  # fmt: skip
    parser.add_argument(
        "--pin", action="store_true", help="clients on CPU 0, nginx and the servers on CPU 1"
    )  # fmt: skip
    args = parser.parse_args(argv)
    clients = [c for c in args.clients.split(",") if c]
    if args.pin:
        os.sched_setaffinity(0, {1})  # inherited by nginx and the servers started below
        CLIENT_PREFIX[:] = ["taskset", "-c", "0"]
    work = Path(tempfile.mkdtemp(prefix="cold-group-"))
    try:
        www = work / "www"
        port = free_port()
        upstream = f"http://127.0.0.1:{port}/"
        reference_port = free_port() if args.reference else None
        _projects, requirements = pypi_static(www, args.packages, args.size_kib * 1024, args.shape)
        npm_names = npm_static(www, upstream, args.packages, args.size_kib * 1024)
        project = None
        if "mvn" in clients:
            maven_static(www, args.packages, args.size_kib * 1024)
            project = maven_project(work)
        # The production default of the repository/security config cache (LiveServer's is shorter,
        # for tests that change configuration and read it back at once).
        env = {"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"}
        servers = {CURRENT: LiveServer(work / "data", workers=2, env=env)}
        if args.baseline is not None:
            path = baseline_path(args.baseline, work)
            servers["base"] = LiveServer(work / "data-base", workers=2, env={**env, "PYTHONPATH": path})
            # `python -m` puts the working directory first on sys.path: run from this checkout, the
            # base server would import this tree's engine (against its own, older schema).
            os.chdir(work)
        try:
            for server in servers.values():
                server.start()
            with nginx(work, www, port, reference_port):
                if project is not None:
                    seed_maven(www, upstream, project, work)
                hosted = {
                    label: {
                        "pypi": server.create_repo("pypi", name="internal-pypi"),
                        "npm": server.create_repo("npm", name="internal-npm"),
                        "maven": server.create_repo("maven", name="internal-maven"),
                    }
                    for label, server in servers.items()
                }
                times = {
                    client: measure(
                        client,
                        servers,
                        hosted,
                        upstream,
                        npm_names,
                        requirements,
                        project,
                        work,
                        args.runs,
                        # npm's packuments name their tarballs' upstream URLs: not through the cache
                        f"http://127.0.0.1:{reference_port}/" if reference_port and client != "npm" else None,
                    )  # fmt: skip
                    for client in clients
                }
        finally:
            for server in servers.values():
                server.stop()
        print()
        shape = f"{args.packages} packages of {args.size_kib} KiB + 1 root"
        if args.shape == "requests-flask":  # pip's and uv's; npm's and mvn's are flat
            shape = f"pip, uv: requests flask ({len(REQUESTS_FLASK)} wheels); npm, mvn: {shape}"
        pinned = ", clients on CPU 0 and the servers on CPU 1" if args.pin else ""
        print(f"{shape}, cold caches, median of {args.runs}{pinned}")
        print(
            f"{'client':<16}{'direct (nginx)':>16}{'through group':>16}{'ratio':>8}{'server CPU':>12}"
            f"{'client CPU':>18}{'load avg':>10}  target <= {TARGET}x"
        )
        for client in clients:
            for label, measured in times[client].items():
                direct = statistics.median(measured["direct"])
                group = statistics.median(measured["group"])
                cpu = f"{statistics.median(measured['cpu']):.2f} s" if label != REFERENCE else "-"
                own_direct = statistics.median(measured["direct_client"])
                own = f"{own_direct:.2f} / {statistics.median(measured['client']):.2f} s"
                load = max(measured["load"])
                verdict = "met" if group / direct <= TARGET else "MISSED"
                row = client if label == CURRENT else f"{client}@{label}"
                print(
                    f"{row:<16}{direct:>14.2f} s{group:>14.2f} s{group / direct:>7.2f}x{cpu:>12}"
                    f"{own:>18}{load:>10.1f}  {verdict}"
                )
        print("server CPU: CPU seconds our server used for one install through the group (median);")
        print("client CPU: the client's own CPU seconds per install, direct / through the group (median):")
        print("  on a machine of few cores client and server share them: the ratio moves with both;")
        print("load avg: the highest 1-minute load average seen after a run (above ~2 the times are noisy)")
        if args.reference:
            print(
                f"@{REFERENCE}: through nginx caching the upstream (proxy_cache), cold, in the group's stead"
            )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
