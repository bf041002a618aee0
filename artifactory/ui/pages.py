"""Browsing: repositories, a repository's components, a component's versions, a version's files, search.

Only what the signed-in user (or an anonymous visitor) may read is shown; a repository the caller
may not read answers 404, as if it did not exist. A group page lists its members' content and says
which member each item comes from.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from artifactory.api.search import SearchPage, SearchQuery, parse_query, run_search
from artifactory.http.bodies import loads
from artifactory.http.errors import BadRequest, NotFound
from artifactory.repository.config import MASK
from artifactory.repository.model import GROUP, HOSTED, PROXY, Repo
from artifactory.ui import queries
from artifactory.ui.describe import Description, describe
from artifactory.ui.setup import SetupContext, snippets
from artifactory.ui.web import STATIC, Ctx

PAGE_SIZE = 50
SEARCH_PAGE_SIZE = 50


def _stats_cache(ctx: Ctx) -> queries.StatsCache:
    app_state = ctx.request.app.state
    cache = getattr(app_state, "ui_stats", None)
    if cache is None:
        cache = app_state.ui_stats = queries.StatsCache(ctx.state.db)
    return cache  # type: ignore[no-any-return]


# -- / and static files ---------------------------------------------------------------------------
async def root(request: Request) -> Response:
    """A browser asking for / is sent to the UI; an API client keeps getting JSON."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("./ui/", status_code=302, headers={"Vary": "Accept"})
    return JSONResponse({"error": "not found: /"}, status_code=404, headers={"Vary": "Accept"})


async def static(request: Request) -> Response:
    found = STATIC.get(request.path_params["file"])
    if found is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    body, content_type, digest = found
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable"
        if request.query_params.get("v") == digest
        else "public, max-age=300",
        "ETag": f'"{digest}"',
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == f'"{digest}"':
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=content_type, headers=headers)


# -- repositories --------------------------------------------------------------------------------
async def repositories(ctx: Ctx) -> Response:
    state = ctx.state

    def load() -> tuple[list[Repo], dict[int, queries.RepoStats], dict[int, queries.Health]]:
        repos = [r for r in state.engine.repos.all() if ctx.readable(r.name)]
        with state.db.read() as session:
            stats = _stats_cache(ctx).get(session, [r for r in repos if r.type != GROUP])
            health = queries.proxy_health(session, [r.id for r in repos if r.type == PROXY])
        return repos, stats, health

    repos, stats, health = await ctx.run(load)
    return ctx.render("repositories.html", repos=repos, stats=stats, health=health)


def _visible(ctx: Ctx, name: str) -> Repo:
    repo = ctx.state.engine.repos.get(name)
    if repo is None or not ctx.readable(repo.name):
        raise NotFound(f"repository {name!r} not found")
    return repo


def leaves(ctx: Ctx, repo: Repo, seen: frozenset[str] = frozenset()) -> list[Repo]:
    """The hosted and proxy repositories behind `repo` that the caller may read, in member order."""
    if repo.type != GROUP:
        return [repo]
    found: list[Repo] = []
    for name in repo.members:
        member = ctx.state.engine.repos.get(name)
        if member is None or name in seen or not ctx.readable(name):
            continue
        for leaf in leaves(ctx, member, seen | {repo.name}):
            if leaf not in found:
                found.append(leaf)
    return found


def setup_context(
    ctx: Ctx, repo: Repo, package: str = "", version: str = "", namespace: str = ""
) -> SetupContext:
    writable = repo.type == HOSTED or (repo.type == GROUP and bool(repo.config.get("write_member")))
    return SetupContext(
        base=ctx.base,
        repository=repo.name,
        repo_type=repo.type,
        writable=writable,
        username="USERNAME" if ctx.principal.anonymous else ctx.principal.username,
        package=package,
        version=version,
        namespace=namespace,
    )


def upstream_display(url: Any) -> str:
    """A proxy's upstream URL without any credentials written into it."""
    from urllib.parse import urlsplit, urlunsplit

    if not isinstance(url, str):
        return ""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _cursor(value: str) -> tuple[str, str] | None:
    if not value:
        return None
    try:
        namespace, name = loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "the link")
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest("this page link is not one this server made") from None
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise BadRequest("this page link is not one this server made")
    return namespace, name


