"""Signing in and out, and the signed-in user's own API tokens."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from artifactory.http.errors import NotFound
from artifactory.security.passwords import split_token
from artifactory.security.principal import ANONYMOUS, Credentials, Principal
from artifactory.security.service import ACTIONS, InvalidCredentials
from artifactory.ui.session import LOGIN_WINDOW_SECONDS, Session
from artifactory.ui.web import Ctx

EXPIRY_CHOICES = [
    ("1", "1 day"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
    ("", "never"),
]


def _next(ctx: Ctx, value: str) -> str:
    """Where to go after signing in: a page of this UI only (never another site)."""
    if value.startswith(ctx.root + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return ctx.root + "/"


async def login_form(ctx: Ctx) -> Response:
    return ctx.render(
        "login.html", next=_next(ctx, ctx.request.query_params.get("next", "")), username="", error=""
    )


async def login(ctx: Ctx) -> Response:
    username = ctx.field("username").strip()[:100]
    password = ctx.field("password")[:1024]
    target = _next(ctx, ctx.field("next"))

    def again(status: int, error: str) -> Response:
        return ctx.render("login.html", status=status, next=target, username=username, error=error)

    if not username or not password:
        return again(400, "Enter a username and a password.")
    sessions, security, address = ctx.sessions, ctx.state.security, ctx.address
    if await ctx.run(sessions.throttled, username, address):
        minutes = LOGIN_WINDOW_SECONDS // 60
        return again(429, f"Too many failed sign-ins. Try again in {minutes} minutes.")
    ok = await ctx.run(_check_password, security, username, password)
    await ctx.run(sessions.record, username, address, ok, "" if ok else "wrong username or password")
    if not ok:
        return again(403, "Wrong username or password.")
    session = await ctx.run(sessions.signed_in, username)
    principal = await ctx.run(sessions.principal, session)
    ctx.start_session(session, principal)
    return ctx.redirect(target.removeprefix(ctx.root))


def _check_password(security: Any, username: str, password: str) -> bool:
    """A real password (never an API token: a token is no way to open a browser session)."""
    check = getattr(security, "check_password", None)
    if callable(check):
        return bool(check(username, password))
    if split_token(password) is not None:
        return False
    try:
        security.verify(Credentials("basic", username, password))
    except InvalidCredentials:
        return False
    return True


async def logout(ctx: Ctx) -> Response:
    if not ctx.principal.anonymous:
        await ctx.run(ctx.sessions.sign_out, ctx.principal.username, ctx.address)
    ctx.start_session(Session.anonymous(), ANONYMOUS)
    return ctx.redirect("/")


# -- API tokens --------------------------------------------------------------------------------------
async def tokens(
    ctx: Ctx, created: dict[str, Any] | None = None, error: str = "", status: int = 200
) -> Response:
    owned = await ctx.run(ctx.state.security.list_tokens, ctx.principal.username)
    return ctx.render(
        "tokens.html",
        status=status,
        tokens=owned,
        created=created,
        error=error,
        expiry_choices=EXPIRY_CHOICES,
        actions=ACTIONS,
        form=ctx.form,
    )


async def tokens_page(ctx: Ctx) -> Response:
    return await tokens(ctx)


async def create_token(ctx: Ctx) -> Response:
    name = ctx.field("name").strip()
    days = ctx.field("expires_days").strip()
    scope = None
    try:
        expires = int(days) * 86400 if days else None
    except ValueError:
        return await tokens(ctx, error="The expiry must be a number of days.", status=400)
    if ctx.field("access") == "scoped":
        scope = {"repositories": ctx.field("repositories").strip() or "*", "actions": ctx.fields("actions")}
    try:
        token = await ctx.run(_create, ctx.state.security, ctx.principal, name, expires, scope)
    except ValueError as exc:
        return await tokens(ctx, error=str(exc), status=400)
    ctx.form = {}
    return await tokens(ctx, created=token, status=201)


def _create(
    security: Any, principal: Principal, name: str, expires: int | None, scope: Any
) -> dict[str, Any]:
    result: dict[str, Any] = security.create_token(principal, name, expires, scope)
    return result


async def revoke_token(ctx: Ctx) -> Response:
    token_id = ctx.request.path_params["token_id"]
    if not await ctx.run(ctx.state.security.revoke_token, ctx.principal.username, token_id, False):
        raise NotFound("token not found")
    return ctx.redirect("/tokens")
