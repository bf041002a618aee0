"""Who the caller is: npm ping, whoami, login/adduser, logout and npm token.

`npm login` in npm 11 first tries web login (POST /-/v1/login); that answers 404, so npm falls back to
the CouchDB user document PUT, which answers one of our API tokens. Passwords are checked through the
server's authentication chain (every `artifactory_authenticate` plugin), exactly as a Basic header is.
Creating users that way (`npm adduser`) is off unless the repository sets `allow_user_registration`;
such users get no roles, so they can do nothing an anonymous caller cannot until an admin grants some.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any

from artifactory_formats.npm.httputil import ok, read_json
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import (
    BadRequest,
    NotFound,
    Principal,
    Unauthorized,
    app_state,
    current_principal,
    current_repository,
    engine,
)

BODY_LIMIT = 64 * 1024
_TOKEN = re.compile(r"^art_([A-Za-z0-9]+)_")  # our API tokens: art_<id>_<secret>


async def ping(request: Request) -> Response:
    return JSONResponse({})


async def web_login(request: Request) -> Response:
    raise NotFound("web login is not supported by this registry: use the username and password prompt")


async def authenticated(request: Request) -> Principal:
    principal = await current_principal(request)
    if principal.anonymous:
        raise Unauthorized("you are not logged in to this registry")
    return principal


async def whoami(request: Request) -> Response:
    return JSONResponse({"username": (await authenticated(request)).username})


async def check_password(request: Request, username: str, password: str) -> Principal:
    """The principal a username and password prove, through the whole authentication chain."""
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    probe = HTTPConnection(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(b"authorization", f"Basic {basic}".encode())],
            "artifactory.state": app_state(request),
        }
    )
    principal = await app_state(request).principal(probe)
    if principal.anonymous:
        raise Unauthorized("bad username or password")
    return principal


async def login(request: Request) -> Response:
    """PUT /-/user/org.couchdb.user:{name}: answer a token for a valid username and password."""
    body = await read_json(request, BODY_LIMIT)
    username = str(request.path_params["user"])
    if not isinstance(body, dict):
        raise BadRequest("the user document must be a JSON object")
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
        raise BadRequest("the user document needs name and password")
    if name != username:
        raise BadRequest(f"the document is for {name!r}, but it was sent to {username!r}")
    security = app_state(request).security
    eng = engine(request)
    try:
        principal = await check_password(request, name, password)
    except Unauthorized:
        if not current_repository(request).config.get("allow_user_registration"):
            raise Unauthorized("bad username or password") from None
        try:
            await eng.db_call(security.create_user, name, password, [])
        except KeyError:  # the user exists: the password was wrong
            raise Unauthorized("bad username or password") from None
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        principal = await check_password(request, name, password)
    created = await eng.db_call(security.create_token, principal.username, "npm login")
    return JSONResponse(
        {"ok": True, "id": f"org.couchdb.user:{principal.username}", "token": created["token"]},
        status_code=201,
    )


async def user_document(request: Request) -> Response:
    principal = await authenticated(request)
    username = str(request.path_params["user"])
    if username != principal.username:
        raise NotFound(f"user {username} not found")
    return JSONResponse(
        {"_id": f"org.couchdb.user:{username}", "name": username, "type": "user", "roles": []}
    )


def token_id(value: str) -> str:
    match = _TOKEN.match(value)
    return match.group(1) if match else value


async def logout(request: Request) -> Response:
    """DELETE /-/user/token/{token} (npm logout): revoke the token the caller logged in with."""
    principal = await authenticated(request)
    security = app_state(request).security
    await engine(request).db_call(
        security.revoke_token, principal.username, token_id(str(request.path_params["token"]))
    )
    return ok()


def _token_view(token: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": token["id"],
        "token": f"art_{token['id']}",
        "name": token.get("name") or "",
        "created": token.get("created_at"),
        "updated": token.get("created_at"),
        "expires": token.get("expires_at"),
        "readonly": False,
        "cidr_whitelist": None,
    }


async def list_tokens(request: Request) -> Response:
    principal = await authenticated(request)
    security = app_state(request).security
    tokens = await engine(request).db_call(security.list_tokens, principal.username)
    objects = [_token_view(token) for token in tokens]
    return JSONResponse({"objects": objects, "total": len(objects), "urls": {}})


async def create_token(request: Request) -> Response:
    """POST /-/npm/v1/tokens (npm token create): the account password confirms the request."""
    principal = await authenticated(request)
    body = await read_json(request, BODY_LIMIT)
    if not isinstance(body, dict) or not isinstance(body.get("password"), str):
        raise BadRequest("creating a token needs your password")
    if body.get("readonly"):
        raise BadRequest("read-only tokens are not supported: a token has its owner's privileges")
    if body.get("cidr_whitelist"):
        raise BadRequest("CIDR-restricted tokens are not supported by this registry")
    confirmed = await check_password(request, principal.username, body["password"])
    if confirmed.username != principal.username:
        raise Unauthorized("the password is not the one of the logged-in user")
    expires = body.get("expires")
    seconds = int(expires) * 86400 if isinstance(expires, int) and expires > 0 else None
    name = body.get("name") if isinstance(body.get("name"), str) else "npm token"
    security = app_state(request).security
    created = await engine(request).db_call(security.create_token, principal.username, name, seconds)
    now = datetime.now(UTC).isoformat()
    return JSONResponse(
        {
            "token": created["token"],
            "key": created["id"],
            "name": name,
            "created": now,
            "updated": now,
            "expires": created.get("expires_at"),
            "readonly": False,
            "cidr_whitelist": [],
        },
        status_code=201,
    )


async def revoke_token(request: Request) -> Response:
    principal = await authenticated(request)
    security = app_state(request).security
    key = token_id(str(request.path_params["key"]))
    if not await engine(request).db_call(security.revoke_token, principal.username, key):
        raise NotFound(f"token {key} not found")
    return Response(status_code=204)
