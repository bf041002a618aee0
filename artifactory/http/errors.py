"""Our exceptions carry their HTTP status and message; one handler renders them.

By default the body is `{"error": "..."}` (which npm also expects). A format renders errors in its
protocol's own shape by overriding `Format.render_error`, or raises a subclass with its own render().
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class HTTPProblem(Exception):
    status = 400

    def __init__(
        self, message: str, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})

    def render(self, request: Request) -> Response:
        return JSONResponse({"error": self.message}, status_code=self.status, headers=self.headers)


class BadRequest(HTTPProblem):
    status = 400


class Unauthorized(HTTPProblem):
    status = 401

    def __init__(self, message: str = "authentication required", realm: str = "artifactory") -> None:
        super().__init__(message, headers={"WWW-Authenticate": f'Basic realm="{realm}"'})


class Forbidden(HTTPProblem):
    status = 403


class NotFound(HTTPProblem):
    status = 404


class MethodNotAllowed(HTTPProblem):
    """405, with the `Allow` header HTTP requires: the methods the resource does support (by
    default GET and HEAD: what a client may still do with a file it may not change this way)."""

    status = 405

    def __init__(self, message: str, allow: tuple[str, ...] = ("GET", "HEAD")) -> None:
        super().__init__(message, headers={"Allow": ", ".join(allow)})


class Conflict(HTTPProblem):
    status = 409


class PayloadTooLarge(HTTPProblem):
    status = 413


class BadGateway(HTTPProblem):
    status = 502


class UploadRefused(HTTPProblem):
    """Raised by plugins from `artifactory_check_upload`; the client sees 400 with this message."""

    status = 400
