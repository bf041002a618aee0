"""Registers the oci format, its registry tokens in the authentication chain, and `artifactory oci-gc`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from artifactory_formats.oci import auth
from artifactory_formats.oci.format import OciFormat

from artifactory.plugin import AppState, Credentials, FormatRegistry, Principal, Unauthorized, hookimpl


@hookimpl
def artifactory_register_formats(registry: FormatRegistry) -> None:
    registry.add(OciFormat())


@hookimpl
def artifactory_authenticate(credentials: Credentials, state: AppState) -> Principal | None:
    """Our registry tokens (from /v2/token); anything else is left to the next plugin.

    The principal is confined to /v2/, to the repositories and actions the token names, and to
    the token's lifetime (see `auth.verify`).
    """
    if credentials.scheme != "bearer" or not auth.is_ours(credentials.secret):
        return None
    try:
        principal = auth.verify(state.token_secret, credentials.secret)
    except auth.InvalidToken as exc:
        raise Unauthorized(str(exc)) from None
    return _through_groups(state, principal)


def _through_groups(state: AppState, principal: auth.TokenPrincipal) -> auth.TokenPrincipal:
    """A pull granted on a group reads through its members: grant reading those members too.

    Only on /v2/ and only for the images the token names (the image-level check stays), so this
    opens nothing the group would not serve anyway; the members the user's roles do not allow
    stay closed, because the roles are checked as well.
    """
    granted = {g.repositories: set(g.actions) for g in principal.scope or ()}
    pending = [name for name, actions in granted.items() if "read" in actions]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        repo = state.repositories.find(name)
        if repo is None or repo.format != "oci" or repo.type != "group":
            continue
        for member in repo.members:
            granted.setdefault(member, set()).add("read")
            pending.append(member)
    scope = tuple(auth.Grant(name, frozenset(actions)) for name, actions in sorted(granted.items()))
    if scope == principal.scope:
        return principal
    return dataclasses.replace(principal, scope=scope)


@hookimpl
def artifactory_gc(state: AppState, grace_seconds: int, dry_run: bool) -> dict[str, Any]:
    """Untagged manifests and blobs no manifest references go before `artifactory gc` collects blobs."""
    from artifactory_formats.oci import gc

    report = asyncio.run(gc.collect(state.repositories, grace_seconds, dry_run))
    return {"format": "oci", **report.as_dict()}


@hookimpl
def artifactory_register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from artifactory_formats.oci import gc

    gc.register(subparsers)
