"""What every page shares: templates, the request context, forms, CSRF, and the response headers.

A page handler is `async def handler(ctx: Ctx) -> Response`, wrapped by `page(...)`, which resolves
the session to a principal, checks the CSRF token of every POST before anything else, turns our
exceptions into an HTML error page (never a Basic-auth challenge: the UI signs in with a form), and
puts the security headers and the session cookie on the response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from anyio import to_thread
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from artifactory.http.bodies import read_body
from artifactory.http.errors import BadRequest, Forbidden, HTTPProblem, NotFound
from artifactory.http.urls import base_url
from artifactory.security.principal import Principal
from artifactory.state import PRINCIPAL_KEY, AppState
from artifactory.ui.session import COOKIE, SESSION_SECONDS, Session, Sessions

MAX_FORM_BYTES = 1024 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def _load_static() -> dict[str, tuple[bytes, str, str]]:
    """The UI's static files: {name: (body, content type, short digest for cache-busting URLs)}."""
    found = {}
    for entry in resources.files("artifactory.ui").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in STATIC_TYPES:
            body = entry.read_bytes()
            found[entry.name] = (body, STATIC_TYPES[suffix], hashlib.sha256(body).hexdigest()[:12])
    return found


STATIC = _load_static()


def filesize(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def when(value: datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed.strftime("%Y-%m-%d %H:%M UTC")
    return value.strftime("%Y-%m-%d %H:%M UTC")


TEMPLATES = Environment(
    loader=PackageLoader("artifactory.ui", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["filesize"] = filesize
TEMPLATES.filters["when"] = when


def client_address(request: Request, state: AppState) -> str:
    peer = request.client.host if request.client else ""
    trusted = state.settings.trusted_proxies
    if trusted and ("*" in trusted or peer in trusted):
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:100]
    return peer


def sessions_of(request: Request, state: AppState) -> Sessions:
    app_state = request.app.state
    sessions = getattr(app_state, "ui_sessions", None)
    if sessions is None:
        sessions = Sessions(state.token_secret, state.db, state.settings.config_cache_seconds)
        app_state.ui_sessions = sessions
    return sessions  # type: ignore[no-any-return]


@dataclass
class Ctx:
    request: Request
    state: AppState
    sessions: Sessions
    session: Session
    principal: Principal
    base: str  # the server's absolute base URL, no trailing slash
    root: str  # the URL path of the UI, e.g. "/ui" (with the external URL's prefix, if any)
    cookie_changed: bool = False
    form: dict[str, list[str]] = field(default_factory=dict)

    # -- links ---------------------------------------------------------------------------------
    def url(self, path: str = "/", /, **params: Any) -> str:
        query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
        return self.root + path + (f"?{query}" if query else "")

    def repo_url(self, repository: str, rest: str = "/", /, **params: Any) -> str:
        return self.url(f"/repository/{quote(repository, safe='')}{rest}", **params)

    def static(self, name: str) -> str:
        return self.url(f"/static/{name}", v=STATIC[name][2])

    @property
    def csrf(self) -> str:
        return self.sessions.csrf_token(self.session)

    @property
    def secure(self) -> bool:
        return urlsplit(self.base).scheme == "https" or self.request.url.scheme == "https"

    @property
    def address(self) -> str:
        return client_address(self.request, self.state)

    # -- forms ---------------------------------------------------------------------------------
    def field(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0] if values else default

    def fields(self, name: str) -> list[str]:
        return list(self.form.get(name, []))

    def checked(self, name: str) -> bool:
        return bool(self.form.get(name))

    # -- responses -----------------------------------------------------------------------------
    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        body = TEMPLATES.get_template(template).render(ctx=self, principal=self.principal, **values)
        return HTMLResponse(body, status_code=status)

    def redirect(self, path: str, /, **params: Any) -> Response:
        """After a POST: see the result with a GET (303), so a reload does not post again."""
        return RedirectResponse(self.url(path, **params), status_code=303)

    def start_session(self, session: Session, principal: Principal) -> None:
        self.session = session
        self.principal = principal
        self.request.scope[PRINCIPAL_KEY] = principal
        self.cookie_changed = True

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await to_thread.run_sync(fn, *args)

    # -- access --------------------------------------------------------------------------------
    def readable(self, repository: str) -> bool:
        return self.state.security.allowed(self.principal, repository, "read")

    def require_admin(self) -> None:
        if not self.principal.is_admin:
            raise Forbidden("this page needs the admin role")


async def read_form(request: Request) -> dict[str, list[str]]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}  # not one of our forms (which carry a CSRF token): refused as such
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=2000
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"malformed form: {exc}") from None
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    return form


async def context(request: Request) -> Ctx:
    state: AppState = request.scope["artifactory.state"]
    sessions = sessions_of(request, state)
    loaded = sessions.load(request.cookies.get(COOKIE))
    session = loaded or Session.anonymous()
    principal = await to_thread.run_sync(sessions.principal, loaded)
    if loaded is not None and loaded.username and principal.anonymous:
        session = Session.anonymous()  # signed out elsewhere, disabled, or the password changed
        loaded = None
    # The UI's credential is its session: whatever the core asks of this request sees this principal.
    request.scope[PRINCIPAL_KEY] = principal
    base = base_url(request)
    return Ctx(
        request=request,
        state=state,
        sessions=sessions,
        session=session,
        principal=principal,
        base=base,
        root=urlsplit(base).path.rstrip("/") + "/ui",
        cookie_changed=loaded is None,
    )


def finish(ctx: Ctx, response: Response) -> Response:
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    if ctx.cookie_changed:
        response.set_cookie(
            COOKIE,
            ctx.sessions.dump(ctx.session),
            max_age=SESSION_SECONDS,
            path=ctx.root + "/",
            secure=ctx.secure,
            httponly=True,
            samesite="lax",
        )
    return response


Handler = Callable[[Ctx], Awaitable[Response]]


def page(handler: Handler, *, admin: bool = False, signed_in: bool = False) -> Callable[[Request], Any]:
    """A Starlette endpoint around a page handler (see the module docstring)."""

    async def endpoint(request: Request) -> Response:
        ctx = await context(request)
        try:
            if request.method == "POST":
                ctx.form = await read_form(request)
                # A form is good only with the token of the session cookie that came with it.
                if ctx.cookie_changed or not ctx.sessions.csrf_ok(ctx.session, ctx.field("csrf")):
                    raise Forbidden(
                        "this form has expired or did not come from this site: reload the page and try again"
                    )
            if (admin or signed_in) and ctx.principal.anonymous:
                if request.method == "GET":
                    return finish(ctx, ctx.redirect("/login", next=_here(ctx)))
                raise Forbidden("sign in first")
            if admin:
                ctx.require_admin()
            response = await handler(ctx)
        except HTTPProblem as problem:
            response = error_page(ctx, problem)
        return finish(ctx, response)

    endpoint.__name__ = handler.__name__
    return endpoint


def error_page(ctx: Ctx, problem: HTTPProblem) -> Response:
    status = problem.status
    if status == 401:
        status = 404 if ctx.principal.anonymous else 403  # never a Basic-auth prompt in a browser
    return ctx.render("error.html", status=status, message=problem.message, status_code=status)


def _here(ctx: Ctx) -> str:
    path = ctx.request.url.path
    query = ctx.request.url.query
    return path + (f"?{query}" if query else "")


def not_found(what: str) -> NotFound:
    return NotFound(f"{what} not found")
