"""GET /v2/ (the version check that starts the docker token flow) and /v2/token (the token service)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from artifactory_formats.oci.access import principal_of, realm, service, unauthorized
from artifactory_formats.oci.auth import ACTIONS, TOKEN_SECONDS, Access, issue, parse_scopes
from artifactory_formats.oci.errors import API_VERSION, OCIError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import Credentials, Principal, app_state


async def base(request: Request) -> Response:
    """200 for a caller we know (a user, or any valid token); else 401 with the Bearer challenge."""
    principal = await principal_of(request)
    if principal.anonymous and "authorization" not in request.headers:
        raise unauthorized(request, "authentication required")
    return JSONResponse({}, headers=API_VERSION)


def _granted(request: Request, principal: Principal, requested: list[Access]) -> list[Access]:
    security = app_state(request).security
    granted: list[Access] = []
    for access in requested:
        if access.type == "registry" and access.name == "catalog":
            granted.append(Access("registry", "catalog", frozenset({"*"})))
            continue
        if access.type != "repository":
            continue
        repository = access.name.partition("/")[0]
        wanted = set(ACTIONS) if "*" in access.actions else set(access.actions) & set(ACTIONS)
        allowed = frozenset(a for a in wanted if security.allowed(principal, repository, ACTIONS[a]))
        granted.append(Access("repository", access.name, allowed))
    return granted


def _token_response(request: Request, principal: Principal, scopes: list[str]) -> Response:
    state = app_state(request)
    if principal.anonymous and not state.security.anonymous_read:
        raise OCIError(
            "UNAUTHORIZED",
            "anonymous access is disabled: log in",
            headers={"WWW-Authenticate": f'Basic realm="{realm(request)}"'},
        )
    access = _granted(request, principal, parse_scopes(scopes))
    now = time.time()
    token = issue(state.token_secret, principal, access, service(request), TOKEN_SECONDS, now)
    issued_at = datetime.fromtimestamp(int(now), UTC).isoformat().replace("+00:00", "Z")
    body = {"token": token, "access_token": token, "expires_in": TOKEN_SECONDS, "issued_at": issued_at}
    return JSONResponse(body, headers={**API_VERSION, "Cache-Control": "no-store"})


async def _login(request: Request) -> Principal:
    try:
        return await principal_of(request)
    except OCIError as error:
        if error.status == 401:
            raise OCIError(
                "UNAUTHORIZED",
                error.message,
                headers={"WWW-Authenticate": f'Basic realm="{realm(request)}"'},
            ) from None
        raise


async def token(request: Request) -> Response:
    """The docker token flow: Basic credentials (or none, for anonymous pulls) in, a scoped token out."""
    if request.method == "POST":
        return await _oauth_token(request)
    principal = await _login(request)
    return _token_response(request, principal, request.query_params.getlist("scope"))


async def _oauth_token(request: Request) -> Response:
    """The OAuth2 form some clients (containerd) POST: grant_type=password with username/password."""
    form = await request.form()
    grant = str(form.get("grant_type", ""))
    if grant != "password":
        raise OCIError("UNSUPPORTED", f"grant_type {grant!r} is not supported", status=400)
    credentials = Credentials("basic", str(form.get("username", "")), str(form.get("password", "")))
    try:
        principal = await app_state(request).engine.db_call(app_state(request).security.verify, credentials)
    except Exception as exc:  # the core's InvalidCredentials is not in the facade
        raise OCIError("UNAUTHORIZED", str(exc) or "invalid credentials") from None
    scopes = str(form.get("scope", "")).split()
    return _token_response(request, principal, scopes)
