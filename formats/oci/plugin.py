"""Registers the oci format, its registry tokens in the authentication chain, and `artifactory oci-gc`."""

from __future__ import annotations

import argparse

from artifactory_formats.oci import auth
from artifactory_formats.oci.format import OciFormat

from artifactory.plugin import AppState, Credentials, FormatRegistry, Principal, Unauthorized, hookimpl


@hookimpl
def artifactory_register_formats(registry: FormatRegistry) -> None:
    registry.add(OciFormat())


@hookimpl
def artifactory_authenticate(credentials: Credentials, state: AppState) -> Principal | None:
    """Our registry tokens (from /v2/token); anything else is left to the next plugin."""
    if credentials.scheme != "bearer" or not auth.is_ours(credentials.secret):
        return None
    try:
        return auth.verify(state.token_secret, credentials.secret)
    except auth.InvalidToken as exc:
        raise Unauthorized(str(exc)) from None


@hookimpl
def artifactory_register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from artifactory_formats.oci import gc

    gc.register(subparsers)
