"""Search and web UI speed on a large catalogue, on SQLite and on PostgreSQL.

    python bench/ui_search.py [--components 100000] [--duration 10] [--requests 200]
                              [--databases sqlite,postgresql]

For each database: a fresh data dir, migrations (artifactory.db.migrate.upgrade), then --components
components with three assets each on average (one blob per asset, random sha256/sha1/md5/sha512)
inserted straight through SQLAlchemy in big batches, over three hosted repositories (maven, pypi,
npm) with names like `lib-12345`, four versions each. Then the real server (`artifactory serve
--workers 2`) runs on it and is measured, anonymously:

- GET /api/v1/search by name substring (q=lib-123), name prefix (q=lib-12*), sha256=, sha1=, md5=:
  --requests sequential requests each over one keep-alive connection, p50/p99 in ms; every answer
  is checked (the digest searches must find the component the digest belongs to);
- with wrk -t2 -c32: GET /ui/ (the repository list), one component's page and, for comparison, a
  1 KB raw file, in req/s.

PostgreSQL is the server of the test suite (ARTIFACTORY_TEST_DATABASE_URL, default 127.0.0.1:5432,
database `test`); the script works in a schema of its own and drops it at the end. After the load it
runs ANALYZE on its tables there, as autovacuum soon would; SQLite gets no ANALYZE (the server never
runs one). Everything else lives in one temporary directory, removed at the end. See bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

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
    describe_errors,
    find_tool,
    read_tail,
    server_errors,
    sha256_of,
    upload,
    wrk,
)

from artifactory.testing.server import LiveServer  # noqa: E402

VERSIONS_PER_NAME = 4
BATCH_NAMES = 5_000  # names (x4 components, x12 assets, x12 blobs) per transaction
MIN_COMPONENTS = 1_000  # below this `lib-123` would not exist
# (repository, format, share of the names out of 5, files per version)
REPOSITORIES = (
    ("maven-releases", "maven", (0, 1)),
    ("pypi-hosted", "pypi", (2, 3)),
    ("npm-hosted", "npm", (4,)),
)
DATABASES = ("sqlite", "postgresql")


@dataclass
class Probe:
    """A blob whose digests a search must lead back to its component."""

    sha256: str
    sha1: str
    md5: str
    name: str
    version: str


@dataclass
class Filled:
    components: int = 0
    assets: int = 0
    seconds: float = 0.0
    probes: list[Probe] = field(default_factory=list)
    component_page: tuple[str, str, str] = ("", "", "")  # repository, namespace, name


@dataclass
class Row:
    what: str
    load: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    rps: float | None = None
    note: str = ""


# -- the catalogue ---------------------------------------------------------------------------------


def repository_of(n: int) -> str:
    slot = n % 5
    return next(name for name, _fmt, slots in REPOSITORIES if slot in slots)


def namespace_of(repository: str, n: int) -> str:
    if repository == "maven-releases":
        return f"com.example.team{n % 40}"
    if repository == "npm-hosted" and n % 2 == 0:
        return "@acme"
    return ""


def versions_of(n: int) -> list[str]:
    major = 1 + n % 3
    return [f"{major}.{minor}.{(n * 7 + minor) % 10}" for minor in range(VERSIONS_PER_NAME)]


def paths_of(repository: str, namespace: str, name: str, version: str) -> list[tuple[str, str]]:
    """(path, content type) of each file of one version, laid out as the format lays it out."""
    if repository == "maven-releases":
        folder = f"{namespace.replace('.', '/')}/{name}/{version}/{name}-{version}"
        return [
            (f"{folder}.jar", "application/java-archive"),
            (f"{folder}.pom", "application/xml"),
            (f"{folder}-sources.jar", "application/java-archive"),
            (f"{folder}-javadoc.jar", "application/java-archive"),
        ]
    if repository == "pypi-hosted":
        stem = f"packages/{name}/{name.replace('-', '_')}-{version}"
        return [
            (f"{stem}.tar.gz", "application/gzip"),
            (f"{stem}-py3-none-any.whl", "application/zip"),
            (f"{stem}-cp311-cp311-manylinux_2_17_x86_64.whl", "application/zip"),
        ]
    full = f"{namespace}/{name}" if namespace else name
    return [(f"{full}/-/{name}-{version}.tgz", "application/gzip")]


def hosted_config(fmt: str) -> dict[str, Any]:
    """The config the admin API would store for a new hosted repository of `fmt`."""
    from artifactory.formats import FormatRegistry
    from artifactory.plugins import plugin_manager
    from artifactory.repository.config import validate

    formats = FormatRegistry()
    plugin_manager().hook.artifactory_register_formats(registry=formats)
    config: dict[str, Any] = validate({"name": "x", "format": fmt, "type": "hosted"}, formats)["config"]
    return config


def fill(url: str, components: int, probes: int, seed: int = 1) -> Filled:
    """Migrate the empty database at `url` and insert the catalogue; returns what a search must find."""
    from sqlalchemy import create_engine, insert, select, text

    from artifactory.db.migrate import upgrade
    from artifactory.db.models import Asset, Blob, Component, Repository, utcnow

    upgrade(url)
    rng = random.Random(seed)
    names = max(1, components // VERSIONS_PER_NAME)
    assets_total = (
        sum(len(paths_of(repository_of(n), "x", "x", "1")) for n in range(names)) * VERSIONS_PER_NAME
    )
    wanted = set(rng.sample(range(max(assets_total, probes)), probes))
    filled = Filled()
    started = time.monotonic()
    now = utcnow()
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(Repository),
                [
                    {
                        "name": name,
                        "format": fmt,
                        "type": "hosted",
                        "config": hosted_config(fmt),
                        "revision": 1,
                        "created_at": now,
                    }
                    for name, fmt, _slots in REPOSITORIES
                ],
            )
            ids = {name: id_ for name, id_ in connection.execute(select(Repository.name, Repository.id))}
        component_id = asset_index = 0
        for first in range(0, names, BATCH_NAMES):
            blobs: list[dict[str, Any]] = []
            rows: list[dict[str, Any]] = []
            assets: list[dict[str, Any]] = []
            for n in range(first, min(first + BATCH_NAMES, names)):
                repository = repository_of(n)
                namespace = namespace_of(repository, n)
                name = f"lib-{n}"
                for age, version in enumerate(reversed(versions_of(n))):
                    component_id += 1
                    created = now - timedelta(days=30 * age + rng.random() * 30)
                    rows.append(
                        {
                            "id": component_id,
                            "repository_id": ids[repository],
                            "namespace": namespace,
                            "name": name,
                            "version": version,
                            "attributes": {},
                            "created_at": created,
                        }
                    )
                    for path, content_type in paths_of(repository, namespace, name, version):
                        sha256 = rng.randbytes(32).hex()
                        sha1 = rng.randbytes(20).hex()
                        md5 = rng.randbytes(16).hex()
                        blobs.append(
                            {
                                "sha256": sha256,
                                "size": int(rng.lognormvariate(11, 1.5)) + 1,
                                "md5": md5,
                                "sha1": sha1,
                                "sha512": rng.randbytes(64).hex(),
                                "created_at": created,
                                "touched_at": created,
                            }
                        )
                        assets.append(
                            {
                                "repository_id": ids[repository],
                                "component_id": component_id,
                                "path": path,
                                "blob_sha256": sha256,
                                "content_type": content_type,
                                "attributes": {},
                                "created_at": created,
                                "updated_at": created,
                                "download_count": 0,
                            }
                        )
                        if asset_index in wanted:
                            filled.probes.append(Probe(sha256, sha1, md5, name, version))
                        asset_index += 1
            with engine.begin() as connection:
                connection.execute(insert(Blob), blobs)
                connection.execute(insert(Component), rows)
                connection.execute(insert(Asset), assets)
            filled.components, filled.assets = component_id, asset_index
            print(
                f"  {filled.components:,} components, {filled.assets:,} assets "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Explicit ids leave the sequence behind: the server's own inserts would collide.
                sequence = "pg_get_serial_sequence('component', 'id')"
                connection.execute(text(f"SELECT setval({sequence}, (SELECT max(id) FROM component))"))
                for table in ("blob", "repository", "component", "asset"):
                    connection.execute(text(f"ANALYZE {table}"))
    finally:
        engine.dispose()
    filled.seconds = time.monotonic() - started
    middle = names // 2 + 3  # a maven name: its page shows a namespace too
    middle -= middle % 5
    filled.component_page = ("maven-releases", namespace_of("maven-releases", middle), f"lib-{middle}")
    rng.shuffle(filled.probes)
    return filled


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of an empty database of `kind`; a PostgreSQL schema is dropped on leaving."""
    data_dir = workdir / kind / "data"
    data_dir.mkdir(parents=True, mode=0o700)
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'artifactory.db'}"
        return
    from artifactory.testing.fixtures import drop_schema, new_schema, test_database_url

    base = test_database_url()
    schema, url = new_schema(base)
    try:
        yield url
    finally:
        drop_schema(base, schema)


