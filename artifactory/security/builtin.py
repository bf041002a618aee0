"""The built-in authentication plugin: users with passwords, and API tokens."""

from __future__ import annotations

from artifactory.plugin import hookimpl
from artifactory.security.principal import Credentials, Principal
from artifactory.state import AppState


@hookimpl(trylast=True)
def artifactory_authenticate(credentials: Credentials, state: AppState) -> Principal | None:
    if not credentials.present:
        return None
    return state.security.verify(credentials)
