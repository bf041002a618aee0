"""Admin pages: what the admin API does, as forms. Every change goes through the same core calls as
the API (so the same validation and the same messages): the registry for repositories, the security
service for users, roles and the anonymous-read switch."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from artifactory.events import RepositoryEvent
from artifactory.http.bodies import loads
from artifactory.http.errors import BadRequest, NotFound
from artifactory.repository.config import (
    COMMON_KEYS,
    MASK,
    PROXY_DEFAULTS,
    TYPE_KEYS,
    ConfigError,
    public_view,
)
from artifactory.repository.model import GROUP, HOSTED, PROXY, REPOSITORY_TYPES, WRITE_POLICIES
from artifactory.repository.registry import RepositoryExists, RepositoryInUse
from artifactory.security.service import ACTIONS
from artifactory.ui.web import Ctx

INTEGER_KEYS = (
    "max_upload_bytes",
    "metadata_ttl_seconds",
    "negative_cache_seconds",
    "block_after_failures",
    "block_seconds",
)
NUMBER_KEYS = ("timeout_seconds",)
TEXT_KEYS = ("url", "username", "ca_bundle", "write_member")
LIST_KEYS = ("include", "exclude", "members")
BOOLEAN_KEYS = ("allow_inline", "offline", "allow_proxy_shadowing")
FORM_KEYS = {"write_policy", "password", *INTEGER_KEYS, *NUMBER_KEYS, *TEXT_KEYS, *LIST_KEYS, *BOOLEAN_KEYS}


async def index(ctx: Ctx) -> Response:
    return ctx.render("admin/index.html")


# -- repositories ----------------------------------------------------------------------------------
def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def repository_body(
    ctx: Ctx, name: str, fmt: str, kind: str, existing: dict[str, Any] | None
) -> dict[str, Any]:
    """The API's JSON body from the form: only the settings of this type, blanks left to defaults."""
    body: dict[str, Any] = {"name": name, "format": fmt, "type": kind}
    keys = COMMON_KEYS | TYPE_KEYS.get(kind, set())
    stored = (existing or {}).get("config", {})
    if ctx.field("write_policy"):
        body["write_policy"] = ctx.field("write_policy")
    for key in INTEGER_KEYS + NUMBER_KEYS:
        value = ctx.field(key).strip()
        if key in keys and value:
            try:
                body[key] = int(value) if key in INTEGER_KEYS else float(value)
            except ValueError:
                body[key] = value  # the core's validation names the field and what it must be
    for key in TEXT_KEYS:
        value = ctx.field(key).strip() if key != "ca_bundle" else ctx.field(key).strip() + "\n"
        if key in keys and value.strip():
            body[key] = value
    for key in LIST_KEYS:
        if key in keys and (ctx.field(key).strip() or key in stored or key == "members"):
            body[key] = _lines(ctx.field(key))
    for key in BOOLEAN_KEYS:
        if key in keys and (ctx.checked(key) or key in stored or key in PROXY_DEFAULTS):
            body[key] = ctx.checked(key)
    if "password" in keys:
        if ctx.field("password"):
            body["password"] = ctx.field("password")
        elif stored.get("password") is not None:
            body["password"] = MASK  # keep the stored one
    extra = ctx.field("extra").strip()
    if extra:
        try:
            parsed = loads(extra, "format settings")
        except ValueError as exc:  # InvalidJSON: not JSON, too deep, NaN or NUL
            raise ConfigError(f"format settings must be a JSON object: {exc}") from None
        if not isinstance(parsed, dict):
            raise ConfigError("format settings must be a JSON object")
        body.update({k: v for k, v in parsed.items() if k not in ("name", "format", "type")})
    return body


