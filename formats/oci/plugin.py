"""Registers the oci format, its registry tokens in the authentication chain, and `artifactory oci-gc`."""

from __future__ import annotations

import argparse
import asyncio
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
        return auth.verify(state.token_secret, credentials.secret)
    except auth.InvalidToken as exc:
        raise Unauthorized(str(exc)) from None


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
