"""GET /v2/ (the version check that starts the docker token flow) and /v2/token (the token service)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

from artifactory_formats.oci.access import principal_of, realm, service, unauthorized
from artifactory_formats.oci.auth import (
    ACTIONS,
    TOKEN_SECONDS,
    Access,
    TokenPrincipal,
    issue,
    parse_scopes,
)
from artifactory_formats.oci.errors import API_VERSION, OCIError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import Credentials, InvalidCredentials, Principal, read_body
from artifactory.plugin import access as access_service

MAX_FORM_BYTES = 64 * 1024


async def base(request: Request) -> Response:
    """200 for a caller we know (a user, or any valid token); else 401 with the Bearer challenge."""
    principal = await principal_of(request)
    if principal.anonymous and "authorization" not in request.headers:
        raise unauthorized(request, "authentication required")
    return JSONResponse({}, headers=API_VERSION)


def _granted(request: Request, principal: Principal, requested: list[Access]) -> list[Access]:
    may = access_service(request)
    granted: list[Access] = []
    for access in requested:
        if access.type == "registry" and access.name == "catalog":
            granted.append(Access("registry", "catalog", frozenset({"*"})))
            continue
        if access.type != "repository":
            continue
        repository = access.name.partition("/")[0]
        wanted = set(ACTIONS) if "*" in access.actions else set(access.actions) & set(ACTIONS)
        allowed = frozenset(
            a
            for a in wanted
            if may.allowed(principal, repository, ACTIONS[a])
            # a registry token presented here mints nothing it does not grant itself
            and (not isinstance(principal, TokenPrincipal) or principal.grants(access.name, ACTIONS[a]))
        )
        granted.append(Access("repository", access.name, allowed))
    return granted


def _token_response(request: Request, principal: Principal, scopes: list[str]) -> Response:
    if principal.anonymous and not access_service(request).anonymous_read:
        raise OCIError(
            "UNAUTHORIZED",
            "anonymous access is disabled: log in",
            headers={"WWW-Authenticate": f'Basic realm="{realm(request)}"'},
        )
    access = _granted(request, principal, parse_scopes(scopes))
    now = time.time()
    seconds = TOKEN_SECONDS
    if principal.expires_at is not None:  # never outlive the credential it was minted with
        seconds = min(seconds, math.floor(principal.expires_at - now))
        if seconds <= 0:
            raise OCIError("UNAUTHORIZED", "the credential has expired")
    token = issue(access_service(request).token_secret, principal, access, service(request), seconds, now)
    issued_at = datetime.fromtimestamp(int(now), UTC).isoformat().replace("+00:00", "Z")
    body = {"token": token, "access_token": token, "expires_in": seconds, "issued_at": issued_at}
    return JSONResponse(body, headers={**API_VERSION, "Cache-Control": "no-store"})


async def _login(request: Request) -> Principal:
    try:
        return await principal_of(request)
    except OCIError as error:
        if error.code == "UNAUTHORIZED":
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
    form = await _form(request)

    def field(key: str) -> str:
        return form.get(key, [""])[0]

    grant = field("grant_type")
    if grant != "password":
        raise OCIError("UNSUPPORTED", f"grant_type {grant[:100]!r} is not supported", status=400)
    credentials = Credentials("basic", field("username"), field("password"))
    try:
        principal = await access_service(request).authenticate(credentials)
    except InvalidCredentials as exc:
        raise OCIError("UNAUTHORIZED", str(exc) or "invalid credentials") from None
    return _token_response(request, principal, form.get("scope", []))


async def _form(request: Request) -> dict[str, list[str]]:
    """The urlencoded form of an OAuth2 token request, read up to MAX_FORM_BYTES (413 beyond)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise OCIError(
            "UNSUPPORTED", "the token request must be application/x-www-form-urlencoded", status=400
        )
    body = await read_body(request, MAX_FORM_BYTES)  # 413 SIZE_INVALID beyond
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise OCIError("UNSUPPORTED", "the token request is not a valid form", status=400) from None
    return fields
