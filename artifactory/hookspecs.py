"""Every `artifactory_*` hook. These docstrings are the plugin author's reference (docs/plugins.md).

Hooks are broadcasts: every registered plugin that implements one is called. Protocol work for a
repository is not a hook: a repository has exactly one format, whose Format object (registered through
`artifactory_register_formats`) the engine calls directly.

A plugin is a module (or object) with functions decorated by `artifactory.plugin.hookimpl`, found
through the `artifactory` entry-point group or named in the `plugins` setting.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from artifactory.events import AssetEvent, RepositoryEvent
    from artifactory.formats import FormatRegistry
    from artifactory.security.principal import Credentials, Principal
    from artifactory.state import AppState

hookspec = pluggy.HookspecMarker("artifactory")


@hookspec
def artifactory_register_formats(registry: FormatRegistry) -> None:
    """Add Format objects with `registry.add(MyFormat())`. Called once at start-up.

    A format id must be unique; registering a second format with the same id is an error.
    """


@hookspec
def artifactory_register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add subcommands to the `artifactory` command line.

    Add a parser with `subparsers.add_parser(...)` and give it `set_defaults(run=fn)`; the command line
    then calls `fn(args, state)` with the parsed arguments and an AppState on the configured database
    and blob store (migrated, not serving), and exits with the int it returns. Add `--data-dir` and
    `--config` options to your parser, as the built-in commands do.
    """


@hookspec
def artifactory_gc(state: AppState, grace_seconds: int, dry_run: bool) -> dict[str, Any] | None:
    """`artifactory gc` is running: delete (or, with `dry_run`, only count) what your format no longer
    needs, such as untagged manifests, so that the blobs only they referenced are collected in the
    same run. Leave alone anything changed within `grace_seconds`. Return a small report naming your
    format (the command prints the list under "formats"), or None.
    """


@hookspec
def artifactory_startup(state: AppState) -> None:
    """The server process is starting: database migrated, formats registered, nothing served yet.

    `state` gives the settings, the database and the blob store. Raise to refuse to start.
    """


@hookspec
def artifactory_shutdown(state: AppState) -> None:
    """The server process is stopping; release what `artifactory_startup` acquired."""


@hookspec(firstresult=True)
def artifactory_authenticate(credentials: Credentials, state: AppState) -> Principal | None:
    """Turn request credentials into a Principal, or return None to let the next plugin try.

    The chain stops at the first Principal. Raise `artifactory.plugin.Unauthorized` to reject the
    credentials outright (wrong password): the client gets 401. When every plugin returns None the
    request is anonymous. The built-in implementation (users, passwords, API tokens) runs last.
    """


@hookspec
def artifactory_check_upload(
    repository: str, format: str, path: str, size: int, principal: Principal
) -> None:
    """An upload has been received and verified but not yet stored; raise `UploadRefused` to refuse it.

    Called before anything becomes visible, so a refusal leaves nothing behind. `size` is in bytes.
    """


@hookspec
def artifactory_asset_stored(event: AssetEvent) -> None:
    """An asset was stored or replaced; the transaction has committed. Must not block for long."""


@hookspec
def artifactory_asset_deleted(event: AssetEvent) -> None:
    """An asset was deleted; the transaction has committed."""


@hookspec
def artifactory_repository_created(event: RepositoryEvent) -> None:
    """A repository was created; the transaction has committed."""


@hookspec
def artifactory_repository_deleted(event: RepositoryEvent) -> None:
    """A repository was deleted; the transaction has committed."""
