"""Raw routes: GET/HEAD (files and folder listings), PUT with checksum headers, DELETE."""

from __future__ import annotations

import html
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from artifactory.plugin import (
    NotFound,
    Upload,
    current_path,
    current_principal,
    current_repository,
    engine,
    repository_url,
    respond,
)

CHECKSUM_HEADERS = {"sha256": "x-checksum-sha256", "sha1": "x-checksum-sha1", "md5": "x-checksum-md5"}


async def get(request: Request) -> Response:
    repo, path, eng = current_repository(request), current_path(request), engine(request)
    principal = await current_principal(request)
    if path == "" or path.endswith("/"):
        return await listing(request, path)
    content = await eng.get(repo, path, principal, stream=request.method == "GET")
    if content is None:
        if await eng.listing(repo, path + "/", principal):
            return RedirectResponse(f"{request.scope['root_path']}/{path}/", status_code=301)
        raise NotFound(f"{path} not found in {repo.name}")
    return respond(request, content, inline=bool(repo.config.get("allow_inline")))


async def listing(request: Request, prefix: str) -> Response:
    repo, eng = current_repository(request), engine(request)
    entries = await eng.listing(repo, prefix, await current_principal(request))
    if not entries and prefix:
        raise NotFound(f"{prefix} not found in {repo.name}")
    title = html.escape(f"{repo.name}/{prefix}")
    lines = ['<li><a href="../">../</a></li>'] if prefix else []
    for entry in entries:
        label = entry.name + ("/" if entry.is_folder else "")
        size = "" if entry.asset is None else f" {entry.asset.size} bytes"
        lines.append(f'<li><a href="{html.escape(label, quote=True)}">{html.escape(label)}</a>{size}</li>')
    body = (
        f"<!DOCTYPE html><html><head><title>{title}</title></head>"
        f"<body><h1>{title}</h1><ul>{''.join(lines)}</ul></body></html>"
    )
    return HTMLResponse(body, headers={"X-Content-Type-Options": "nosniff"})


async def put(request: Request) -> Response:
    repo, path = current_repository(request), current_path(request)
    if path == "" or path.endswith("/"):
        return Response("cannot upload to a folder path", status_code=400)
    expected = {name: request.headers.get(header) for name, header in CHECKSUM_HEADERS.items()}
    principal = await current_principal(request)
    fmt = engine(request).formats[repo.format]
    upload = Upload(path=path, expected=expected, component=fmt.coordinates(path))
    asset = await engine(request).put(repo, request.stream(), upload, principal)
    return Response(
        status_code=201,
        headers={
            "ETag": f'"{asset.sha256}"',
            "X-Checksum-Sha256": asset.sha256,
            "Location": repository_url(request, repo.name) + path,
        },
    )


async def delete(request: Request) -> Response:
    repo, path = current_repository(request), current_path(request)
    deleted = await engine(request).delete(repo, path, await current_principal(request))
    if deleted is None:
        raise NotFound(f"{path} not found in {repo.name}")
    return Response(status_code=204)


ROUTES: Sequence[BaseRoute] = (
    Route("/{path:path}", get, methods=["GET", "HEAD"]),
    Route("/{path:path}", put, methods=["PUT"]),
    Route("/{path:path}", delete, methods=["DELETE"]),
)