# -- measuring -------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def search_latency(base_url: str, label: str, queries: list[tuple[dict[str, str], Any]]) -> Row:
    """Sequential GET /api/v1/search, anonymously; each answer checked by its query's `check`."""
    timings: list[float] = []
    found: list[int] = []
    wrong = 0
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        for params, _check in queries[:5]:  # warm-up: connections, caches, the first plans
            client.get("/api/v1/search", params=params)
        for params, check in queries:
            started = time.perf_counter()
            response = client.get("/api/v1/search", params=params)
            timings.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"search {params}: HTTP {response.status_code} {response.text[:300]}")
            items = response.json()["items"]
            found.append(len(items))
            if not check(items):
                wrong += 1
    note = f"{min(found)}-{max(found)} results" if min(found) != max(found) else f"{found[0]} result(s)"
    if wrong:
        note += f"; {wrong} WRONG answers"
    return Row(
        label,
        "1 client",
        1000 * statistics.median(timings),
        1000 * percentile(timings, 0.99),
        len(timings) / sum(timings),
        note,
    )


def search_rows(base_url: str, filled: Filled, requests: int) -> list[Row]:
    def names_all(test: Any) -> Any:
        return lambda items: bool(items) and all(test(item["name"]) for item in items)

    def finds(probe: Probe) -> Any:
        return lambda items: any(i["name"] == probe.name and i["version"] == probe.version for i in items)

    probes = (filled.probes * (requests // max(1, len(filled.probes)) + 1))[:requests]
    kinds: list[tuple[str, list[tuple[dict[str, str], Any]]]] = [
        (
            "search q=lib-123 (substring)",
            [({"q": "lib-123"}, names_all(lambda n: "lib-123" in n))] * requests,
        ),
        (
            "search q=lib-12* (prefix)",
            [({"q": "lib-12*"}, names_all(lambda n: n.startswith("lib-12")))] * requests,
        ),
    ]
    for algorithm in ("sha256", "sha1", "md5"):
        kinds.append(
            (f"search {algorithm}=", [({algorithm: getattr(p, algorithm)}, finds(p)) for p in probes])
        )
    rows = []
    for label, queries in kinds:
        row = search_latency(base_url, label, queries)
        print(f"  {label:<30} p50 {row.p50_ms:7.1f} ms  p99 {row.p99_ms:7.1f} ms  ({row.note})", flush=True)
        rows.append(row)
    return rows


def session_cookie(base_url: str) -> str:
    """The anonymous UI session cookie, so wrk's requests look like a browser's second visit."""
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        response = client.get("/ui/")
        if response.status_code != 200:
            raise RuntimeError(f"GET /ui/: HTTP {response.status_code}")
        return "; ".join(f"{k}={v}" for k, v in response.cookies.items())


def load_rows(
    server: LiveServer, filled: Filled, wrk_bin: str, workdir: Path, duration: int
) -> tuple[list[Row], list[str]]:
    repository, namespace, name = filled.component_page
    cookie = session_cookie(server.url)
    component = str(
        httpx.URL(f"/ui/repository/{repository}/component", params={"namespace": namespace, "name": name})
    )
    targets = (
        ("GET /ui/ (repository list)", "/ui/", "maven-releases"),
        (f"GET /ui/ component page ({name})", component, versions_of(int(name.split("-")[1]))[0]),
        (f"GET {SMALL_SIZE} B raw file", f"/repository/{REPO}/{SMALL_NAME}", None),
    )
    script = workdir / "ui.lua"
    script.write_text(f'wrk.headers["Cookie"] = "{cookie}"\n' + WRK_REPORT)
    assert server.process is not None
    rows, problems = [], []
    for label, path, expect in targets:
        with httpx.Client(base_url=server.url, timeout=60.0, headers={"Cookie": cookie}) as client:
            response = client.get(path)
        if response.status_code != 200 or (expect is not None and expect not in response.text):
            raise RuntimeError(f"{label}: HTTP {response.status_code}, {expect!r} not in the page")
        wrk(wrk_bin, script, server.url + path, SMALL_LOAD, max(1, min(3, duration // 5)), server.process.pid)
        report = wrk(wrk_bin, script, server.url + path, SMALL_LOAD, duration, server.process.pid)
        rps = report["requests"] / (report["duration_us"] / 1e6)
        note = f"server used {report['server_cores']:.2f} CPUs"
        if problem := describe_errors(report):
            problems.append(f"{label}: wrk saw {problem}")
        if report["others"] > BUSY_WARNING:
            note += f"; UNRELIABLE: others used {report['others']:.0f}% of the CPUs"
        print(f"  {label:<30} {rps:9,.0f} req/s  p50 {report['p50_us'] / 1000:.1f} ms  ({note})", flush=True)
        load = f"wrk -t{SMALL_LOAD[0]} -c{SMALL_LOAD[1]}"
        rows.append(Row(label, load, report["p50_us"] / 1000, report["p99_us"] / 1000, rps, note))
    return rows, problems


def table(rows: list[Row]) -> str:
    def cell(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = ["| request | load | p50 ms | p99 ms | req/s | note |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r.what} | {r.load} | {cell(r.p50_ms, '.1f')} | {cell(r.p99_ms, '.1f')} | "
            f"{cell(r.rps, ',.0f')} | {r.note} |"
        )
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--components", type=int, default=100_000, help="components (assets: 3 per component)"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk load per page")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per kind of search")
    parser.add_argument("--databases", default=",".join(DATABASES), help="comma-separated: sqlite,postgresql")
    args = parser.parse_args(argv)
    if args.components < MIN_COMPONENTS:
        parser.error(f"--components must be at least {MIN_COMPONENTS}")
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    if not 10 <= args.requests <= 10_000:
        parser.error("--requests must be between 10 and 10000")
    chosen = [d.strip() for d in args.databases.split(",") if d.strip()]
    if not chosen or set(chosen) - set(DATABASES):
        parser.error(f"--databases takes some of {','.join(DATABASES)}, not {args.databases!r}")
    args.databases = [d for d in DATABASES if d in chosen]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk_bin = find_tool("wrk")
    if not wrk_bin:
        print("missing wrk: apt-get install -y wrk", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGHUP, _raise_interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="artifactory-ui-search-"))
    os.chdir(workdir)  # `python -m artifactory` puts the working directory first on sys.path
    status = 0
    began = time.monotonic()
    tables: list[str] = []
    try:
        small = workdir / "files" / SMALL_NAME
        small.parent.mkdir()
        small.write_bytes(os.urandom(SMALL_SIZE))
        files = {SMALL_NAME: small}
        digests = {SMALL_NAME: sha256_of(small)}
        for kind in args.databases:
            print(f"{kind}: filling {args.components:,} components", flush=True)
            with database(kind, workdir) as url:
                filled = fill(url, args.components, min(args.requests, 1000))
                server = LiveServer(
                    workdir / kind / "data",
                    database_url="" if kind == "sqlite" else url,
                    workers=SERVER_WORKERS,
                    env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"},  # the default (tests shorten it)
                )
                try:
                    server.start(timeout=120.0)
                    upload(server, files)
                    check_served(server.url, files, digests)
                    rows = search_rows(server.url, filled, args.requests)
                    more, problems = load_rows(server, filled, wrk_bin, workdir, args.duration)
                    rows += more
                finally:
                    server.stop()
                problems += server_errors(read_tail(server.log_path, 200_000))
            heading = (
                f"{kind}: {filled.components:,} components, {filled.assets:,} assets and blobs in "
                f"{len(REPOSITORIES)} repositories (inserted in {filled.seconds:.0f} s); "
                f"artifactory --workers {SERVER_WORKERS}, anonymous caller, {os.cpu_count()} CPUs"
            )
            tables.append("\n".join([heading, "", table(rows), *(f"- {p}" for p in problems)]))
        print()
        print("\n\n".join(tables))
        print(f"\nwhole run: {time.monotonic() - began:.0f} s")
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"\ninterrupted ({str(exc) or 'Ctrl-C'}); servers stopped", file=sys.stderr)
        status = 130
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.chdir("/")
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
