"""What the format benchmarks share besides run.py's helpers (wrk, nginx, CPU accounting): measuring an
older tree of this server beside today's in the same run.

A script that takes `--base DIR` starts two servers side by side, `base` (the tree of
`--base-commit`, a git worktree at DIR, added with `git worktree add --detach` when missing) and
`now` (this checkout), gives both the same content, and measures every figure on both, round after
round, alternating which goes first. `Comparison` keeps the samples and prints the medians, the ratio
of now to base (turned round for times, so that above 1 is always better) and a verdict against
`THRESHOLD`; next to it the server CPU time per request (or per client run), which other load on the
machine moves far less than req/s.

The scripts run `python -m artifactory`, which puts the working directory first on sys.path: they
chdir into their temporary directory first, so that PYTHONPATH alone says which tree is imported.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from proxy_verify import importable  # noqa: E402
from run import _tree_cpu, wrk  # noqa: E402
from run import nginx_server as nginx  # noqa: E402, F401 - the scripts' nginx

from artifactory.testing.server import LiveServer  # noqa: E402

BASE_COMMIT = "5af08a4"  # just before the index documents moved into the engine
DEFAULT_BASE = Path(f"/tmp/base-{BASE_COMMIT}")
THRESHOLD = 0.95  # now may be at most 5% worse than base
LABELS = ("base", "now")

# -- the base tree -------------------------------------------------------------------------------------


def worktree(path: Path, commit: str) -> Path:
    """The git worktree of `commit` at `path`, added (detached) when missing; refused when `path`
    holds another commit."""
    if not (path / "artifactory" / "serve.py").is_file():
        if path.exists():
            raise RuntimeError(f"{path} exists but holds no artifactory tree; remove it or pass --base")
        print(f"adding a worktree of {commit} at {path}", flush=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
            check=True,
            capture_output=True,
            text=True,
        )

    def resolve(tree: Path, rev: str) -> str:
        done = subprocess.run(["git", "-C", str(tree), "rev-parse", rev], capture_output=True, text=True)
        return done.stdout.strip()

    if resolve(path, "HEAD") != resolve(ROOT, f"{commit}^{{commit}}"):
        raise RuntimeError(f"{path} is not at {commit}: pass --base with a worktree of it")
    return path.resolve()


def base_importable(tree: Path, directory: Path) -> Path:
    """A PYTHONPATH entry for an older tree, like `proxy_verify.importable`, that also holds the
    plugins the installed entry points name: those of `tree` as they are, and an empty module for
    each one `tree` lacks (a format added since), so the base never imports today's code."""
    shim = directory / "path"
    shim.mkdir(parents=True)
    (shim / "artifactory").symlink_to(tree / "artifactory")
    (shim / "artifactory_migrations").symlink_to(tree / "migrations")
    for package, folder in (("artifactory_formats", "formats"), ("artifactory_plugins", "plugins")):
        (shim / package).mkdir()
        for child in (tree / folder).iterdir():
            (shim / package / child.name).symlink_to(child)
    for entry in importlib.metadata.entry_points(group="artifactory"):
        parts = entry.value.partition(":")[0].split(".")
        if len(parts) < 3 or (shim / parts[0] / parts[1]).exists():
            continue
        module = shim.joinpath(*parts[:-1])
        module.mkdir(parents=True, exist_ok=True)
        for level in range(2, len(parts)):
            shim.joinpath(*parts[:level], "__init__.py").touch()
        (module / f"{parts[-1]}.py").write_text('"""Not in the base tree: an empty plugin."""\n')
    return shim


def add_base_arguments(parser: argparse.ArgumentParser, rounds: int = 3) -> None:
    parser.add_argument(
        "--base",
        type=Path,
        help=f"measure the tree of --base-commit (a git worktree at this path, e.g. {DEFAULT_BASE}; "
        "added when missing) beside this one, interleaved, instead of the peers",
    )
    parser.add_argument("--base-commit", default=BASE_COMMIT, help="the commit of --base")
    parser.add_argument("--rounds", type=int, default=rounds, help="rounds of base and now (medians)")


def tree_server(label: str, tree: Path, work: Path, workers: int = 2) -> LiveServer:
    """A server (not started) running `tree`'s engine, formats and migrations on its own SQLite data
    dir under `work/label`; `tree` is ROOT for this checkout, else an older worktree."""
    folder = work / label
    folder.mkdir()
    path = importable(tree, folder) if tree == ROOT else base_importable(tree, folder)
    server = LiveServer(
        folder / "data",
        workers=workers,
        # The default cache lifetime (LiveServer shortens it for tests).
        env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0", "PYTHONPATH": str(path)},
    )
    server.log_path = folder / "server.log"
    return server


def sides(base: Path, commit: str, work: Path) -> dict[str, LiveServer]:
    """{"base": the older tree's server, "now": this checkout's}, neither started."""
    os.chdir(work)  # `python -m` puts the working directory first on sys.path: not a checkout
    return {"base": tree_server("base", worktree(base, commit), work), "now": tree_server("now", ROOT, work)}


