"""GET /api/v1/search: components with their assets, filtered by what the caller may read."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from sqlalchemy import func, or_, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.db import queries
from artifactory.db.models import Component, Repository
from artifactory.http.errors import BadRequest
from artifactory.state import AppState


def _state(request: Request) -> AppState:
    return request.scope["artifactory.state"]  # type: ignore[no-any-return]


async def _run(fn: Any, *args: Any) -> Any:
    return await to_thread.run_sync(fn, *args)


async def search(request: Request) -> Response:
    state = _state(request)
    principal = await state.principal(request)
    q = request.query_params.get("q", "")
    fmt = request.query_params.get("format")
    repository = request.query_params.get("repository")
    try:
        limit = max(1, min(int(request.query_params.get("limit", "200")), 1000))
    except ValueError:
        raise BadRequest("limit must be an integer") from None

    def run() -> list[dict[str, Any]]:
        with state.db.read() as session:
            query = select(Component, Repository).join(Repository, Repository.id == Component.repository_id)
            if q:
                pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                query = query.where(
                    or_(
                        func.lower(Component.name).like(pattern, escape="\\"),
                        func.lower(Component.namespace).like(pattern, escape="\\"),
                    )
                )
            if fmt:
                query = query.where(Repository.format == fmt)
            if repository:
                query = query.where(Repository.name == repository)
            rows = [
                (c, r)
                for c, r in session.execute(
                    query.order_by(Repository.name, Component.name, Component.id).limit(limit * 4)
                )
                if state.security.allowed(principal, r.name, "read")
            ][:limit]
            found: list[dict[str, Any]] = []
            for component, repo in rows:
                infos = queries.components(
                    session, (repo.id, repo.name), component.name, component.namespace, component.version
                )
                for info in infos:
                    found.append(
                        {
                            "repository": repo.name,
                            "format": repo.format,
                            "namespace": info.namespace,
                            "name": info.name,
                            "version": info.version,
                            "assets": [
                                {
                                    "path": a.path,
                                    "sha256": a.sha256,
                                    "size": a.size,
                                    "content_type": a.content_type,
                                }
                                for a in info.assets
                            ],
                        }
                    )
            return found

    return JSONResponse({"items": await _run(run)})


