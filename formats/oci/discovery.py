"""Content discovery: /v2/<name>/tags/list, /v2/_catalog and /v2/<name>/referrers/<digest>.

Hosted repositories answer from their stored manifests (cached per repository revision), proxies
from their upstream (the tag list and referrers index are METADATA, revalidated after the TTL; an
upstream without the referrers API is asked for the referrers tag `<alg>-<hex>` instead), and groups
merge what their members answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from artifactory_formats.oci.access import (
    GROUP,
    HOSTED,
    OCI,
    Ctx,
    fetch,
    open_ctx,
    principal_of,
    unauthorized,
)
from artifactory_formats.oci.auth import TokenPrincipal
from artifactory_formats.oci.blobs import digest_arg
from artifactory_formats.oci.coordinates import (
    Digest,
    manifest_path,
    referrers_path,
    tags_path,
)
from artifactory_formats.oci.errors import API_VERSION, OCIError
from artifactory_formats.oci.metadata import (
    OCI_INDEX,
    descriptors_of_index,
    filter_referrers,
    load_json,
    next_link,
    paginate,
    parse_page_args,
    referrer_descriptor,
    referrers_index,
)
from starlette.requests import Request
from starlette.responses import Response

from artifactory.plugin import (
    Document,
    Engine,
    Principal,
    Repo,
    StoredAsset,
    app_state,
    document_response,
)

MAX_DOCUMENT = 16 * 1024 * 1024


async def _body(ctx: Ctx, content: object) -> bytes | None:
    if isinstance(content, Document):
        return content.body
    if isinstance(content, StoredAsset):
        if content.size > MAX_DOCUMENT:
            raise OCIError(
                "UNAVAILABLE", f"the upstream's {content.path} is larger than {MAX_DOCUMENT} bytes"
            )
        return await ctx.eng.read_bytes(content.sha256, MAX_DOCUMENT)
    return None


def _members(ctx: Ctx, repo: Repo, seen: frozenset[str]) -> list[Repo]:
    if repo.type != GROUP or repo.name in seen:
        return [repo] if repo.type != GROUP else []
    found: list[Repo] = []
    for member in ctx.eng.group.members(repo, ctx.principal):
        found.extend(_members(ctx, member, seen | {repo.name}))
    return found


# -- tags --------------------------------------------------------------------------------------
async def _hosted_tags(ctx: Ctx, repo: Repo) -> tuple[bool, list[str]]:
    async def build() -> bytes:
        entries = await ctx.eng.listing(repo, manifest_path(ctx.image, ""), ctx.principal)
        tags = sorted(e.name for e in entries if not e.is_folder and ":" not in e.name)
        return json.dumps({"exists": bool(entries), "tags": tags}).encode()

    body, _etag = await ctx.eng.document(repo, f"oci:tags:{ctx.image}", build)
    data = json.loads(body)
    return bool(data["exists"]), list(data["tags"])


async def _proxy_tags(ctx: Ctx, repo: Repo) -> tuple[bool, list[str]]:
    content = await fetch(ctx, tags_path(ctx.image), stream=False, repo=repo)
    body = await _body(ctx, content)
    if body is None:
        return await _hosted_tags(ctx, repo)  # what the cache holds, when the upstream has nothing
    try:
        tags = load_json(body).get("tags") or []
    except (ValueError, UnicodeDecodeError, AttributeError):
        tags = []
    if not isinstance(tags, list):
        tags = []
    return True, [t for t in tags if isinstance(t, str)]


async def tags(request: Request, name: str) -> Response:
    ctx = await open_ctx(request, name, "read")
    n, last = parse_page_args(request.query_params.get("n"), request.query_params.get("last"))
    exists, found = False, set()
    for leaf in _members(ctx, ctx.repo, frozenset()):
        leaf_exists, leaf_tags = await (_hosted_tags if leaf.type == HOSTED else _proxy_tags)(ctx, leaf)
        exists = exists or leaf_exists
        found.update(leaf_tags)
    if not exists:
        raise OCIError("NAME_UNKNOWN", f"repository {name} is not known", detail={"name": name})
    page = paginate(sorted(found), n, last)
    headers = dict(API_VERSION)
    if page.next_last is not None and n is not None:
        headers["Link"] = next_link(f"/v2/{name}/tags/list", n, page.next_last)
    body = json.dumps({"name": name, "tags": page.items}).encode()
    return Response(body, media_type="application/json", headers=headers)


# -- catalog -----------------------------------------------------------------------------------
async def _images(eng: Engine, repo: Repo) -> list[str]:
    async def build() -> bytes:
        components = await eng.components(repo)
        return json.dumps(sorted({c.name for c in components})).encode()

    body, _etag = await eng.document(repo, "oci:images", build)
    return list(json.loads(body))


def _catalog_reader(principal: Principal) -> Principal:
    """Whose read permission decides what the catalog lists.

    A registry token's catalog grant lists the images its owner may read (the token names no
    repository for that); any other credential lists what it may read itself, its scope included.
    """
    if isinstance(principal, TokenPrincipal):
        return dataclasses.replace(principal, scope=None)
    return principal


def _readable_leaves(eng: Engine, repo: Repo, reader: Principal, seen: frozenset[str]) -> list[Repo]:
    """The hosted and proxy repositories a caller reads through `repo` (nested groups included)."""
    if repo.type != GROUP:
        return [repo]
    if repo.name in seen:
        return []
    found: list[Repo] = []
    for member in eng.group.members(repo, reader):  # only the members the caller may read
        if member.format == OCI:
            found.extend(_readable_leaves(eng, member, reader, seen | {repo.name}))
    return found


async def catalog(request: Request) -> Response:
    principal = await principal_of(request)
    if isinstance(principal, TokenPrincipal) and not principal.grants_catalog():
        raise unauthorized(
            request, "the token does not grant the catalog", "registry:catalog:*", "insufficient_scope"
        )
    state = app_state(request)
    if principal.anonymous and not state.security.anonymous_read:
        raise unauthorized(request, "listing the catalog requires authentication", "registry:catalog:*")
    n, last = parse_page_args(request.query_params.get("n"), request.query_params.get("last"))
    eng = state.engine
    reader = _catalog_reader(principal)
    repos = await eng.db_call(eng.repos.all)
    names: list[str] = []
    for repo in repos:
        if repo.format != OCI or not state.security.allowed(reader, repo.name, "read"):
            continue
        leaves = await eng.db_call(_readable_leaves, eng, repo, reader, frozenset())
        for leaf in {leaf.name: leaf for leaf in leaves}.values():
            names.extend(f"{repo.name}/{image}" for image in await _images(eng, leaf))
    page = paginate(names, n, last)
    headers = dict(API_VERSION)
    if page.next_last is not None and n is not None:
        headers["Link"] = next_link("/v2/_catalog", n, page.next_last)
    body = json.dumps({"repositories": page.items}).encode()
    return Response(body, media_type="application/json", headers=headers)


# -- referrers ---------------------------------------------------------------------------------
async def _hosted_referrers(ctx: Ctx, repo: Repo, subject: Digest) -> list[dict[str, Any]]:
    async def build() -> bytes:
        entries = await ctx.eng.listing(repo, manifest_path(ctx.image, ""), ctx.principal)
        found = []
        for entry in entries:
            if entry.asset is None or ":" not in entry.name:
                continue
            if (entry.asset.attributes.get("oci") or {}).get("subject") != str(subject):
                continue
            descriptor = referrer_descriptor(entry.asset.attributes)
            if descriptor is not None:
                found.append(descriptor)
        return json.dumps(found).encode()

    body, _etag = await ctx.eng.document(repo, f"oci:referrers:{ctx.image}:{subject}", build)
    return list(json.loads(body))


async def _proxy_referrers(ctx: Ctx, repo: Repo, subject: Digest) -> list[dict[str, Any]]:
    content = await fetch(ctx, referrers_path(ctx.image, subject), stream=False, repo=repo)
    if content is None:  # no referrers API upstream: the referrers tag schema
        tag = f"{subject.algorithm}-{subject.hex}"
        content = await fetch(ctx, manifest_path(ctx.image, tag), stream=False, repo=repo)
    body = await _body(ctx, content)
    return descriptors_of_index(body) if body is not None else []


async def referrers(request: Request, name: str, digest: str) -> Response:
    ctx = await open_ctx(request, name, "read")
    subject = digest_arg(digest)
    found: list[dict[str, Any]] = []
    for leaf in _members(ctx, ctx.repo, frozenset()):
        if leaf.type == HOSTED:
            found.extend(await _hosted_referrers(ctx, leaf, subject))
        else:
            found.extend(await _proxy_referrers(ctx, leaf, subject))
    body = referrers_index(found)
    headers = dict(API_VERSION)
    artifact_type = request.query_params.get("artifactType")
    if artifact_type:
        body = filter_referrers(body, artifact_type)
        headers["OCI-Filters-Applied"] = "artifactType"
    return document_response(request, body, OCI_INDEX, hashlib.sha256(body).hexdigest(), headers=headers)
