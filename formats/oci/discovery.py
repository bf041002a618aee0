"""Content discovery: /v2/<name>/tags/list, /v2/_catalog and /v2/<name>/referrers/<digest>.

Each is an index document of the engine (see documents.py), which builds it from a hosted
repository, fetches and revalidates it from a proxy's upstream, and merges a group's members with
their permissions and the dependency-confusion guard. What is left here is the protocol around it:
the spec's `n`/`last` pages, the catalog across every repository the caller may read, the referrers
tag schema of upstreams without the API, and the `artifactType` filter.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from artifactory_formats.oci.access import OCI, Ctx, open_ctx, principal_of, unauthorized
from artifactory_formats.oci.auth import TokenPrincipal
from artifactory_formats.oci.blobs import digest_arg
from artifactory_formats.oci.documents import CATALOG_KEY, referrers_key, render, tags_key
from artifactory_formats.oci.errors import OCIError, translate
from artifactory_formats.oci.metadata import next_link, paginate, parse_page_args
from starlette.requests import Request
from starlette.responses import Response

from artifactory.plugin import (
    HTTPProblem,
    IndexKey,
    Principal,
    RenderContext,
    RenderedDocument,
    access,
    repositories,
    repository_url,
    respond_document,
    run_sync,
)


def _respond(request: Request, key: IndexKey, model: Any, repo: str, headers: dict[str, str]) -> Response:
    """A model the route changed (a page, a filter), rendered by the format and served as a document."""
    context = RenderContext(media_type="", repository_url=repository_url(request, repo), repository=repo)
    document = RenderedDocument.of(render(key, model, context))
    return respond_document(request, document, headers=headers)


async def _model(ctx: Ctx, key: IndexKey) -> Any:
    try:
        return await ctx.repos.index_model(ctx.repo, key, ctx.principal)
    except HTTPProblem as problem:
        raise translate(problem) from None


# -- tags --------------------------------------------------------------------------------------
async def tags(request: Request, name: str) -> Response:
    ctx = await open_ctx(request, name, "read")
    n, last = parse_page_args(request.query_params.get("n"), request.query_params.get("last"))
    key = tags_key(ctx.image)
    if n is None and last is None:
        return await ctx.repos.index(request, ctx.repo, key, ctx.principal)
    found = await _model(ctx, key)
    if found is None:
        raise OCIError("NAME_UNKNOWN", f"repository {name} is not known", detail={"name": name})
    page = paginate(found, n, last)
    headers = {}
    if page.next_last is not None and n is not None:
        headers["Link"] = next_link(f"/v2/{name}/tags/list", n, page.next_last)
    return _respond(request, key, tuple(page.items), ctx.repo.name, headers)


# -- catalog -----------------------------------------------------------------------------------
def _catalog_reader(principal: Principal) -> Principal:
    """Whose read permission decides what the catalog lists.

    A registry token's catalog grant lists the images its owner may read (the token names no
    repository for that); any other credential lists what it may read itself, its scope included.
    """
    if isinstance(principal, TokenPrincipal):
        return dataclasses.replace(principal, scope=None)
    return principal


async def catalog(request: Request) -> Response:
    principal = await principal_of(request)
    if isinstance(principal, TokenPrincipal) and not principal.grants_catalog():
        raise unauthorized(
            request, "the token does not grant the catalog", "registry:catalog:*", "insufficient_scope"
        )
    may = access(request)
    if principal.anonymous and not may.anonymous_read:
        raise unauthorized(request, "listing the catalog requires authentication", "registry:catalog:*")
    n, last = parse_page_args(request.query_params.get("n"), request.query_params.get("last"))
    reader = _catalog_reader(principal)
    repos = repositories(request)
    names: list[str] = []
    for repo in await run_sync(repos.all):
        if repo.format != OCI or not may.allowed(reader, repo, "read"):
            continue
        try:
            images = await repos.index_model(repo, CATALOG_KEY, reader)
        except HTTPProblem as problem:
            raise translate(problem) from None
        names.extend(f"{repo.name}/{image}" for image in images or ())
    page = paginate(names, n, last)
    headers = {}
    if page.next_last is not None and n is not None:
        headers["Link"] = next_link("/v2/_catalog", n, page.next_last)
    return _respond(request, CATALOG_KEY, tuple(page.items), "", headers)


# -- referrers ---------------------------------------------------------------------------------
async def referrers(request: Request, name: str, digest: str) -> Response:
    ctx = await open_ctx(request, name, "read")
    subject = digest_arg(digest)
    key = referrers_key(ctx.image, subject)
    found = await _model(ctx, key)
    if not found:  # an upstream without the referrers API may keep the referrers tag instead
        found = await _model(ctx, referrers_key(ctx.image, subject, tag_schema=True))
    headers = {}
    artifact_type = request.query_params.get("artifactType")
    if artifact_type:
        found = tuple(d for d in found or () if d.get("artifactType") == artifact_type)
        headers["OCI-Filters-Applied"] = "artifactType"
    return _respond(request, key, tuple(found or ()), ctx.repo.name, headers)
