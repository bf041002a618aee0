"""`artifactory pypi ...`: yank, unyank and delete in a hosted repository, offline (on the database
and blob store a server uses; a running server sees the change at its next revision check)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio
from artifactory_formats.pypi import operations

from artifactory.plugin import HTTPProblem, Principal

OPERATOR = Principal(username="cli", roles=frozenset({"admin"}))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    top = subparsers.add_parser("pypi", help="manage PyPI repositories (yank, unyank, delete)")
    sub = top.add_subparsers(dest="pypi_command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help)
        parser.add_argument("--data-dir", type=Path, help="data directory (default ./artifactory-data)")
        parser.add_argument("--config", help="TOML settings file")
        parser.add_argument("repository")
        parser.add_argument("project")
        parser.add_argument("version", nargs="?")
        parser.add_argument("--file", dest="filename", help="one distribution file instead of a release")
        return parser

    yank = command("yank", "mark a release (or --file) yanked (PEP 592)")
    yank.add_argument("--reason", default="")
    yank.set_defaults(run=run_yank, undo=False)
    command("unyank", "clear a release's (or --file's) yank mark").set_defaults(
        run=run_yank, undo=True, reason=""
    )
    command("delete", "delete a project, a release or --file").set_defaults(run=run_delete)


def _run(fn: Any) -> int:
    try:
        result = anyio.run(fn)
    except HTTPProblem as problem:
        print(f"error: {problem.message}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


# `state` is what the core's command line hands a command; only its facade (`repositories`,
# `access`) is used.
def run_yank(args: argparse.Namespace, state: Any) -> int:
    async def go() -> Any:
        return await operations.yank(
            state.repositories,
            state.access,
            args.repository,
            args.project,
            OPERATOR,
            version=args.version,
            filename=args.filename,
            reason=args.reason,
            undo=args.undo,
        )

    return _run(go)


def run_delete(args: argparse.Namespace, state: Any) -> int:
    async def go() -> Any:
        deleted = await operations.delete(
            state.repositories,
            state.access,
            args.repository,
            args.project,
            OPERATOR,
            version=args.version,
            filename=args.filename,
        )
        return {"deleted": deleted}

    return _run(go)
