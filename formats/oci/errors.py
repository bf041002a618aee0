"""Errors in the distribution spec's JSON shape: {"errors": [{"code", "message", "detail"}]}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import (
    BadGateway,
    DigestMismatch,
    Forbidden,
    HTTPProblem,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}

# code -> default status
CODES = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
    "UNAVAILABLE": 502,
}


class OCIError(HTTPProblem):
    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, status=status or CODES[code], headers=headers)
        self.code = code
        self.detail = detail

    def render(self, request: Request) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return JSONResponse(
            {"errors": [error]}, status_code=self.status, headers={**self.headers, **API_VERSION}
        )


def translate(problem: HTTPProblem, default_404: str = "NAME_UNKNOWN") -> OCIError:
    """A core error (permission, size, upstream, missing repository) in the spec's vocabulary."""
    if isinstance(problem, OCIError):
        return problem
    headers = {k: v for k, v in problem.headers.items() if k.lower() != "www-authenticate"}
    if isinstance(problem, Unauthorized):
        return OCIError("UNAUTHORIZED", problem.message, headers=headers)
    if isinstance(problem, Forbidden):
        return OCIError("DENIED", problem.message, headers=headers)
    if isinstance(problem, NotFound):
        return OCIError(default_404, problem.message, headers=headers)
    if isinstance(problem, PayloadTooLarge):
        return OCIError("SIZE_INVALID", problem.message, status=413, headers=headers)
    if isinstance(problem, MethodNotAllowed):
        return OCIError("UNSUPPORTED", problem.message, headers=headers)
    if isinstance(problem, DigestMismatch):
        return OCIError("DIGEST_INVALID", problem.message, headers=headers)
    if isinstance(problem, BadGateway) or problem.status >= 500:
        return OCIError("UNAVAILABLE", problem.message, status=problem.status, headers=headers)
    # Remaining 4xx from the core are refusals of an upload (write policy, a plugin's check).
    return OCIError("DENIED", problem.message, status=problem.status, headers=headers)
