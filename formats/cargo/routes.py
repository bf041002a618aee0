"""The sparse registry below /repository/{name}/: config.json, index files, and the web API
(`api` is the repository URL without its slash, so the API lives under api/v1/ here too). Cargo
sends its token as the bare Authorization value; the server's authentication reads it as Bearer."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from artifactory_formats.cargo import metadata
from artifactory_formats.cargo.metadata import InvalidCrate
from artifactory_formats.cargo.upload import MAX_CRATE_BYTES, Framed, check_crate
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from artifactory.plugin import (
    ANONYMOUS,
    BadRequest,
    Coordinates,
    IndexKey,
    NotFound,
    Principal,
    Repo,
    Repositories,
    Upload,
    WritePolicyViolation,
    access,
    current_path,
    current_repository,
    repositories,
    repository_url,
    respond,
)

WARNINGS: dict[str, list[str]] = {"invalid_categories": [], "invalid_badges": [], "other": []}


async def config(request: Request) -> Response:
    repo, url = current_repository(request), repository_url(request, current_repository(request).name)
    public = access(request).allowed(ANONYMOUS, repo, "read")
    return JSONResponse({"dl": url + "api/v1/crates", "api": url.rstrip("/"), "auth-required": not public})


async def index_file(request: Request) -> Response:
    name = metadata.name_of_index_path(current_path(request))
    if name is None:
        raise NotFound(f"{current_path(request)} is not an index file of this registry")
    principal = await access(request).principal(request)
    key = IndexKey(metadata.CRATE, name=name)
    return await repositories(request).index(request, current_repository(request), key, principal)


async def download(request: Request) -> Response:
    repo, name, version = current_repository(request), *request.path_params.values()
    principal = await access(request).principal(request)
    access(request).require(principal, repo, "read")
    # Checked whole: a proxied crate that fails its index line's cksum is then a 502 cargo can
    # read, not a cut connection.
    content = await repositories(request).get_checked(repo, metadata.crate_path(name, version), principal)
    if content is None:
        raise NotFound(f"crate {name}@{version} not found in {repo.name}")
    return respond(request, content, immutable=True, media_type="application/gzip")


async def writer(request: Request, action: str = "write") -> tuple[Repositories, Repo, Principal]:
    """The repository service, the hosted repository a change goes to, and who asks (allowed to)."""
    target, principal = await access(request).writable(request, action)
    return repositories(request), target, principal


async def publish(request: Request) -> Response:
    repos, target, principal = await writer(request)
    framed = Framed(request.stream().__aiter__())
    meta = await framed.metadata()
    name, version = meta["name"], meta["vers"]
    limit = min(int(target.config.get("max_crate_bytes", MAX_CRATE_BYTES)), repos.upload_limit(target))
    path = metadata.crate_path(name, version)
    staged = await repos.stage(target, framed.rest(await framed.length(limit, ".crate")), Upload(path))
    try:
        await repos.read_staged(staged, lambda file: check_crate(file, name, version))
        line = metadata.index_line(meta, staged.info.sha256)
        claimed = await claim(repos, target, name, principal)
    except BaseException:
        await repos.discard(staged)
        raise
    upload = Upload(
        path=path,
        component=Coordinates(name=name.lower(), version=version),
        component_attributes={"index": line, "publisher": principal.username},
        conflict_key=f"{name.lower()}@{metadata.release(version)}",
    )
    try:
        await repos.commit(target, staged, upload, principal)
    except BaseException as failed:
        if claimed:  # the first publish of this name failed: the spelling is not taken after all
            await repos.update_document(target, metadata.claim_path(name), unclaim(name), principal)
        if isinstance(failed, WritePolicyViolation) and failed.existing is not None:
            published = f"crate version {name}@{version} is already published in {target.name}"
            raise BadRequest(published) from None
        raise
    return JSONResponse({"warnings": WARNINGS})


def unclaim(name: str) -> Callable[[bytes | None], bytes | None]:
    """The claim document's change that gives `name` back, unless another spelling holds it."""
    return lambda old: None if old == name.encode() else old


async def claim(repos: Repositories, target: Repo, name: str, principal: Principal) -> bool:
    """Refuse a name that means a crate published here under another spelling (`Foo-Bar` and
    `foo_bar` are one crate to cargo). The first publish of a name claims its spelling, under the
    repository's lock (`update_document`), so two spellings published at once cannot both pass: the
    commit cannot check this itself, as its conflict key names one release, not every version.
    Whether this call claimed the name (a later failure of the publish gives it back: a crate
    stored meanwhile under it is found by the component scan below all the same)."""
    path, held = metadata.claim_path(name), set()
    if await repos.lookup(target, path) is None:  # a crate may predate claims: find its spelling
        canonical = metadata.canonical(name)
        held = {
            str(component.attributes.get("index", {}).get("name", other))
            for _namespace, other in await repos.component_names(target)
            if metadata.canonical(other) == canonical
            for component in await repos.components(target, name=other)
        }

    claimed: list[bool] = []

    def transform(old: bytes | None) -> bytes:
        if others := ({old.decode()} if old else held) - {name}:
            raise InvalidCrate(
                f"the crate is published here as {min(others)!r}: names that differ only in case "
                "or in - and _ are one crate"
            )
        claimed[:] = [old is None]
        return name.encode()

    await repos.update_document(target, path, transform, principal, "text/plain; charset=utf-8")
    return claimed == [True]


async def yank(request: Request) -> Response:
    """DELETE .../yank and PUT .../unyank: the version's line stays, its `yanked` flag changes."""
    repos, target, principal = await writer(request)
    name, version = request.path_params["name"].lower(), request.path_params["version"]
    if not await repos.components(target, name=name, version=version):
        raise NotFound(f"crate {name}@{version} not found in {target.name}")

    def transform(old: bytes | None) -> bytes | None:
        versions = set(json.loads(old)) if old else set()
        versions = versions | {version} if request.method == "DELETE" else versions - {version}
        return json.dumps(sorted(versions)).encode() if versions else None

    await repos.update_document(target, metadata.yanked_path(name), transform, principal)
    return JSONResponse({"ok": True})


async def owners(request: Request) -> Response:
    """Who published the crate here. Who may publish is not kept per crate: it is the write
    privilege of the server's roles, so adding or removing owners answers what to do instead."""
    repos, target, _principal = await writer(request, "read")
    name = request.path_params["name"].lower()
    found = await repos.components(target, name=name)
    if not found:
        raise NotFound(f"crate {name} not found in {target.name}")
    if request.method != "GET":
        raise BadRequest(
            f"crate owners are not kept here: anyone with the write privilege on repository "
            f"{target.name} may publish {name}; an administrator grants it through a role "
            "(POST /api/v1/roles, then PUT /api/v1/users/<name>)"
        )
    publishers = sorted({str(c.attributes.get("publisher") or "") for c in found} - {""})
    return JSONResponse({"users": [{"id": i + 1, "login": u, "name": u} for i, u in enumerate(publishers)]})


CRATE = "/api/v1/crates/{name}"
ROUTES: Sequence[BaseRoute] = (
    Route("/config.json", config, methods=["GET", "HEAD"]),
    Route("/api/v1/crates/new", publish, methods=["PUT"]),
    Route(CRATE + "/{version}/download", download, methods=["GET", "HEAD"]),
    Route(CRATE + "/{version}/yank", yank, methods=["DELETE"]),
    Route(CRATE + "/{version}/unyank", yank, methods=["PUT"]),
    Route(CRATE + "/owners", owners, methods=["GET", "PUT", "DELETE"]),
    Route("/{path:path}", index_file, methods=["GET", "HEAD"]),
)
