"""Package handlers: packuments, version manifests, tarballs, publish, deprecate, unpublish, dist-tags.

Packuments are served through the engine's index (hosted, proxy and group alike, see format.py).
Writes go to the repository's write target (itself, or a group's write member) and change the package
document under the engine's lock (`update_document`), so concurrent publishes of one package apply
one after the other on any node.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from artifactory_formats.npm import metadata, upload
from artifactory_formats.npm.coordinates import PackageName, ParsedPath, parse_path
from artifactory_formats.npm.httputil import max_document_bytes, ok, one_chunk, read_body
from artifactory_formats.npm.metadata import JSON_TYPE, packument_key
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import (
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    Principal,
    RenderContext,
    Rendered,
    RenderedDocument,
    Repo,
    Upload,
    WritePolicyViolation,
    access,
    current_path,
    current_principal,
    current_repository,
    loads,
    repositories,
    repository_url,
    respond,
    respond_document,
)

TARBALL_TYPE = "application/octet-stream"
TAG_BODY_LIMIT = 4096


# -- reading ---------------------------------------------------------------------------------
def for_writing(request: Request) -> bool:
    """`?write=true`: what npm reads before it writes a document back (deprecate, unpublish)."""
    return request.query_params.get("write") == "true"


async def readable(request: Request) -> tuple[Repo, Principal]:
    repo, principal = current_repository(request), await current_principal(request)
    access(request).require(principal, repo, "read")
    return repo, principal


async def write_source(request: Request, package: PackageName) -> tuple[Repo, Principal]:
    """The repository whose own package document npm reads before it writes (`?write=true`): a
    group's write member, not the merge, with its _rev. Reading the group is not reading that
    member: a caller who may not read it is answered as if the package did not exist."""
    repo, principal = await readable(request)
    try:
        target = repositories(request).write_target(repo)
    except MethodNotAllowed:  # a proxy, or a group without a write member: its own packument
        return repo, principal
    if target.name != repo.name and not access(request).allowed(principal, target, "read"):
        raise NotFound(f"package {package.full} not found in {repo.name}")
    return target, principal


async def packument(request: Request, package: PackageName) -> metadata.Doc:
    """The packument's model (relative tarball paths) as this caller sees it (404 when none)."""
    repo, principal = await (write_source(request, package) if for_writing(request) else readable(request))
    doc = await repositories(request).index_model(repo, packument_key(package), principal)
    if doc is None:
        raise NotFound(f"package {package.full} not found in {current_repository(request).name}")
    return doc  # type: ignore[no-any-return]


async def get_packument(request: Request, package: PackageName) -> Response:
    repo, principal = current_repository(request), await current_principal(request)
    key = packument_key(package)
    if not for_writing(request):
        try:  # the engine checks that the caller may read the repository
            return await repositories(request).index(request, repo, key, principal)
        except NotFound:  # said in npm's words, with the package's full name
            raise NotFound(f"package {package.full} not found in {repo.name}") from None
    source, principal = await write_source(request, package)
    context = RenderContext(JSON_TYPE, repository_url(request, repo.name))
    rendered = await repositories(request).render_index(source, key, principal, context)
    if rendered is None:
        raise NotFound(f"package {package.full} not found in {repo.name}")
    return respond_document(request, RenderedDocument.of(rendered), vary="Accept, Accept-Encoding")


async def get_version(request: Request, parsed: ParsedPath) -> Response:
    doc = await packument(request, parsed.package)
    base = repository_url(request, current_repository(request).name)
    manifest = metadata.version_manifest(metadata.absolutized(doc, base), parsed.rest)
    return respond_document(request, RenderedDocument.of(Rendered(metadata.dump(manifest), JSON_TYPE)))


async def get_tarball(request: Request, parsed: ParsedPath) -> Response:
    repo, principal = await readable(request)
    content = await repositories(request).get(
        repo, parsed.storage_path, principal, stream=request.method == "GET"
    )
    if content is None:
        raise NotFound(f"{parsed.storage_path} not found in {repo.name}")
    return respond(request, content, immutable=True, media_type=TARBALL_TYPE)


