"""The pypi admin API (global routes): yank/unyank and delete in hosted repositories.

    PUT    /api/v1/pypi/{repo}/projects/{project}/versions/{version}/yank    {"reason": "..."}
    DELETE /api/v1/pypi/{repo}/projects/{project}/versions/{version}/yank    (unyank)
    PUT    /api/v1/pypi/{repo}/projects/{project}/files/{filename}/yank      {"reason": "..."}
    DELETE /api/v1/pypi/{repo}/projects/{project}/files/{filename}/yank
    DELETE /api/v1/pypi/{repo}/projects/{project}                            (every file)
    DELETE /api/v1/pypi/{repo}/projects/{project}/versions/{version}
    DELETE /api/v1/pypi/{repo}/projects/{project}/files/{filename}

Yanking needs write permission on the repository, deleting needs delete permission. A repository
the caller may not see answers 404, as one that does not exist does, whatever its format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from artifactory_formats.pypi import operations
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from artifactory.plugin import (
    BadRequest,
    Unauthorized,
    access,
    current_principal,
    loads,
    read_body,
    repositories,
)

PREFIX = "/api/v1/pypi/{repo}/projects/{project}"


MAX_BODY_BYTES = 64 * 1024


async def _reason(request: Request) -> str:
    raw = await read_body(request, MAX_BODY_BYTES)
    if not raw.strip():
        return ""
    body: Any = loads(raw)
    reason = body.get("reason", "") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        raise BadRequest('the body is {"reason": "..."}')
    return reason[:1000]


async def yank(request: Request) -> Response:
    repos, acc = repositories(request), access(request)
    principal = await current_principal(request)
    if principal.anonymous:
        raise Unauthorized("yanking needs a user")
    undo = request.method == "DELETE"
    # Permission first: a repository this caller may not see answers 404 before the body is read.
    operations.hosted_repository(repos, acc, request.path_params["repo"], principal, "write")
    result = await operations.yank(
        repos,
        acc,
        request.path_params["repo"],
        request.path_params["project"],
        principal,
        version=request.path_params.get("version"),
        filename=request.path_params.get("filename"),
        reason="" if undo else await _reason(request),
        undo=undo,
    )
    return JSONResponse(result)


async def delete(request: Request) -> Response:
    repos, acc = repositories(request), access(request)
    principal = await current_principal(request)
    if principal.anonymous:
        raise Unauthorized("deleting needs a user")
    deleted = await operations.delete(
        repos,
        acc,
        request.path_params["repo"],
        request.path_params["project"],
        principal,
        version=request.path_params.get("version"),
        filename=request.path_params.get("filename"),
    )
    return JSONResponse({"deleted": deleted})


ROUTES: Sequence[BaseRoute] = (
    Route(PREFIX + "/versions/{version}/yank", yank, methods=["PUT", "DELETE"]),
    Route(PREFIX + "/files/{filename}/yank", yank, methods=["PUT", "DELETE"]),
    Route(PREFIX, delete, methods=["DELETE"]),
    Route(PREFIX + "/versions/{version}", delete, methods=["DELETE"]),
    Route(PREFIX + "/files/{filename}", delete, methods=["DELETE"]),
)
