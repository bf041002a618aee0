"""The application's own CPU for a cold install through a group, called in-process: no HTTP server
and no client, so that changes of a few percent show (end to end, uv and the server share the
machine's cores and the figures move by a tenth from one run to the next).

    python bench/cold_inproc.py [--rounds 20] [--packages 20] [--profile page|head|range|get]

The upstream is nginx serving cold_group.py's static PyPI index (20 packages of 64 KiB). Each round
creates a new proxy of it and a new group of (a hosted repository, that proxy), then asks the
application what uv asks of it, a phase at a time, every package of a phase at once: the project
pages (cold: fetched, parsed, cached, merged), a HEAD of each wheel (cold: fetched whole, verified,
cached), a range of each (warm), each whole wheel (warm) and a HEAD again (warm). The ASGI app is
called directly on uvloop, as uvicorn would call it, with the settings' defaults (SQLite).

Printed: the process's CPU per request of each phase (every thread's: the event loop's, the worker
threads' hashing, the row stage's commits, which each phase waits for before it is counted), and per
round. Not counted: what uvicorn spends on the client's sockets (about a fifth of the server's CPU
per request in `cold_group.py`), the client's own CPU, nginx. Medians over the rounds after the
first (which pays for imports and first connections).

`--profile PHASE`: cProfile of the event loop's thread during that phase of every round, the top
functions by cumulative time (the worker threads are not in it); `--profile-out FILE` writes its stats
there too, for `pstats` or a summary by package.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import uvloop  # noqa: E402
from cold_group import nginx, pypi_static  # noqa: E402

from artifactory.testing.server import free_port  # noqa: E402

JSON_PAGE = [(b"accept", b"application/vnd.pypi.simple.v1+json")]
PHASES = ("page", "head", "range", "get", "head-warm")
SETTLE_SECONDS = 0.05  # for the background commits of a phase to land before its CPU is read


class App:
    """The ASGI application called directly, as uvicorn calls it."""

    def __init__(self, data_dir: Path) -> None:
        from artifactory.app import Application
        from artifactory.cli import prepare
        from artifactory.settings import load_settings
        from artifactory.state import AppState

        settings = load_settings(data_dir=str(data_dir))
        prepare(settings, announce=False)
        self.app = Application(AppState.build(settings))

    async def call(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8081),
            "headers": [(b"host", b"127.0.0.1:8081"), (b"accept-encoding", b"gzip"), *headers],
            "extensions": {},
        }  # fmt: skip
        answer: dict[str, Any] = {"status": 0, "body": bytearray()}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await self.app(scope, receive, send)
        return answer["status"], bytes(answer["body"])


def wheel_path(group: str, project: str, page: bytes) -> str:
    url = json.loads(page)["files"][0]["url"]
    marker = f"/repository/{group}/"
    return marker + url.split(marker, 1)[1] if marker in url else urljoin(f"{marker}simple/{project}/", url)


async def measure(
    app: App, upstream: str, names: list[str], rounds: int, profile: str | None, profile_out: str | None
) -> None:
    registry = app.app.state.engine.repos
    profiler = cProfile.Profile()
    per_phase: dict[str, list[float]] = {phase: [] for phase in PHASES}
    per_round: list[float] = []
    async with app.app.starlette.router.lifespan_context(app.app.starlette):
        registry.create({"name": "internal", "format": "pypi", "type": "hosted"})
        for number in range(rounds):
            group = f"g{number}"
            proxy = f"p{number}"
            registry.create({"name": proxy, "format": "pypi", "type": "proxy", "url": upstream})
            members = ["internal", proxy]
            registry.create({"name": group, "format": "pypi", "type": "group", "members": members})
            await asyncio.sleep(0.2)
            started = time.process_time()
            paths: list[str] = []
            for phase in PHASES:
                if phase == "page":
                    requests = [("GET", f"/repository/{group}/simple/{n}/", JSON_PAGE) for n in names]
                else:
                    method = "HEAD" if phase.startswith("head") else "GET"
                    headers = [(b"range", b"bytes=49152-65535")] if phase == "range" else []
                    requests = [(method, path, headers) for path in paths]
                cpu = time.process_time()
                if profile == phase:
                    profiler.enable()
                answers = await asyncio.gather(*(app.call(*request) for request in requests))
                await asyncio.sleep(SETTLE_SECONDS)
                if profile == phase:
                    profiler.disable()
                per_phase[phase].append((time.process_time() - cpu) * 1000 / len(requests))
                if any(status not in (200, 206) for status, _ in answers):
                    raise RuntimeError(f"{phase}: {sorted({status for status, _ in answers})}")
                if phase == "page":
                    paths = [wheel_path(group, n, body) for n, (_, body) in zip(names, answers, strict=True)]
            per_round.append((time.process_time() - started) * 1000)
    later = slice(1, None) if rounds > 1 else slice(None)
    print(f"{len(names)} packages, {rounds} rounds; application CPU per request (median after round 1):")
    for phase in PHASES:
        print(f"  {phase:10} {statistics.median(per_phase[phase][later]):6.3f} ms")
    print(f"  per round  {statistics.median(per_round[later]):6.1f} ms ({len(names) * len(PHASES)} requests)")
    if profile is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
        if profile_out is not None:
            profiler.dump_stats(profile_out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--packages", type=int, default=20)
    parser.add_argument("--profile", choices=PHASES)
    parser.add_argument("--profile-out", help="also write the profile's stats to this file (pstats)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cold-inproc-"))
    try:
        www = work / "www"
        port = free_port()
        names, _root = pypi_static(www, args.packages, 64 * 1024)
        os.environ.setdefault("ARTIFACTORY_CONFIG_CACHE_SECONDS", "1.0")
        app = App(work / "data")
        with nginx(work, www, port) as upstream:
            uvloop.run(
                measure(app, upstream + "simple/", names, max(1, args.rounds), args.profile, args.profile_out)
            )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