async def get_path(request: Request) -> Response:
    parsed = parse_path(current_path(request))
    if parsed is None:
        raise NotFound(f"not found: {current_path(request)}")
    if parsed.kind == "tarball":
        return await get_tarball(request, parsed)
    if parsed.kind == "version":
        return await get_version(request, parsed)
    return await get_packument(request, parsed.package)


# -- writing ---------------------------------------------------------------------------------
async def writable(request: Request, action: str = "write") -> tuple[Repo, Principal]:
    """Where this request's write goes, once the caller is known to be allowed to make it."""
    target, principal = await access(request).writable(request, action)
    if target.write_policy == "deny":
        raise BadRequest(f"repository {target.name} is read-only (write policy deny)")
    return target, principal


def split_rev(path: str) -> tuple[str, str | None]:
    """`name/-rev/3-abc` -> ("name", "3-abc")."""
    base, sep, rev = path.rpartition("/-rev/")
    if sep and rev and "/" not in rev:
        return base, rev
    return path, None


# What each kind of path supports (the `Allow` of a 405 there): a packument is read, published and
# unpublished, a tarball read and deleted, anything else only read.
METHODS = {"packument": ("GET", "HEAD", "PUT", "DELETE"), "tarball": ("GET", "HEAD", "DELETE")}


def not_allowed(request: Request) -> MethodNotAllowed:
    parsed = parse_path(split_rev(current_path(request))[0])
    allow = METHODS.get(parsed.kind, ("GET", "HEAD")) if parsed is not None else ("GET", "HEAD")
    return MethodNotAllowed(f"{request.method} is not supported at /{current_path(request)}", allow)


async def put_path(request: Request) -> Response:
    base, rev = split_rev(current_path(request))
    parsed = parse_path(base)
    if parsed is None or parsed.kind != "packument":
        raise not_allowed(request)
    target, principal = await writable(request)
    limit = repositories(request).upload_limit(target)
    body = await read_body(request, max_document_bytes(target))
    doc = loads(body, "the package document", allow_nul=True)
    del body
    if not isinstance(doc, dict):
        raise BadRequest("the package document must be a JSON object")
    if doc.get("_attachments"):
        return await publish(request, target, principal, parsed.package, doc, limit)
    return await update(request, target, principal, parsed.package, doc, rev)


async def current_document(request: Request, target: Repo, package: PackageName) -> metadata.Doc | None:
    repos = repositories(request)
    stored = await repos.lookup(target, package.path)
    return metadata.load(await repos.read(stored, max_document_bytes(target))) if stored is not None else None


async def publish(
    request: Request,
    target: Repo,
    principal: Principal,
    package: PackageName,
    doc: dict[str, Any],
    limit: int,
) -> Response:
    repos = repositories(request)
    publication = upload.parse_publish(doc, package, limit)
    version = publication.version
    tarball_path = package.tarball_path(version)
    taken = f"cannot publish over the previously published version {package.full}@{version}"
    stored = await repos.lookup(target, tarball_path)
    if stored is not None:  # read the document only then: it may be large
        current = await current_document(request, target, package)
        if current is not None and version in metadata.versions_of(current):
            raise Forbidden(taken)
    staged = await repos.stage(
        target, one_chunk(publication.tarball), Upload(path=tarball_path, expected=publication.expected)
    )
    try:
        facts = await repos.read_staged(staged, upload.inspect_tarball)
        upload.check_agreement(publication, facts)
        if stored is not None and stored.sha256 != staged.info.sha256:
            raise Forbidden(f"{tarball_path} exists with other content: versions cannot be reused")
    except BaseException:
        await repos.discard(staged)
        raise
    when = metadata.now_iso()
    digests = {"sha1": staged.info.sha1, "sha512": staged.info.sha512}
    manifest = upload.stored_manifest(publication, facts, tarball_path, digests, principal.username)
    if stored is not None:
        # An earlier publish of these very bytes stopped before its document was written: finish it.
        await repos.discard(staged)
    else:
        # Versions are immutable whatever the repository's policy: the engine creates the tarball
        # only if no asset holds its path and no unpublish left its name@version tombstone, checked
        # again inside the transaction that stores it.
        once = target
        if target.write_policy == "allow":
            once = dataclasses.replace(target, config={**target.config, "write_policy": "allow_once"})
        tarball_upload = Upload(
            path=tarball_path,
            content_type=TARBALL_TYPE,
            component=package.coordinates(version),
            component_attributes={
                "description": str(manifest.get("description") or ""),
                "keywords": manifest.get("keywords") if isinstance(manifest.get("keywords"), list) else [],
                "publisher": principal.username,
                "date": when,
            },
        )
        try:
            await repos.commit(once, staged, tarball_upload, principal)
        except WritePolicyViolation:
            if await repos.lookup(target, tarball_path) is not None:  # a concurrent publish was first
                raise Forbidden(taken) from None
            raise Forbidden(
                f"{package.full}@{version} was published and unpublished before: versions cannot be reused"
            ) from None

    def transform(old: bytes | None) -> bytes:
        return metadata.add_version(
            old, package, manifest, publication.tags, publication.readme, principal.username, when
        )

    await repos.update_document(target, package.path, transform, principal)
    return ok(201, id=package.full)


