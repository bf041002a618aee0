"""Raw routes: GET/HEAD (files and folder listings), PUT with checksum headers, DELETE.

A path is data: it reaches a header only percent-encoded (a Location with non-Latin-1 characters
must not fail after the file is stored) and a listing only as a relative, percent-encoded href with
an HTML-escaped label (a file named `javascript:alert(1)` must not become a link with a scheme).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from artifactory.plugin import (
    BadRequest,
    Coordinates,
    Entry,
    NotFound,
    Upload,
    access,
    current_path,
    current_principal,
    current_repository,
    repositories,
    repository_url,
    respond,
)

CHECKSUM_HEADERS = {"sha256": "x-checksum-sha256", "sha1": "x-checksum-sha1", "md5": "x-checksum-md5"}
# A listing loads nothing (no script, style, frame or form); links still navigate.
LISTING_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


def encoded(path: str) -> str:
    """A decoded repository path as it goes into a URL or a header: every segment percent-encoded."""
    return quote(path, safe="/")


async def get(request: Request) -> Response:
    repo, path, eng = current_repository(request), current_path(request), repositories(request)
    principal = await current_principal(request)
    if path == "" or path.endswith("/"):
        return await listing(request, path)
    content = await eng.get(repo, path, principal, stream=request.method == "GET")
    if content is None:
        if await eng.is_folder(repo, path, principal):
            return RedirectResponse(f"{request.scope['root_path']}/{encoded(path)}/", status_code=301)
        raise NotFound(f"{path} not found in {repo.name}")
    return respond(request, content, inline=bool(repo.config.get("allow_inline")))


def listing_line(entry: Entry) -> str:
    """One <li>: a relative href ("./" first, so no name reads as a scheme), an escaped label."""
    name = entry.name + ("/" if entry.is_folder else "")
    href = "./" + quote(entry.name, safe="") + ("/" if entry.is_folder else "")
    size = "" if entry.asset is None else f" {entry.asset.size} bytes"
    return f'<li><a href="{html.escape(href, quote=True)}">{html.escape(name)}</a>{size}</li>'


async def listing(request: Request, prefix: str) -> Response:
    repo, eng = current_repository(request), repositories(request)
    entries = await eng.listing(repo, prefix, await current_principal(request))
    if not entries and prefix:
        raise NotFound(f"{prefix} not found in {repo.name}")
    title = html.escape(f"{repo.name}/{prefix}")
    lines = ['<li><a href="../">../</a></li>'] if prefix else []
    lines.extend(listing_line(entry) for entry in entries)
    body = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><ul>{''.join(lines)}</ul></body></html>"
    )
    return HTMLResponse(body, headers=LISTING_HEADERS)


async def put(request: Request) -> Response:
    repo, path, eng = current_repository(request), current_path(request), repositories(request)
    _target, principal = await access(request).writable(request)
    if path == "" or path.endswith("/"):
        raise BadRequest("cannot upload to a folder path: name the file")
    expected = {name: request.headers.get(header) for name, header in CHECKSUM_HEADERS.items()}
    # Each file is its own component, named by its path (as Nexus does for raw).
    upload = Upload(path=path, expected=expected, component=Coordinates(name=path))
    asset = await eng.put(repo, request.stream(), upload, principal)
    return Response(
        status_code=201,
        headers={
            "ETag": f'"{asset.sha256}"',
            "X-Checksum-Sha256": asset.sha256,
            "Location": repository_url(request, repo.name) + encoded(path),
        },
    )


async def delete(request: Request) -> Response:
    repo, path = current_repository(request), current_path(request)
    deleted = await repositories(request).delete(repo, path, await current_principal(request))
    if deleted is None:
        raise NotFound(f"{path} not found in {repo.name}")
    return Response(status_code=204)


ROUTES: Sequence[BaseRoute] = (
    Route("/{path:path}", get, methods=["GET", "HEAD"]),
    Route("/{path:path}", put, methods=["PUT"]),
    Route("/{path:path}", delete, methods=["DELETE"]),
)
