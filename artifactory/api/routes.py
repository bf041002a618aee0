"""The admin API of CONTRACT.md: /api/v1/*. Thin views: parse, call the core, answer JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from artifactory import __version__
from artifactory.api import cleanup as cleanup_api
from artifactory.api.openapi import OPENAPI
from artifactory.api.search import search
from artifactory.db.models import MAX_INTEGER
from artifactory.events import RepositoryEvent
from artifactory.http.bodies import ADMIN_BODY_BYTES, read_json
from artifactory.http.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from artifactory.repository.config import ConfigError, public_view
from artifactory.repository.model import PROXY
from artifactory.repository.registry import RepositoryExists, RepositoryInUse
from artifactory.security.principal import Principal
from artifactory.state import AppState
from artifactory.text import ascii_digits


def _state(request: Request) -> AppState:
    return request.scope["artifactory.state"]  # type: ignore[no-any-return]


async def _json(request: Request) -> Any:
    return await read_json(request, ADMIN_BODY_BYTES)


async def _object(request: Request) -> dict[str, Any]:
    body = await _json(request)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


async def _user(request: Request) -> Principal:
    principal = await _state(request).principal(request)
    if principal.anonymous:
        raise Unauthorized("this call needs a user")
    return principal


async def _admin(request: Request) -> Principal:
    principal = await _user(request)
    if not principal.is_admin:
        raise Forbidden("this call needs the admin role")
    return principal


async def _run(fn: Any, *args: Any) -> Any:
    return await to_thread.run_sync(fn, *args)


# -- status ------------------------------------------------------------------------------------
async def status(request: Request) -> Response:
    state = _state(request)
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "formats": state.formats.ids(),
            "database": state.db.engine.dialect.name,
            "blobstore": type(state.blobs.driver).__name__,
        }
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


async def whoami(request: Request) -> Response:
    principal = await _state(request).principal(request)
    return JSONResponse(
        {"username": principal.username, "roles": sorted(principal.roles), "anonymous": principal.anonymous}
    )


# -- repositories -------------------------------------------------------------------------------
def _view(state: AppState, row: dict[str, Any], admin: bool = True) -> dict[str, Any]:
    view = public_view(row, admin)
    if row["type"] == PROXY:
        repo = state.engine.repos.get(row["name"])
        if repo is not None:
            view["status"] = state.engine.proxy.status(repo)
    return view


async def list_repositories(request: Request) -> Response:
    state = _state(request)
    principal = await state.principal(request)
    rows = await _run(lambda: [r for r in state.engine.repos.all()])
    visible = [
        {"name": r.name, "format": r.format, "type": r.type, "url": f"{_base(request)}/repository/{r.name}/"}
        for r in rows
        if state.security.allowed(principal, r.name, "read")
    ]
    return JSONResponse(visible)


def _base(request: Request) -> str:
    from artifactory.http.urls import base_url

    return base_url(request)


async def create_repository(request: Request) -> Response:
    principal = await _admin(request)
    state = _state(request)
    body = await _object(request)
    try:
        row = await _run(state.engine.repos.create, body)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    except RepositoryExists:
        raise Conflict(f"repository {body.get('name')!r} already exists") from None
    await state.record(principal.username, "repository.created", row["name"], details=_audit_view(row))
    state.engine.fire(
        "artifactory_repository_created",
        event=RepositoryEvent(row["name"], row["format"], row["type"], principal.username),
    )
    return JSONResponse(await _run(_view, state, row), status_code=201)


async def get_repository(request: Request) -> Response:
    state = _state(request)
    name = request.path_params["name"]
    principal = await state.principal(request)
    row = await _run(state.engine.repos.row, name)
    if row is None or not state.security.allowed(principal, name, "read"):
        raise NotFound(f"repository {name!r} not found")
    return JSONResponse(await _run(_view, state, row, principal.is_admin))


async def put_repository(request: Request) -> Response:
    principal = await _admin(request)
    state = _state(request)
    name = request.path_params["name"]
    body = await _object(request)
    body.setdefault("name", name)
    try:
        row = await _run(state.engine.repos.update, name, body)
    except KeyError:
        raise NotFound(f"repository {name!r} not found") from None
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    await state.record(principal.username, "repository.updated", name, details=_audit_view(row))
    return JSONResponse(await _run(_view, state, row))


async def delete_repository(request: Request) -> Response:
    principal = await _admin(request)
    state = _state(request)
    name = request.path_params["name"]
    try:
        row = await _run(state.engine.repos.delete, name)
    except RepositoryInUse as exc:
        raise Conflict(str(exc)) from None
    if row is None:
        raise NotFound(f"repository {name!r} not found")
    await state.record(principal.username, "repository.deleted", name)
    state.engine.fire(
        "artifactory_repository_deleted",
        event=RepositoryEvent(row["name"], row["format"], row["type"], principal.username),
    )
    return Response(status_code=204)


async def invalidate_cache(request: Request) -> Response:
    principal = await _admin(request)
    state = _state(request)
    repo = state.engine.repository(request.path_params["name"])
    if repo.type != PROXY:
        raise BadRequest(f"{repo.name} is not a proxy repository")
    body = await _json(request) or {}
    prefix = body.get("prefix", "") if isinstance(body, dict) else ""
    if not isinstance(prefix, str):
        raise BadRequest("prefix must be a string")
    await _run(state.engine.proxy.invalidate, repo, prefix.lstrip("/"))
    await state.record(principal.username, "repository.invalidated", repo.name, details={"prefix": prefix})
    return JSONResponse({"invalidated": prefix or "*"})


def _audit_view(row: dict[str, Any]) -> dict[str, Any]:
    """A repository definition as the audit log keeps it: never a secret."""
    view = public_view(row)
    return {k: v for k, v in view.items() if k not in ("password", "ca_bundle")}


def _user_details(user: dict[str, Any]) -> dict[str, Any]:
    return {k: user[k] for k in ("username", "roles", "disabled") if k in user}


async def security_record(
    request: Request, principal: Principal, action: str, details: dict[str, Any]
) -> None:
    await _state(request).record(principal.username, action, details=details)


# -- users, roles, tokens, settings ------------------------------------------------------------------
async def create_user(request: Request) -> Response:
    principal = await _admin(request)
    body = await _object(request)
    unknown = sorted(set(body) - {"username", "password", "roles"})
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}; expected username, password, roles")
    try:
        user = await _run(
            _state(request).security.create_user,
            body.get("username"),
            body.get("password"),
            body.get("roles", []),
        )
    except KeyError:
        raise Conflict(f"user {body.get('username')!r} already exists") from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    await _state(request).record(principal.username, "user.created", details=_user_details(user))
    return JSONResponse(user, status_code=201)


async def list_users(request: Request) -> Response:
    await _admin(request)
    return JSONResponse(await _run(_state(request).security.list_users))


async def update_user(request: Request) -> Response:
    """Admins change anything; a user changes only their own password, proving the current one."""
    principal = await _user(request)
    name = request.path_params["name"]
    body = await _object(request)
    unknown = sorted(set(body) - {"password", "roles", "disabled", "current_password"})
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}; expected password, roles, disabled")
    security = _state(request).security
    if not principal.is_admin:
        if name != principal.username or principal.scope is not None:
            raise Forbidden("only an admin may change another user")
        if set(body) - {"password", "current_password"} or "password" not in body:
            raise Forbidden("you may change only your own password")
        current = body.get("current_password")
        if not isinstance(current, str) or not await _run(security.check_password, name, current):
            raise Forbidden("current_password is wrong")
    if name == "admin" and body.get("disabled") is True:
        raise BadRequest("the admin user cannot be disabled")
    try:
        user = await _run(
            lambda: security.update_user(name, body.get("password"), body.get("roles"), body.get("disabled"))
        )
    except KeyError:
        raise NotFound(f"user {name!r} not found") from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    changed = sorted(k for k in body if k != "current_password")
    await security_record(request, principal, "user.updated", {**_user_details(user), "changed": changed})
    return JSONResponse(user)


async def delete_user(request: Request) -> Response:
    principal = await _admin(request)
    name = request.path_params["name"]
    if name == "admin":
        raise BadRequest("the admin user cannot be deleted")
    if not await _run(_state(request).security.delete_user, name):
        raise NotFound(f"user {name!r} not found")
    await security_record(request, principal, "user.deleted", {"username": name})
    return Response(status_code=204)


async def save_role(request: Request) -> Response:
    principal = await _admin(request)
    body = await _object(request)
    create = request.method == "POST"
    name = body.get("name") if create else request.path_params["name"]
    try:
        role = await _run(_state(request).security.save_role, name, body.get("privileges"), create)
    except KeyError:
        raise Conflict(f"role {name!r} already exists") from None
    except PermissionError as exc:
        raise BadRequest(str(exc)) from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    await security_record(request, principal, "role.saved", role)
    return JSONResponse(role, status_code=201 if create else 200)


async def list_roles(request: Request) -> Response:
    await _admin(request)
    return JSONResponse(await _run(_state(request).security.list_roles))


async def delete_role(request: Request) -> Response:
    principal = await _admin(request)
    try:
        found = await _run(_state(request).security.delete_role, request.path_params["name"])
    except PermissionError as exc:
        raise BadRequest(str(exc)) from None
    if not found:
        raise NotFound("role not found")
    await security_record(request, principal, "role.deleted", {"name": request.path_params["name"]})
    return Response(status_code=204)


async def create_token(request: Request) -> Response:
    principal = await _user(request)
    body = await _json(request) or {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - {"name", "expires_in_seconds", "scope"})
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}; expected name, expires_in_seconds, scope")
    try:
        token = await _run(
            _state(request).security.create_token,
            principal,
            body.get("name", ""),
            body.get("expires_in_seconds"),
            body.get("scope"),
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    except KeyError:
        raise Unauthorized("the user no longer exists") from None
    details = {k: token[k] for k in ("id", "name", "expires_at", "scope")}
    await security_record(request, principal, "token.created", details)
    return JSONResponse(token, status_code=201)


async def list_tokens(request: Request) -> Response:
    principal = await _user(request)
    user = request.query_params.get("user", principal.username)
    if user != principal.username and not principal.is_admin:
        raise Forbidden("only an admin may list another user's tokens")
    return JSONResponse(await _run(_state(request).security.list_tokens, user))


async def revoke_token(request: Request) -> Response:
    principal = await _user(request)
    if principal.scope is not None:
        raise Forbidden("a scoped token cannot revoke tokens")
    revoked = await _run(
        _state(request).security.revoke_token,
        principal.username,
        request.path_params["token_id"],
        principal.is_admin,
    )
    if not revoked:
        raise NotFound("token not found")
    await security_record(request, principal, "token.revoked", {"id": request.path_params["token_id"]})
    return Response(status_code=204)


async def get_settings(request: Request) -> Response:
    await _admin(request)
    return JSONResponse({"anonymous_read": _state(request).security.anonymous_read})


async def put_settings(request: Request) -> Response:
    principal = await _admin(request)
    body = await _object(request)
    unknown = sorted(set(body) - {"anonymous_read"})
    if unknown:
        raise BadRequest(f"unknown settings: {', '.join(unknown)}")
    if "anonymous_read" in body:
        if not isinstance(body["anonymous_read"], bool):
            raise BadRequest("anonymous_read must be true or false")
        await _run(_state(request).security.set_anonymous_read, body["anonymous_read"])
        await security_record(
            request, principal, "settings.changed", {"anonymous_read": body["anonymous_read"]}
        )
    return JSONResponse({"anonymous_read": _state(request).security.anonymous_read})


# -- audit ---------------------------------------------------------------------------------------
AUDIT_PARAMETERS = {"actor", "action", "repository", "since", "until", "cursor", "limit"}


def _moment(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 time such as 2026-11-28T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def audit(request: Request) -> Response:
    await _admin(request)
    params = request.query_params
    unknown = sorted(set(params) - AUDIT_PARAMETERS)
    if unknown:
        raise BadRequest(
            f"unknown parameters: {', '.join(unknown)}; known: {', '.join(sorted(AUDIT_PARAMETERS))}"
        )
    cursor_text = params.get("cursor")
    limit_text = params.get("limit", "100")
    if (cursor_text is not None and not ascii_digits(cursor_text)) or not ascii_digits(limit_text):
        raise BadRequest("cursor and limit must be whole numbers")
    since, until = _moment(params.get("since"), "since"), _moment(params.get("until"), "until")
    page = await _run(
        lambda: _state(request).audit.query(
            actor=params.get("actor"),
            action=params.get("action"),
            repository=params.get("repository"),
            since=since,
            until=until,
            cursor=min(int(cursor_text), MAX_INTEGER) if cursor_text is not None else None,
            limit=max(1, int(limit_text)),
        )
    )
    return JSONResponse({"items": page.items, "next": page.next})


routes = [
    Route("/api/v1/status", status, methods=["GET"]),
    Route("/api/v1/openapi.json", openapi, methods=["GET"]),
    Route("/api/v1/whoami", whoami, methods=["GET"]),
    Route("/api/v1/repositories", list_repositories, methods=["GET"]),
    Route("/api/v1/repositories", create_repository, methods=["POST"]),
    Route("/api/v1/repositories/{name}", get_repository, methods=["GET"]),
    Route("/api/v1/repositories/{name}", put_repository, methods=["PUT"]),
    Route("/api/v1/repositories/{name}", delete_repository, methods=["DELETE"]),
    Route("/api/v1/repositories/{name}/invalidate", invalidate_cache, methods=["POST"]),
    Route("/api/v1/users", list_users, methods=["GET"]),
    Route("/api/v1/users", create_user, methods=["POST"]),
    Route("/api/v1/users/{name}", update_user, methods=["PUT"]),
    Route("/api/v1/users/{name}", delete_user, methods=["DELETE"]),
    Route("/api/v1/roles", list_roles, methods=["GET"]),
    Route("/api/v1/roles", save_role, methods=["POST"]),
    Route("/api/v1/roles/{name}", save_role, methods=["PUT"]),
    Route("/api/v1/roles/{name}", delete_role, methods=["DELETE"]),
    Route("/api/v1/tokens", list_tokens, methods=["GET"]),
    Route("/api/v1/tokens", create_token, methods=["POST"]),
    Route("/api/v1/tokens/{token_id}", revoke_token, methods=["DELETE"]),
    Route("/api/v1/settings", get_settings, methods=["GET"]),
    Route("/api/v1/settings", put_settings, methods=["PUT"]),
    Route("/api/v1/search", search, methods=["GET"]),
    Route("/api/v1/audit", audit, methods=["GET"]),
    Route("/api/v1/cleanup-policies", cleanup_api.list_policies, methods=["GET"]),
    Route("/api/v1/cleanup-policies/{name}", cleanup_api.put_policy, methods=["PUT"]),
    Route("/api/v1/cleanup-policies/{name}", cleanup_api.delete_policy, methods=["DELETE"]),
    Route("/api/v1/cleanup-policies/{name}/preview", cleanup_api.preview_policy, methods=["POST"]),
]