async def update(
    request: Request,
    target: Repo,
    principal: Principal,
    package: PackageName,
    doc: dict[str, Any],
    rev: str | None,
) -> Response:
    """A whole-document PUT without attachments: npm deprecate, or npm unpublish of one version."""
    repos = repositories(request)
    may_delete = access(request).allowed(principal, target, "delete")
    when = metadata.now_iso()
    removed: list[str] = []

    def transform(old: bytes | None) -> bytes | None:
        new, gone = metadata.apply_update(old, doc, rev, may_delete, when)
        removed[:] = gone
        return new

    await repos.update_document(target, package.path, transform, principal)
    for version in removed:
        await repos.delete(target, package.tarball_path(version), principal)
    return ok(201, id=package.full)


async def delete_path(request: Request) -> Response:
    base, rev = split_rev(current_path(request))
    parsed = parse_path(base)
    if parsed is None or parsed.kind == "version":
        raise not_allowed(request)
    target, principal = await writable(request, "delete")
    repos = repositories(request)
    package = parsed.package
    if parsed.kind == "tarball":
        current = await current_document(request, target, package)
        for version, manifest in metadata.versions_of(current or {}).items():
            if metadata.as_dict(metadata.as_dict(manifest).get("dist")).get("tarball") == parsed.storage_path:
                raise Conflict(f"{package.full}@{version} is still published: unpublish the version first")
        await repos.delete(target, parsed.storage_path, principal)
        return ok()
    await repos.update_document(
        target, package.path, lambda old: metadata.delete_document(old, rev), principal
    )
    for asset in await repos.under(target, package.tarball_folder):
        await repos.delete(target, asset.path, principal)
    return ok()


# -- dist-tags -------------------------------------------------------------------------------
def tag_package(request: Request) -> PackageName:
    parsed = parse_path(str(request.path_params["package"]))
    if parsed is None or parsed.kind != "packument":
        raise NotFound(f"no package named {request.path_params['package']!r}")
    return parsed.package


async def list_tags(request: Request) -> Response:
    return JSONResponse(metadata.tags_of(await packument(request, tag_package(request))))


async def put_tag(request: Request) -> Response:
    package, tag = tag_package(request), str(request.path_params["tag"])
    target, principal = await writable(request)
    body = await read_body(request, TAG_BODY_LIMIT)
    try:
        version = loads(body, "the dist-tag body", allow_nul=True)
    except BadRequest:  # a bare version, as some clients send it
        version = body.decode(errors="replace").strip()
    if not isinstance(version, str) or not version:
        raise BadRequest("the body of a dist-tag PUT is the version, as a JSON string")
    when = metadata.now_iso()
    await repositories(request).update_document(
        target, package.path, lambda old: metadata.set_tag(old, tag, version, when), principal
    )
    return ok(201, **{tag: version})


async def delete_tag(request: Request) -> Response:
    package, tag = tag_package(request), str(request.path_params["tag"])
    target, principal = await writable(request)
    when = metadata.now_iso()
    await repositories(request).update_document(
        target, package.path, lambda old: metadata.remove_tag(old, tag, when), principal
    )
    return ok()