def order(round_: int, labels: tuple[str, ...] = LABELS) -> tuple[str, ...]:
    """The labels in the order round `round_` measures them: alternating which goes first."""
    return labels if round_ % 2 == 0 else labels[::-1]


# -- measuring -----------------------------------------------------------------------------------------


def server_pid(server: LiveServer) -> int:
    assert server.process is not None
    return server.process.pid


def wrk_rate(
    wrk_bin: str, script: Path, url: str, load: tuple[str, str], seconds: int, pid: int
) -> tuple[float, float, dict[str, float]]:
    """(req/s, server CPU us per request, wrk's report) of one wrk run after an uncounted warm-up."""
    wrk(wrk_bin, script, url, load, max(1, min(3, seconds // 5)), pid)
    report = wrk(wrk_bin, script, url, load, seconds, pid)
    rps = report["requests"] / (report["duration_us"] / 1e6)
    return rps, (1e6 * report["server_cores"] / rps if rps else 0.0), report


def timed(pid: int, run: Callable[..., object], *args: object) -> tuple[float, float]:
    """(wall seconds, server CPU milliseconds) of `run(*args)` (a client's whole run)."""
    cpu = _tree_cpu(pid)
    started = time.monotonic()
    run(*args)
    elapsed = time.monotonic() - started
    return elapsed, 1000 * (_tree_cpu(pid) - cpu)


@dataclass
class Figure:
    name: str
    unit: str
    lower_is_better: bool = False  # times and latencies
    cpu_unit: str = "us/req"
    noted: str = ""  # what a closing note reported
    values: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    others: list[float] = field(default_factory=list)

    def median(self, label: str) -> float | None:
        found = self.values.get(label)
        return statistics.median(found) if found else None

    def median_cpu(self, label: str) -> float | None:
        found = self.cpu.get(label)
        return statistics.median(found) if found else None

    def ratio(self) -> float | None:
        """now against base, turned round for times: above 1 is better, below THRESHOLD a regression."""
        base, now = self.median("base"), self.median("now")
        if not base or not now:
            return None
        return base / now if self.lower_is_better else now / base

    def cpu_ratio(self) -> float | None:
        """base's CPU per operation over now's: above 1 is cheaper now."""
        base, now = self.median_cpu("base"), self.median_cpu("now")
        return base / now if base and now else None


class Comparison:
    """The samples of every figure for base and now; `table()` gives medians, ratios and verdicts."""

    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}

    def figure(self, name: str, unit: str, **kwargs: object) -> Figure:
        if name not in self.figures:
            self.figures[name] = Figure(name, unit, **kwargs)  # type: ignore[arg-type]
        return self.figures[name]

    def add(
        self,
        name: str,
        label: str,
        value: float,
        cpu: float | None = None,
        others: float | None = None,
    ) -> None:
        figure = self.figures[name]
        figure.values.setdefault(label, []).append(value)
        if cpu is not None:
            figure.cpu.setdefault(label, []).append(cpu)
        if others is not None:
            figure.others.append(others)
        shown = f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
        cost = f"  server CPU {cpu:,.0f} {figure.cpu_unit}" if cpu is not None else ""
        load = f"  others {others:.0f}% of the CPUs" if others is not None else ""
        print(f"  {label:5} {name}: {shown} {figure.unit}{cost}{load}", flush=True)

    def table(self, threshold: float = THRESHOLD) -> str:
        def num(value: float | None) -> str:
            if value is None:
                return "-"
            return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"

        def verdict(ratio: float | None) -> str:
            if ratio is None:
                return "-"
            return "ok" if ratio >= threshold else "**REGRESSED**"

        lines = [
            "| figure | closing note | base | now | now vs base | verdict | server CPU base / now "
            "| CPU ratio | CPU verdict |",
            "|---|---:|---:|---:|---:|---|---:|---:|---|",
        ]
        for f in self.figures.values():
            ratio, cpu_ratio = f.ratio(), f.cpu_ratio()
            cpu = f"{num(f.median_cpu('base'))} / {num(f.median_cpu('now'))} {f.cpu_unit}" if f.cpu else "-"
            lines.append(
                f"| {f.name} ({f.unit}) | {f.noted or '-'} | {num(f.median('base'))} | "
                f"{num(f.median('now'))} | {'-' if ratio is None else f'{ratio:.3f}'} | {verdict(ratio)} | "
                f"{cpu} | {'-' if cpu_ratio is None else f'{cpu_ratio:.3f}'} | {verdict(cpu_ratio)} |"
            )
        loads = [o for f in self.figures.values() for o in f.others]
        lines.append("")
        lines.append(
            f"Medians of every round. 'now vs base' is now/base for rates and base/now for times and "
            f"latencies; below {threshold} is a drop of more than {100 - 100 * threshold:.0f}%. "
            "Server CPU is per request (wrk figures) or per client run; the CPU ratio is base/now."
        )
        if loads:
            lines.append(
                f"Other processes used {statistics.median(loads):.0f}% of all CPUs (median; max "
                f"{max(loads):.0f}%) during the wrk figures: above 10% the req/s are unreliable, the CPU "
                "per request much less so."
            )
        return "\n".join(lines)