def _form_values(view: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in view.items():
        if key in LIST_KEYS and isinstance(value, list):
            values[key] = "\n".join(str(v) for v in value)
        elif key in BOOLEAN_KEYS:
            values[key] = "on" if value else ""
        elif key == "password":
            values[key] = ""
        elif value is not None:
            values[key] = str(value)
    return values


def _extra(view: dict[str, Any], kind: str) -> str:
    known = COMMON_KEYS | TYPE_KEYS.get(kind, set()) | {"name", "format", "type", "revision", "status"}
    extra = {k: v for k, v in view.items() if k not in known}
    return json.dumps(extra, indent=2) if extra else ""


def _repository_form(
    ctx: Ctx, values: dict[str, str], existing: dict[str, Any] | None, error: str = "", status: int = 200
) -> Response:
    kind = existing["type"] if existing else values.get("type", "")
    fmt = ctx.state.formats.get(existing["format"] if existing else values.get("format", ""))
    return ctx.render(
        "admin/repository_form.html",
        status=status,
        values=values,
        existing=existing,
        error=error,
        formats=ctx.state.formats.all(),
        types=REPOSITORY_TYPES,
        kind=kind,
        policies=WRITE_POLICIES,
        format_keys=list(fmt.config_keys) if fmt is not None else [],
        repositories=[r.name for r in ctx.state.engine.repos.all()],
        has_password=bool(existing and existing["config"].get("password")),
        HOSTED=HOSTED,
        PROXY=PROXY,
        GROUP=GROUP,
    )


def _submitted(ctx: Ctx) -> dict[str, str]:
    values = {key: ctx.field(key) for key in (*FORM_KEYS, "name", "format", "type", "extra")}
    values["password"] = ""
    return values


async def new_repository(ctx: Ctx) -> Response:
    fmt = ctx.request.query_params.get("format", "")
    values = {"type": ctx.request.query_params.get("type", HOSTED), "format": fmt}
    return _repository_form(ctx, values, None)


async def create_repository(ctx: Ctx) -> Response:
    state = ctx.state
    name, fmt, kind = ctx.field("name").strip(), ctx.field("format"), ctx.field("type")
    try:
        body = repository_body(ctx, name, fmt, kind, None)
        row = await ctx.run(state.engine.repos.create, body)
    except ConfigError as exc:
        return _repository_form(ctx, _submitted(ctx), None, str(exc), 400)
    except RepositoryExists:
        return _repository_form(ctx, _submitted(ctx), None, f"repository {name!r} already exists", 409)
    state.engine.fire(
        "artifactory_repository_created",
        event=RepositoryEvent(row["name"], row["format"], row["type"], ctx.principal.username),
    )
    return ctx.redirect(f"/repository/{row['name']}/")


async def _existing(ctx: Ctx) -> dict[str, Any]:
    name = ctx.request.path_params["name"]
    row: dict[str, Any] | None = await ctx.run(ctx.state.engine.repos.row, name)
    if row is None:
        raise NotFound(f"repository {name!r} not found")
    return row


async def edit_repository(ctx: Ctx) -> Response:
    row = await _existing(ctx)
    view = public_view(row)
    values = _form_values(view)
    values["extra"] = _extra(view, row["type"])
    return _repository_form(ctx, values, row)


async def update_repository(ctx: Ctx) -> Response:
    row = await _existing(ctx)
    try:
        body = repository_body(ctx, row["name"], row["format"], row["type"], row)
        await ctx.run(ctx.state.engine.repos.update, row["name"], body)
    except KeyError:
        raise NotFound(f"repository {row['name']!r} not found") from None
    except ConfigError as exc:
        return _repository_form(ctx, _submitted(ctx), row, str(exc), 400)
    return ctx.redirect(f"/repository/{row['name']}/")


async def delete_repository(ctx: Ctx) -> Response:
    row = await _existing(ctx)
    if ctx.field("confirm") != row["name"]:
        view = public_view(row)
        values = {**_form_values(view), "extra": _extra(view, row["type"])}
        return _repository_form(ctx, values, row, "Type the repository's name to confirm deleting it.", 400)
    try:
        deleted = await ctx.run(ctx.state.engine.repos.delete, row["name"])
    except RepositoryInUse as exc:
        view = public_view(row)
        values = {**_form_values(view), "extra": _extra(view, row["type"])}
        return _repository_form(ctx, values, row, str(exc), 409)
    if deleted is not None:
        ctx.state.engine.fire(
            "artifactory_repository_deleted",
            event=RepositoryEvent(
                deleted["name"], deleted["format"], deleted["type"], ctx.principal.username
            ),
        )
    return ctx.redirect("/")


# -- users ------------------------------------------------------------------------------------------
async def users(ctx: Ctx, error: str = "", status: int = 200) -> Response:
    security = ctx.state.security
    return ctx.render(
        "admin/users.html",
        status=status,
        users=await ctx.run(security.list_users),
        roles=await ctx.run(security.list_roles),
        error=error,
        values={"username": ctx.field("username"), "roles": ctx.fields("roles")},
    )


async def users_page(ctx: Ctx) -> Response:
    return await users(ctx)


async def create_user(ctx: Ctx) -> Response:
    username = ctx.field("username").strip()
    try:
        await ctx.run(ctx.state.security.create_user, username, ctx.field("password"), ctx.fields("roles"))
    except KeyError:
        return await users(ctx, f"user {username!r} already exists", 409)
    except ValueError as exc:
        return await users(ctx, str(exc), 400)
    return ctx.redirect("/admin/users")


async def _user(ctx: Ctx) -> dict[str, Any]:
    name = ctx.request.path_params["name"]
    found = [u for u in await ctx.run(ctx.state.security.list_users) if u["username"] == name]
    if not found:
        raise NotFound(f"user {name!r} not found")
    return found[0]


async def user_page(ctx: Ctx, error: str = "", status: int = 200) -> Response:
    user = await _user(ctx)
    return ctx.render(
        "admin/user.html",
        status=status,
        user=user,
        roles=await ctx.run(ctx.state.security.list_roles),
        error=error,
        can_update=callable(getattr(ctx.state.security, "update_user", None)),
    )


async def user_form(ctx: Ctx) -> Response:
    return await user_page(ctx)


async def update_user(ctx: Ctx) -> Response:
    user = await _user(ctx)
    update = getattr(ctx.state.security, "update_user", None)
    if not callable(update):
        raise BadRequest("this server cannot change users yet")
    password = ctx.field("password") or None
    disabled = ctx.checked("disabled")
    if user["username"] == ctx.principal.username and disabled:
        return await user_page(ctx, "You cannot disable your own account.", 400)
    try:
        await ctx.run(update, user["username"], password, ctx.fields("roles"), disabled)
        ctx.sessions.forget(user["username"])
    except KeyError:
        raise NotFound(f"user {user['username']!r} not found") from None
    except ValueError as exc:
        return await user_page(ctx, str(exc), 400)
    return ctx.redirect("/admin/users")


async def delete_user(ctx: Ctx) -> Response:
    user = await _user(ctx)
    if user["username"] == "admin":
        return await user_page(ctx, "the admin user cannot be deleted", 400)
    if user["username"] == ctx.principal.username:
        return await user_page(ctx, "You cannot delete your own account.", 400)
    await ctx.run(ctx.state.security.delete_user, user["username"])
    ctx.sessions.forget(user["username"])
    return ctx.redirect("/admin/users")


# -- roles ------------------------------------------------------------------------------------------
def parse_privileges(text: str) -> list[dict[str, Any]]:
    """Lines of `GLOB: action, action` as the API's privilege list."""
    privileges = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        glob, sep, actions = line.rpartition(":")
        if not sep or not glob.strip():
            raise ValueError(f"line {number}: write REPOSITORY-GLOB: {', '.join(ACTIONS)}")
        privileges.append(
            {"repositories": glob.strip(), "actions": [a.strip() for a in actions.split(",") if a.strip()]}
        )
    return privileges


def privileges_text(privileges: list[dict[str, Any]]) -> str:
    return "\n".join(f"{p['repositories']}: {', '.join(p['actions'])}" for p in privileges)


async def roles(ctx: Ctx, error: str = "", status: int = 200) -> Response:
    return ctx.render(
        "admin/roles.html",
        status=status,
        roles=await ctx.run(ctx.state.security.list_roles),
        error=error,
        values={"name": ctx.field("name"), "privileges": ctx.field("privileges")},
        privileges_text=privileges_text,
    )


async def roles_page(ctx: Ctx) -> Response:
    return await roles(ctx)


async def _save_role(ctx: Ctx, name: str, create: bool) -> None:
    privileges = parse_privileges(ctx.field("privileges"))
    await ctx.run(ctx.state.security.save_role, name, privileges, create)


async def create_role(ctx: Ctx) -> Response:
    name = ctx.field("name").strip()
    try:
        await _save_role(ctx, name, True)
    except KeyError:
        return await roles(ctx, f"role {name!r} already exists", 409)
    except (ValueError, PermissionError) as exc:
        return await roles(ctx, str(exc), 400)
    return ctx.redirect("/admin/roles")


async def _role(ctx: Ctx) -> dict[str, Any]:
    name = ctx.request.path_params["name"]
    found = [r for r in await ctx.run(ctx.state.security.list_roles) if r["name"] == name]
    if not found:
        raise NotFound(f"role {name!r} not found")
    return found[0]


async def role_page(ctx: Ctx, error: str = "", status: int = 200) -> Response:
    role = await _role(ctx)
    text = ctx.field("privileges") if ctx.form else privileges_text(role["privileges"])
    return ctx.render("admin/role.html", status=status, role=role, text=text, error=error)


async def role_form(ctx: Ctx) -> Response:
    return await role_page(ctx)


async def update_role(ctx: Ctx) -> Response:
    role = await _role(ctx)
    try:
        await _save_role(ctx, role["name"], False)
    except (ValueError, PermissionError) as exc:
        return await role_page(ctx, str(exc), 400)
    return ctx.redirect("/admin/roles")


async def delete_role(ctx: Ctx) -> Response:
    role = await _role(ctx)
    try:
        await ctx.run(ctx.state.security.delete_role, role["name"])
    except PermissionError as exc:
        return await role_page(ctx, str(exc), 400)
    return ctx.redirect("/admin/roles")


# -- settings ---------------------------------------------------------------------------------------
async def settings_page(ctx: Ctx) -> Response:
    return ctx.render("admin/settings.html", anonymous_read=ctx.state.security.anonymous_read, saved=False)


async def save_settings(ctx: Ctx) -> Response:
    await ctx.run(ctx.state.security.set_anonymous_read, ctx.checked("anonymous_read"))
    return ctx.render("admin/settings.html", anonymous_read=ctx.state.security.anonymous_read, saved=True)