def _encode_cursor(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


async def repository(ctx: Ctx) -> Response:
    state = ctx.state
    repo = _visible(ctx, ctx.request.path_params["name"])
    q = ctx.request.query_params.get("q", "").strip()[:255]
    after = _cursor(ctx.request.query_params.get("after", ""))
    members = leaves(ctx, repo)

    def load() -> Any:
        with state.db.read() as session:
            rows, more = queries.component_names(session, members, q, after, PAGE_SIZE)
            stats = _stats_cache(ctx).get(session, members) if repo.type != GROUP else {}
            health = queries.proxy_health(session, [repo.id]) if repo.type == PROXY else {}
        return rows, more, stats, health

    rows, more, stats, health = await ctx.run(load)
    direct_members = []
    if repo.type == GROUP:
        for name in repo.members:
            member = state.engine.repos.get(name)
            if member is not None and ctx.readable(name):
                direct_members.append(member)
    fmt = state.formats.get(repo.format)
    return ctx.render(
        "repository.html",
        repo=repo,
        rows=rows,
        q=q,
        next_after=_encode_cursor(more) if more else "",
        paged=after is not None,
        stats=stats.get(repo.id),
        health=health.get(repo.id, queries.Health()) if repo.type == PROXY else None,
        members=direct_members,
        upstream=upstream_display(repo.config.get("url")),
        snippets=snippets(fmt, repo.format, setup_context(ctx, repo)),
        repository_url=f"{ctx.base}/repository/{repo.name}/",
        has_password=repo.config.get("password") not in (None, "", MASK),
    )


def _coordinates(ctx: Ctx) -> tuple[str, str]:
    params = ctx.request.query_params
    name = params.get("name", "")
    if not name:
        raise BadRequest("which component? (the name parameter is missing)")
    return params.get("namespace", ""), name


async def component(ctx: Ctx) -> Response:
    repo = _visible(ctx, ctx.request.path_params["name"])
    namespace, name = _coordinates(ctx)
    members = leaves(ctx, repo)

    def load() -> list[queries.VersionRow]:
        with ctx.state.db.read() as session:
            return queries.versions(session, members, namespace, name)

    rows = await ctx.run(load)
    if not rows:
        raise NotFound(f"no component {_display(namespace, name)} in {repo.name}")
    return ctx.render(
        "component.html",
        repo=repo,
        namespace=namespace,
        name=name,
        rows=rows,
        title=_display(namespace, name),
    )


async def version(ctx: Ctx) -> Response:
    state = ctx.state
    repo = _visible(ctx, ctx.request.path_params["name"])
    namespace, name = _coordinates(ctx)
    wanted = ctx.request.query_params.get("version", "")
    members = leaves(ctx, repo)

    def load() -> tuple[queries.VersionDetail | None, list[str]]:
        found: queries.VersionDetail | None = None
        also: list[str] = []
        with state.db.read() as session:
            for member in members:
                detail = queries.version_detail(session, member, namespace, name, wanted)
                if detail is None:
                    continue
                if found is None:
                    found = detail
                else:
                    also.append(member.name)
        return found, also

    detail, also = await ctx.run(load)
    if detail is None:
        raise NotFound(f"no version {wanted!r} of {_display(namespace, name)} in {repo.name}")
    source = detail.repository

    async def read(path: str, limit: int) -> bytes | None:
        def find() -> tuple[str, int] | None:
            with state.db.read() as session:
                return queries.asset_at(session, source, path)

        found = await ctx.run(find)
        if found is None or found[1] > limit:
            return None
        try:
            return await state.engine.read_bytes(found[0], limit)
        except Exception:  # noqa: BLE001 - a missing blob only costs the README
            return None

    fmt = state.formats.get(source.format)
    component_data = {
        "namespace": detail.namespace,
        "name": detail.name,
        "version": detail.version,
        "attributes": detail.attributes,
        "assets": [{"path": a.path, "attributes": a.attributes} for a in detail.assets],
    }
    try:
        description = await describe(fmt, source.format, component_data, read)
    except Exception:  # noqa: BLE001 - a package's odd metadata must not take the page down
        description = Description()
    install = [
        s
        for s in snippets(fmt, repo.format, setup_context(ctx, repo, name, detail.version, namespace))
        if s.id in INSTALL_SNIPPETS
    ]
    return ctx.render(
        "version.html",
        repo=repo,
        source=source,
        also=also,
        detail=detail,
        title=_display(namespace, name),
        description=description,
        install=install,
        download=lambda path: f"{ctx.base}/repository/{source.name}/{quote(path, safe='/@:+')}",
    )


INSTALL_SNIPPETS = {"pip-install", "npm-install", "docker", "raw-get"}


def _display(namespace: str, name: str) -> str:
    if not namespace:
        return name
    return f"{namespace}/{name}" if namespace.startswith("@") else f"{namespace}:{name}"


# -- search ------------------------------------------------------------------------------------------
def search_params(params: QueryParams) -> QueryParams:
    """The UI's form: one `checksum` box for any digest; blank fields are dropped."""
    items = [(k, v) for k, v in params.multi_items() if v.strip()]
    result = []
    for key, value in items:
        if key == "checksum":
            digest = value.strip().lower()
            kind = {64: "sha256", 40: "sha1", 32: "md5"}.get(len(digest))
            if kind is None:
                raise BadRequest("a checksum is a sha256 (64), sha1 (40) or md5 (32) hex digest")
            result.append((kind, digest))
        else:
            result.append((key, value))
    return QueryParams(result)


async def search_page(ctx: Ctx) -> Response:
    query: SearchQuery = parse_query(search_params(ctx.request.query_params), default_limit=SEARCH_PAGE_SIZE)
    page = SearchPage([], None)
    if not query.empty:
        page = await ctx.run(run_search, ctx.state, ctx.principal, query)
    checksum = query.sha256 or query.sha1 or query.md5
    repos = [r for r in ctx.state.engine.repos.all() if ctx.readable(r.name)]
    return ctx.render(
        "search.html",
        query=query,
        checksum=checksum,
        page=page,
        formats=ctx.state.formats.ids(),
        repositories=[r.name for r in repos],
        next_link=ctx.url("/search", **query.params(), limit=str(query.limit), cursor=page.next)
        if page.next
        else "",
        display=_display,
    )
