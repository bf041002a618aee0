"""Who the caller is: npm ping, whoami, login/adduser, logout and npm token.

`npm login` in npm 11 first tries web login (POST /-/v1/login); that answers 404, so npm falls back to
the CouchDB user document PUT, which answers one of our API tokens. Login passwords are checked through
the server's authentication chain (every `artifactory_authenticate` plugin), exactly as a Basic header
is; `npm token create` asks for the account's real password (never a token). Either way the new token
is made for the credential that proved itself, so it can never outlive or exceed that credential.
Creating users that way (`npm adduser`) is off unless the repository sets `allow_user_registration`;
such users get no roles, so they can do nothing an anonymous caller cannot until an admin grants some.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any

from artifactory_formats.npm.httputil import ok, read_json
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import (
    BadRequest,
    Forbidden,
    NotFound,
    Principal,
    Unauthorized,
    access,
    current_principal,
    current_repository,
)

BODY_LIMIT = 1024 * 1024  # login, adduser and token bodies: a name, a password and a few flags
MAX_TOKEN_DAYS = 3650
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


async def authenticate_password(request: Request, username: str, password: str) -> Principal:
    """The principal a username and password prove, through the whole authentication chain."""
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    probe = Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(b"authorization", f"Basic {basic}".encode())],
        }
    )
    principal = await access(request).principal(probe)
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
    try:
        principal = await authenticate_password(request, name, password)
    except Unauthorized:
        if not current_repository(request).config.get("allow_user_registration"):
            raise Unauthorized("bad username or password") from None
        try:
            await access(request).create_user(name, password, [])
        except KeyError:  # the user exists: the password was wrong
            raise Unauthorized("bad username or password") from None
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        principal = await authenticate_password(request, name, password)
    created = await new_token(request, principal, "npm login")
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
    await access(request).revoke_token(principal.username, token_id(str(request.path_params["token"])))
    return ok()


def _token_view(token: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": token["id"],
        "token": f"art_{token['id']}",
        "name": token.get("name") or "",
        "created": token.get("created_at"),
        "updated": token.get("created_at"),
        "expires": token.get("expires_at"),
        "readonly": (token.get("scope") or {}).get("actions") == ["read"],
        "cidr_whitelist": None,
    }


async def list_tokens(request: Request) -> Response:
    principal = await authenticated(request)
    tokens = await access(request).list_tokens(principal.username)
    objects = [_token_view(token) for token in tokens]
    return JSONResponse({"objects": objects, "total": len(objects), "urls": {}})


async def new_token(
    request: Request,
    principal: Principal,
    name: str,
    seconds: int | None = None,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A token for `principal`'s credential: never longer-lived or wider than that credential."""
    try:
        return await access(request).create_token(principal, name, seconds, scope)
    except ValueError as exc:
        raise BadRequest(f"cannot create this token: {exc}") from None
    except KeyError:  # a user some authentication plugin knows, without an account of ours
        raise Forbidden(f"user {principal.username} has no account here to hold tokens") from None


def read_only_scope(principal: Principal) -> dict[str, Any]:
    """The scope of a read-only token made by `principal`'s credential."""
    if principal.scope is None:
        return {"repositories": "*", "actions": ["read"]}
    readable = [grant for grant in principal.scope if "read" in grant.actions]
    if len(readable) != 1:
        raise BadRequest("this credential cannot create a read-only token: create it with your password")
    return {"repositories": readable[0].repositories, "actions": ["read"]}


async def create_token(request: Request) -> Response:
    """POST /-/npm/v1/tokens (npm token create): the account's real password confirms the request."""
    principal = await authenticated(request)
    body = await read_json(request, BODY_LIMIT)
    if not isinstance(body, dict) or not isinstance(body.get("password"), str) or not body["password"]:
        raise BadRequest("creating a token needs your password")
    if body.get("cidr_whitelist"):
        raise BadRequest("CIDR-restricted tokens are not supported by this registry")
    if not await access(request).check_password(principal.username, body["password"]):
        raise Unauthorized("the password is not the one of the logged-in user")
    expires = body.get("expires")
    if expires is not None and (
        isinstance(expires, bool) or not isinstance(expires, int) or not 0 < expires <= MAX_TOKEN_DAYS
    ):
        raise BadRequest(f"expires must be a number of days from 1 to {MAX_TOKEN_DAYS}")
    name = str(body["name"]) if isinstance(body.get("name"), str) else "npm token"
    readonly = body.get("readonly") is True
    scope = read_only_scope(principal) if readonly else None
    created = await new_token(request, principal, name, expires * 86400 if expires else None, scope)
    now = datetime.now(UTC).isoformat()
    return JSONResponse(
        {
            "token": created["token"],
            "key": created["id"],
            "name": name,
            "created": now,
            "updated": now,
            "expires": created.get("expires_at"),
            "readonly": readonly,
            "cidr_whitelist": [],
        },
        status_code=201,
    )


async def revoke_token(request: Request) -> Response:
    principal = await authenticated(request)
    key = token_id(str(request.path_params["key"]))
    if not await access(request).revoke_token(principal.username, key):
        raise NotFound(f"token {key} not found")
    return Response(status_code=204)
