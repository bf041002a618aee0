"""GOPROXY routes: the version list and @latest (index documents), a version's .info, .mod and .zip
(files), and hosted uploads: `PUT <module>/@v/<version>.zip` (its .mod and .info derived from it and
stored in the same transaction) or a `.mod` first; `DELETE` of a version's .zip removes all three
(of its .mod or .info, only while it has no zip). Under allow_once a deleted version is never
stored again.

A zip is staged, checked and then committed or discarded: a refused upload stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from artifactory_formats.go import coordinates
from artifactory_formats.go.coordinates import InvalidModule, ModuleFile
from artifactory_formats.go.upload import MAX_GO_MOD, check_gomod, inspect_zip
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from artifactory.plugin import (
    BadRequest,
    Companion,
    Coordinates,
    IndexKey,
    MethodNotAllowed,
    NotFound,
    Upload,
    access,
    current_path,
    current_repository,
    read_body,
    repositories,
    respond,
)


def document(path: str) -> IndexKey | None:
    """The index document `path` names when it is `<module>/@v/list` or `<module>/@latest`."""
    for suffix, kind in (("/@v/list", coordinates.LIST), ("/@latest", coordinates.LATEST)):
        if path.endswith(suffix):
            try:
                module = coordinates.unescape(path.removesuffix(suffix))
                coordinates.check_path(module)
            except InvalidModule:
                return None
            return IndexKey(kind, name=module)
    return None


def parse_file(path: str, method: str) -> ModuleFile:
    try:
        return coordinates.module_file(path)
    except InvalidModule as exc:
        if method in ("GET", "HEAD"):
            raise NotFound(f"{path} not found: {exc}") from None
        raise BadRequest(str(exc)) from None


async def get(request: Request) -> Response:
    repo, path = current_repository(request), current_path(request)
    principal = await access(request).principal(request)
    key = document(path)
    if key is not None:
        return await repositories(request).index(request, repo, key, principal)
    parse_file(path, request.method)
    access(request).require(principal, repo, "read")
    content = await repositories(request).get(repo, path, principal, stream=request.method == "GET")
    if content is None:
        raise NotFound(f"{path} not found in {repo.name}")
    return respond(request, content)


async def put(request: Request) -> Response:
    path = current_path(request)
    found = parse_file(path, "PUT")
    repos, (target, principal) = repositories(request), await access(request).writable(request)
    if found.ext == "mod":
        if await repos.lookup(target, found.sibling("zip")) is not None:
            raise BadRequest(f"{found.version} has a zip already: its .mod is the zip's go.mod")
        gomod = await read_body(request, MAX_GO_MOD)
        check_gomod(gomod, found.module)
        await repos.put_bytes(target, gomod, Upload(path=path), principal)
        return Response(status_code=201)
    if found.ext != "zip":
        raise MethodNotAllowed("upload a version's .zip (or its .mod first); its .info is derived")
    staged = await repos.stage(target, request.stream(), Upload(path=path))
    try:
        limit = repos.upload_limit(target)
        gomod = await repos.read_staged(staged, lambda f: inspect_zip(f, found.module, found.version, limit))
        stored = await repos.lookup(target, found.sibling("mod"))
        if stored is not None and await repos.read(stored, MAX_GO_MOD) != gomod:
            raise BadRequest(f"the zip's go.mod differs from the .mod stored for {found.version}")
    except BaseException:
        await repos.discard(staged)
        raise
    time = coordinates.timestamp(datetime.now(UTC))
    info = json.dumps({"Version": found.version, "Time": time}).encode()
    companions = (
        Companion(found.sibling("mod"), await repos.stage_bytes(gomod), "text/plain; charset=utf-8"),
        Companion(found.sibling("info"), await repos.stage_bytes(info), "application/json"),
    )
    upload = Upload(
        path=path,
        component=Coordinates(name=found.module, version=found.version),
        component_attributes={"time": time},
        companions=companions,
    )
    asset = await repos.commit(target, staged, upload, principal)
    return Response(status_code=201, headers={"ETag": f'"{asset.sha256}"'})


async def delete(request: Request) -> Response:
    """A version's zip, and with it its .mod and .info; a .mod uploaded alone while no zip is
    stored (the engine refuses the .mod or .info of a stored zip: `companion_of`)."""
    repo, path = current_repository(request), current_path(request)
    parse_file(path, "DELETE")
    if await repositories(request).delete(repo, path, await access(request).principal(request)) is None:
        raise NotFound(f"{path} not found in {repo.name}")
    return Response(status_code=204)


ROUTES: Sequence[BaseRoute] = (
    Route("/{path:path}", get, methods=["GET", "HEAD"]),
    Route("/{path:path}", put, methods=["PUT"]),
    Route("/{path:path}", delete, methods=["DELETE"]),
)
