"""create_app(): the ASGI application.

Requests under /repository/{name}/ skip the general router: the repository is resolved from its
cached snapshot, the path is checked once on the raw bytes, a GET or HEAD is authorised for read, and
the request goes to that repository's format routes. Everything else (the admin API, a format's
global routes such as /v2/) goes through one Starlette router.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route, Router
from starlette.types import Message, Receive, Scope, Send

from artifactory.api.routes import routes as api_routes
from artifactory.formats import Format
from artifactory.http.errors import Forbidden, HTTPProblem, NotFound, Unauthorized
from artifactory.http.paths import decode_path
from artifactory.metrics import CONTENT_TYPE, REQUEST_ID_KEY, Metrics, RequestMetrics, request_id
from artifactory.repository.index import READ_CHECKED_KEY, one_model_per_request
from artifactory.settings import Settings, load_settings
from artifactory.state import PRINCIPAL_KEY, REQUEST_PATH_KEY, AppState
from artifactory.ui import routes as ui_routes

log = logging.getLogger(__name__)
PREFIX = "/repository/"
READ_METHODS = ("GET", "HEAD")
# Every HTML page this server sends (folder listings, simple indexes, the UI) gets this policy unless
# it set its own: nothing runs, loads or submits from anywhere but this server.
HTML_POLICY = (
    b"default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def render_problem(request: Request, problem: HTTPProblem, fmt: Format | None = None) -> Response:
    if fmt is not None:
        return fmt.render_error(problem, request)
    return problem.render(request)


class Application:
    """The outer ASGI callable: the repository fast path, then Starlette for the rest."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.format_routers: dict[str, Router] = {
            f.id: Router(routes=list(f.routes())) for f in state.formats.all()
        }
        global_routes = [route for f in state.formats.all() for route in f.global_routes()]
        self.starlette = Starlette(
            routes=[
                *api_routes,
                *ui_routes,
                *global_routes,
                Route("/metrics", self._metrics, methods=["GET"]),
            ],
            exception_handlers={
                HTTPProblem: self._problem_handler,
                404: self._not_found,
                405: self._not_allowed,
            },
            lifespan=self._lifespan,
        )
        self.starlette.state.artifactory = state
        self.metrics = Metrics(state)
        self.request_metrics = RequestMetrics(state)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.state.pm.hook.artifactory_startup(state=self.state)
        # Learn of other processes' and nodes' commits (repository snapshots; see db.changes).
        self.state.engine.repos.start()
        # What startup built (modules, the engine, routes: about 100,000 objects) lives as long as
        # the process: out of the cyclic collector's sight, a full collection no longer walks it,
        # which held the event loop for tens of milliseconds now and then (a request's p99).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            try:
                await self.state.engine.close()
                self.state.pm.hook.artifactory_shutdown(state=self.state)
            finally:
                self.state.engine.repos.close()
                self.state.db.dispose()

    async def _metrics(self, request: Request) -> Response:
        if not self.state.settings.metrics_public:
            principal = await self.state.principal(request)
            if principal.anonymous:
                raise Unauthorized("metrics need an admin's credentials (or the metrics_public setting)")
            if not principal.is_admin:
                raise Forbidden("metrics need the admin role")
        body = await to_thread.run_sync(self.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    async def _problem_handler(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPProblem)
        await self._audit_denial(request, exc)
        return render_problem(request, exc)

    async def _audit_denial(self, request: Request, problem: HTTPProblem, repository: str = "") -> None:
        """A known user refused an action is an audit event (anonymous 401s are clients' first try)."""
        if problem.status != 403:
            return
        principal = request.scope.get(PRINCIPAL_KEY)
        await self.state.record(
            principal.username if principal is not None else "",
            "access.denied",
            repository=repository,
            path=request.scope.get(REQUEST_PATH_KEY, ""),
            details={"method": request.method, "reason": problem.message[:500]},
        )

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"not found: {request.url.path}"}, status_code=404)

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        headers = {"Allow": ", ".join(allowed_methods(self.starlette.router, request.scope))}
        body = {"error": f"method {request.method} not allowed here"}
        return JSONResponse(body, status_code=405, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The one wrapper every request passes: request id, security headers, metrics, access log."""
        scope["artifactory.state"] = self.state
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        scope[REQUEST_PATH_KEY] = path
        identifier = request_id(scope["headers"])
        scope[REQUEST_ID_KEY] = identifier
        logged = self.request_metrics.access_mode != "off"
        sender = (_CountingSender if logged else _Sender)(send, identifier)
        try:
            with self.state.engine.repos.request():
                await self._route(scope, receive, sender, path)
        finally:
            elapsed = time.perf_counter() - started
            self.request_metrics.done(scope, sender.status, elapsed)
            if logged:
                assert isinstance(sender, _CountingSender)
                self.request_metrics.log(scope, sender.status, sender.sent, elapsed)

    async def _route(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if b"%00" in scope["query_string"] or "\x00" in path:
            # NUL is never meaningful in a query or a path, and PostgreSQL refuses it in text.
            await JSONResponse({"error": "NUL character in the request"}, 400)(scope, receive, send)
        elif path.startswith(PREFIX):
            await self._repository(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)

    async def _repository(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.starlette
        raw = scope.get("raw_path") or scope["path"].encode()
        raw_text = raw.decode("latin-1").split("?", 1)[0]
        name, _, rest = raw_text[len(PREFIX) :].partition("/")
        request = Request(scope, receive)
        fmt: Format | None = None
        child: Scope = scope
        try:
            repo = self.state.engine.repos.get(name) if name else None
            if repo is None:
                raise NotFound(f"repository {name!r} not found")
            scope["artifactory.repo"] = repo  # for the metrics' labels
            fmt = self.state.formats.get(repo.format)
            if fmt is None:
                raise NotFound(f"repository {name!r} has format {repo.format!r}, which is not installed")
            path = decode_path(rest, fmt.encoded_path_characters)
            if scope["method"] in READ_METHODS:
                principal = await self.state.principal(request)
                self.state.engine.require(principal, repo, "read")
            child = dict(scope)
            child["artifactory.repo"] = repo
            child["artifactory.path"] = path
            # The read check above answers for this repository: the engine need not repeat it.
            child[READ_CHECKED_KEY] = scope["method"] in READ_METHODS
            child["root_path"] = scope.get("root_path", "") + PREFIX + name
            child["path"] = "/" + path
            try:
                if scope["method"] in READ_METHODS:
                    with one_model_per_request():
                        await self.format_routers[fmt.id](child, receive, send)
                else:
                    await self.format_routers[fmt.id](child, receive, send)
            finally:
                scope[PRINCIPAL_KEY] = child.get(PRINCIPAL_KEY)  # for the access log
        except HTTPProblem as problem:
            await self._audit_denial(Request(child, receive), problem, name)
            await render_problem(request, problem, fmt)(scope, receive, send)
        except ClientDisconnect:
            # The client went away mid-upload: whatever it sent was staged and is discarded; there
            # is no one to answer.
            log.info("client disconnected during %s %s", scope["method"], scope["path"])
        except HTTPException as exc:  # a route matched the path but not the method, and the like
            headers = dict(exc.headers or {})
            if exc.status_code == 405 and fmt is not None:
                # Starlette names the methods of the first route that matched the path only.
                headers["Allow"] = ", ".join(allowed_methods(self.format_routers[fmt.id], child))
            translated = HTTPProblem(str(exc.detail), status=exc.status_code, headers=headers)
            await render_problem(request, translated, fmt)(scope, receive, send)


def allowed_methods(router: Router, scope: Scope) -> list[str]:
    """The methods of every route of `router` whose path matches the request's."""
    methods: set[str] = set()
    for route in router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    order = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE")
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


class _Sender:
    """The response side of the wrapper: remembers the status, adds X-Request-Id and, to an HTML
    page that set no policy of its own, the Content-Security-Policy. Header names are lowercase
    (the ASGI rule, which Starlette's responses follow), so one dict answers both questions."""

    __slots__ = ("send", "status", "id_header")

    def __init__(self, send: Send, identifier: str) -> None:
        self.send = send
        self.status = 500
        self.id_header = (b"x-request-id", identifier.encode())

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = [*(message.get("headers") or ()), self.id_header]
            fields = dict(headers)
            html = fields.get(b"content-type", b"").startswith(b"text/html")
            if html and b"content-security-policy" not in fields:
                headers.append((b"content-security-policy", HTML_POLICY))
            message["headers"] = headers
        await self.send(message)


class _CountingSender(_Sender):
    """A sender that also counts the body bytes, for the access log (only used while it is on)."""

    __slots__ = ("sent",)

    def __init__(self, send: Send, identifier: str) -> None:
        super().__init__(send, identifier)
        self.sent = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            self.sent += len(message.get("body", b""))
        await super().__call__(message)


def create_app(settings: Settings | None = None) -> Any:
    """The ASGI app for these settings (or the settings handed over by `artifactory serve`)."""
    settings = settings or load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return Application(AppState.build(settings))
