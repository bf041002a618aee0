"""Cleanup of many versions: the dry run and the real run of `artifactory cleanup`, as a table.

    python bench/cleanup.py [--versions 50000] [--per-name 100] [--keep 10] [--database-url URL]

Seeds a hosted PyPI repository with `--versions` versions (`--per-name` versions of each project,
one wheel each, all sharing one small blob so that seeding is quick) straight into the database
through the engine's own models, attaches a policy `keep_newest: --keep`, then times, one after
the other on the same data:

- `artifactory cleanup --dry-run --json` (plans every version: loads them, orders them by PEP 440,
  asks the format what is protected);
- `artifactory cleanup --no-gc --json` (removes every version beyond the newest --keep of each
  project through the format's delete path: each file and its .metadata, one page refresh per
  project), then `artifactory gc`.

Rows give the whole command's wall-clock time (Python start-up and migrations included) and, in
brackets, the time the run itself reports. Everything lives in a temporary directory that is
removed at the end (a PostgreSQL URL gets a schema of its own, dropped at the end); nothing is
committed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from artifactory import cleanup  # noqa: E402
from artifactory.cli import prepare  # noqa: E402
from artifactory.db.models import Asset, Component  # noqa: E402
from artifactory.plugin import SYSTEM, Upload  # noqa: E402
from artifactory.settings import load_settings  # noqa: E402
from artifactory.state import AppState  # noqa: E402
from artifactory.testing.fixtures import drop_schema, new_schema  # noqa: E402

REPO = "bench-pypi"
WHEEL = "application/octet-stream"


def environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
    if database_url:
        env["ARTIFACTORY_DATABASE_URL"] = database_url
    return env


def command(data_dir: Path, database_url: str, *args: str) -> tuple[float, dict]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "artifactory", *args, "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=environment(database_url),
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"artifactory {' '.join(args)} failed:\n{result.stderr}")
    return elapsed, json.loads(result.stdout.strip().splitlines()[-1])


def seed(data_dir: Path, database_url: str, total: int, per_name: int, keep: int) -> None:
    import asyncio

    settings = load_settings(data_dir=data_dir, **({"database_url": database_url} if database_url else {}))
    prepare(settings, announce=False)
    state = AppState.build(settings)
    try:
        cleanup.save_policy(state.db, cleanup.parse_policy("bench", {"keep_newest": keep}))
        repo_row = state.engine.repos.create(
            {"name": REPO, "format": "pypi", "type": "hosted", "cleanup_policies": ["bench"]}
        )
        repo = state.engine.repository(repo_row["name"])
        stored = asyncio.run(
            state.engine.put_bytes(repo, b"wheel bytes " * 100, Upload(path="seed/blob.bin"), SYSTEM)
        )
        base = datetime.now(UTC) - timedelta(days=30)
        names = [f"proj{i:05d}" for i in range((total + per_name - 1) // per_name)]
        done = 0
        with state.db.write() as session:
            for name in names:
                count = min(per_name, total - done)
                versions = [f"1.{n}.0" for n in range(count)]
                session.execute(
                    insert(Component),
                    [
                        {
                            "repository_id": repo.id,
                            "namespace": "",
                            "name": name,
                            "version": v,
                            "attributes": {},
                            "created_at": base + timedelta(seconds=n),
                        }
                        for n, v in enumerate(versions)
                    ],
                )
                ids = dict(
                    session.execute(
                        select(Component.version, Component.id).where(
                            Component.repository_id == repo.id, Component.name == name
                        )
                    ).all()
                )
                session.execute(
                    insert(Asset),
                    [
                        {
                            "repository_id": repo.id,
                            "component_id": ids[v],
                            "path": f"packages/{name}/{name}-{v}-py3-none-any.whl",
                            "blob_sha256": stored.sha256,
                            "content_type": WHEEL,
                            "attributes": {"pypi": {"filename": f"{name}-{v}-py3-none-any.whl"}},
                            "created_at": base,
                            "updated_at": base,
                        }
                        for v in versions
                    ],
                )
                done += count
    finally:
        state.db.dispose()


def row(label: str, seconds: float, own: float | None, versions: int) -> str:
    own_text = f" ({own:.1f} s)" if own is not None else ""
    rate = versions / own if own else versions / seconds
    return f"| {label:<34} | {seconds:>8.1f} s{own_text:<10} | {versions:>9} | {rate:>12.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=50_000)
    parser.add_argument("--per-name", type=int, default=100)
    parser.add_argument("--keep", type=int, default=10)
    parser.add_argument("--database-url", default="", help="a PostgreSQL URL (default: SQLite)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-cleanup-"))
    schema, url = "", ""
    if args.database_url:
        schema, url = new_schema(args.database_url)
    try:
        data_dir = workdir / "data"
        started = time.monotonic()
        seed(data_dir, url, args.versions, args.per_name, args.keep)
        seeded = time.monotonic() - started
        dry_seconds, dry = command(data_dir, url, "cleanup", "--dry-run")
        real_seconds, real = command(data_dir, url, "cleanup", "--no-gc")
        gc_seconds, gc = command(data_dir, url, "gc", "--grace", "0")
        assert dry["versions"] == real["versions"], (dry["versions"], real["versions"])
        backend = "PostgreSQL" if url else "SQLite"
        print(
            f"\ncleanup of {args.versions} pypi versions ({args.per_name} per project, keep_newest "
            f"{args.keep}) on {backend}; seeded in {seeded:.1f} s\n"
        )
        print("| run                                | wall (own)          | versions  | versions/s   |")
        print("|------------------------------------|---------------------|-----------|--------------|")
        print(row("dry run (plan every version)", dry_seconds, dry["seconds"], args.versions))
        print(row("real run (remove, no gc)", real_seconds, real["seconds"], real["versions"]))
        print(row("blob gc afterwards", gc_seconds, None, real["versions"]))
        print(
            f"\nremoved {real['versions']} versions, {real['assets']} files, {real['bytes']} bytes; "
            f"gc freed {gc.get('blobs')} blobs; errors: {len(real['errors'])}"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if schema:
            drop_schema(args.database_url, schema)


if __name__ == "__main__":
    main()
