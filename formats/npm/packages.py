"""Package handlers: packuments, version manifests, tarballs, publish, deprecate, unpublish, dist-tags.

Writes go to `engine.write_target(repo)` (the repository itself, or a group's write member) and change
the package document under the engine's lock (`update_document`), so concurrent publishes of one
package apply one after the other on any node.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from artifactory_formats.npm import metadata, safejson, upload
from artifactory_formats.npm.coordinates import PackageName, ParsedPath, parse_path
from artifactory_formats.npm.httputil import (
    cached_document,
    max_document_bytes,
    max_upload_bytes,
    ok,
    one_chunk,
    read_body,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import (
    BadRequest,
    Conflict,
    Document,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    Principal,
    Repo,
    StoredAsset,
    Upload,
    current_path,
    current_principal,
    current_repository,
    engine,
    repository_url,
    respond,
)

TARBALL_TYPE = "application/octet-stream"
JSON_TYPE = "application/json"
TAG_BODY_LIMIT = 4096


# -- reading ---------------------------------------------------------------------------------
def wants_abbreviated(request: Request) -> bool:
    if request.query_params.get("write") == "true":
        return False
    for part in request.headers.get("accept", "").split(","):
        media, *params = part.strip().split(";")
        if media.strip().lower() != metadata.ABBREVIATED_TYPE:
            continue
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


async def packument_content(request: Request, package: PackageName) -> StoredAsset | Document:
    repo, eng = current_repository(request), engine(request)
    principal = await current_principal(request)
    missing = NotFound(f"package {package.full} not found in {repo.name}")
    source = repo
    if (
        request.query_params.get("write") == "true"
        and repo.type == "group"
        and repo.config.get("write_member")
    ):
        # What npm reads before it writes a document back (deprecate, unpublish): the document of the
        # member that write goes to, with its _rev, not the merge. Reading the group is not reading
        # that member: a caller who may not read it is answered as if the package did not exist.
        source = eng.write_target(repo)
        if not eng.security.allowed(principal, source.name, "read"):
            raise missing
    content = await eng.get(source, package.path, principal, stream=False)
    if not isinstance(content, StoredAsset | Document):
        raise missing
    return content


async def content_body(request: Request, content: StoredAsset | Document) -> bytes:
    if isinstance(content, Document):
        return content.body
    return await engine(request).read_bytes(content.sha256)


def prepared(request: Request, package: PackageName, body: bytes) -> metadata.Doc:
    """The packument as clients see it: tarball URLs absolute below the repository asked."""
    return metadata.prepare(body, package, repository_url(request, current_repository(request).name))


async def get_packument(request: Request, package: PackageName) -> Response:
    repo = current_repository(request)
    content = await packument_content(request, package)
    abbreviated = wants_abbreviated(request)
    kind, media = ("abbreviated", metadata.ABBREVIATED_TYPE) if abbreviated else ("full", JSON_TYPE)

    async def build() -> bytes:
        doc = prepared(request, package, await content_body(request, content))
        return metadata.abbreviated(doc) if abbreviated else metadata.full(doc)

    key = f"npm:{kind}:{package.path}:{content.sha256}:{repository_url(request, repo.name)}"
    return await cached_document(request, repo, key, build, media)


async def get_version(request: Request, parsed: ParsedPath) -> Response:
    repo = current_repository(request)
    content = await packument_content(request, parsed.package)

    async def build() -> bytes:
        doc = prepared(request, parsed.package, await content_body(request, content))
        return metadata.dump(metadata.version_manifest(doc, parsed.rest))

    base = repository_url(request, repo.name)
    key = f"npm:version:{parsed.package.path}:{parsed.rest}:{content.sha256}:{base}"
    return await cached_document(request, repo, key, build, JSON_TYPE)


async def get_tarball(request: Request, parsed: ParsedPath) -> Response:
    repo, eng = current_repository(request), engine(request)
    principal = await current_principal(request)
    content = await eng.get(repo, parsed.storage_path, principal, stream=request.method == "GET")
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
    eng = engine(request)
    principal = await current_principal(request)
    target = eng.write_target(current_repository(request))
    eng.require(principal, target, action)
    if target.write_policy == "deny":
        raise BadRequest(f"repository {target.name} is read-only (write policy deny)")
    return target, principal


def split_rev(path: str) -> tuple[str, str | None]:
    """`name/-rev/3-abc` -> ("name", "3-abc")."""
    base, sep, rev = path.rpartition("/-rev/")
    if sep and rev and "/" not in rev:
        return base, rev
    return path, None


async def put_path(request: Request) -> Response:
    base, rev = split_rev(current_path(request))
    parsed = parse_path(base)
    if parsed is None or parsed.kind != "packument":
        raise MethodNotAllowed(f"PUT is not supported at {current_path(request)}")
    target, principal = await writable(request)
    limit = max_upload_bytes(request, target)
    body = await read_body(request, max_document_bytes(target))
    doc = safejson.loads(body, "the package document")
    del body
    if not isinstance(doc, dict):
        raise BadRequest("the package document must be a JSON object")
    if doc.get("_attachments"):
        return await publish(request, target, principal, parsed.package, doc, limit)
    return await update(request, target, principal, parsed.package, doc, rev)


async def current_document(request: Request, target: Repo, package: PackageName) -> metadata.Doc | None:
    eng = engine(request)
    stored = await eng.db_call(eng.lookup, target, package.path)
    return metadata.load(await eng.read_bytes(stored.sha256)) if stored is not None else None


async def publish(
    request: Request,
    target: Repo,
    principal: Principal,
    package: PackageName,
    doc: dict[str, Any],
    limit: int,
) -> Response:
    eng = engine(request)
    publication = upload.parse_publish(doc, package, limit)
    version = publication.version
    tarball_path = package.tarball_path(version)
    stored = await eng.db_call(eng.lookup, target, tarball_path)
    if stored is not None:  # read the document only then: it may be large
        current = await current_document(request, target, package)
        if current is not None and version in metadata.versions_of(current):
            raise Forbidden(f"cannot publish over the previously published version {package.full}@{version}")
    elif await eng.was_ever_stored(target, tarball_path):
        raise Forbidden(
            f"{package.full}@{version} was published and unpublished before: versions cannot be reused"
        )
    staged = await eng.stage(
        target, one_chunk(publication.tarball), Upload(path=tarball_path, expected=publication.expected)
    )
    try:
        handle = await eng.db_call(eng.open_staged, staged)
        try:
            facts = await eng.db_call(upload.inspect_tarball, handle)
        finally:
            handle.close()
        upload.check_agreement(publication, facts)
        if stored is not None and stored.sha256 != staged.info.sha256:
            raise Forbidden(f"{tarball_path} exists with other content: versions cannot be reused")
    except BaseException:
        await eng.discard(staged)
        raise
    when = metadata.now_iso()
    digests = {"sha1": staged.info.sha1, "sha512": staged.info.sha512}
    manifest = upload.stored_manifest(publication, facts, tarball_path, digests, principal.username)
    if stored is not None:
        # An earlier publish of these very bytes stopped before its document was written: finish it.
        await eng.discard(staged)
    else:
        # Versions are immutable whatever the repository's policy: the engine creates the tarball
        # only if no asset holds its path, checked again inside the transaction that stores it.
        once = target
        if target.write_policy == "allow":
            once = dataclasses.replace(target, config={**target.config, "write_policy": "allow_once"})
        await commit_once(
            request,
            once,
            staged,
            Upload(
                path=tarball_path,
                content_type=TARBALL_TYPE,
                component=package.coordinates(version),
                component_attributes={
                    "description": str(manifest.get("description") or ""),
                    "keywords": manifest.get("keywords")
                    if isinstance(manifest.get("keywords"), list)
                    else [],
                    "publisher": principal.username,
                    "date": when,
                },
            ),
            principal,
            f"cannot publish over the previously published version {package.full}@{version}",
        )

    def transform(old: bytes | None) -> bytes:
        return metadata.add_version(
            old, package, manifest, publication.tags, publication.readme, principal.username, when
        )

    await eng.update_document(target, package.path, transform, principal)
    return ok(201, id=package.full)


async def commit_once(
    request: Request, target: Repo, staged: Any, upload_: Upload, principal: Principal, taken: str
) -> None:
    """Commit a new tarball; a concurrent publish that stored the same path first wins (403)."""
    eng = engine(request)
    try:
        await eng.commit(target, staged, upload_, principal)
    except BadRequest:
        if await eng.db_call(eng.lookup, target, upload_.path) is not None:
            raise Forbidden(taken) from None
        raise


async def update(
    request: Request,
    target: Repo,
    principal: Principal,
    package: PackageName,
    doc: dict[str, Any],
    rev: str | None,
) -> Response:
    """A whole-document PUT without attachments: npm deprecate, or npm unpublish of one version."""
    eng = engine(request)
    may_delete = eng.security.allowed(principal, target.name, "delete")
    when = metadata.now_iso()
    removed: list[str] = []

    def transform(old: bytes | None) -> bytes | None:
        new, gone = metadata.apply_update(old, doc, rev, may_delete, when)
        removed[:] = gone
        return new

    await eng.update_document(target, package.path, transform, principal)
    for version in removed:
        await eng.delete(target, package.tarball_path(version), principal)
    return ok(201, id=package.full)


async def delete_path(request: Request) -> Response:
    base, rev = split_rev(current_path(request))
    parsed = parse_path(base)
    if parsed is None or parsed.kind == "version":
        raise MethodNotAllowed(f"DELETE is not supported at {current_path(request)}")
    target, principal = await writable(request, "delete")
    eng = engine(request)
    package = parsed.package
    if parsed.kind == "tarball":
        current = await current_document(request, target, package)
        for version, manifest in metadata.versions_of(current or {}).items():
            if metadata.as_dict(metadata.as_dict(manifest).get("dist")).get("tarball") == parsed.storage_path:
                raise Conflict(f"{package.full}@{version} is still published: unpublish the version first")
        await eng.delete(target, parsed.storage_path, principal)
        return ok()
    await eng.update_document(target, package.path, lambda old: metadata.delete_document(old, rev), principal)
    for entry in await eng.listing(target, package.tarball_folder, principal):
        if not entry.is_folder:
            await eng.delete(target, package.tarball_folder + entry.name, principal)
    return ok()


# -- dist-tags -------------------------------------------------------------------------------
def tag_package(request: Request) -> PackageName:
    parsed = parse_path(str(request.path_params["package"]))
    if parsed is None or parsed.kind != "packument":
        raise NotFound(f"no package named {request.path_params['package']!r}")
    return parsed.package


async def list_tags(request: Request) -> Response:
    package = tag_package(request)
    content = await packument_content(request, package)
    return JSONResponse(metadata.tags_of(metadata.load(await content_body(request, content))))


async def put_tag(request: Request) -> Response:
    package, tag = tag_package(request), str(request.path_params["tag"])
    target, principal = await writable(request)
    body = await read_body(request, TAG_BODY_LIMIT)
    try:
        version = safejson.loads(body, "the dist-tag body")
    except BadRequest:  # a bare version, as some clients send it
        version = body.decode(errors="replace").strip()
    if not isinstance(version, str) or not version:
        raise BadRequest("the body of a dist-tag PUT is the version, as a JSON string")
    when = metadata.now_iso()
    await engine(request).update_document(
        target, package.path, lambda old: metadata.set_tag(old, tag, version, when), principal
    )
    return ok(201, **{tag: version})


async def delete_tag(request: Request) -> Response:
    package, tag = tag_package(request), str(request.path_params["tag"])
    target, principal = await writable(request)
    when = metadata.now_iso()
    await engine(request).update_document(
        target, package.path, lambda old: metadata.remove_tag(old, tag, when), principal
    )
    return ok()
