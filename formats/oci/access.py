"""What every /v2/<name>/... handler starts with: the parsed name, the caller, the repository, the
permission check (with the Bearer challenge a docker client needs to fetch a token), and reads that
go through proxies and groups.

A proxy of an upstream registry needs three things the generic proxy does not know: the upstream's
URL layout (`/v2/<image>/...`, with the optional `default_namespace`), its Bearer token challenge and
the manifest Accept header. The URL of each path is recorded with `remember_upstream` before the
first fetch, and the proxy's upstream client is created with our `RegistryAuth` before the engine
first asks for it (the client is cached per repository and configuration).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from artifactory_formats.oci.auth import ACTION_OF, TokenPrincipal, challenge, scope_for
from artifactory_formats.oci.coordinates import Name, locate, parse_name
from artifactory_formats.oci.errors import OCIError, translate
from starlette.requests import Request

from artifactory.plugin import (
    Content,
    Engine,
    HTTPProblem,
    Principal,
    Repo,
    app_state,
    base_url,
    current_principal,
    engine,
)

OCI = "oci"
HOSTED, PROXY, GROUP = "hosted", "proxy", "group"
SYSTEM = Principal(username="system:oci", roles=frozenset({"admin"}))
_LINKS_REMEMBERED: OrderedDict[tuple[int, str, str, int], None] = OrderedDict()
_LINK_CACHE_SIZE = 50_000


def realm(request: Request) -> str:
    return f"{base_url(request)}/v2/token"


def service(request: Request) -> str:
    return urlsplit(base_url(request)).netloc or "artifactory"


def unauthorized(
    request: Request, message: str, scope: str | None = None, error: str | None = None
) -> OCIError:
    header = challenge(realm(request), service(request), scope, error)
    return OCIError("UNAUTHORIZED", message, headers={"WWW-Authenticate": header})


async def principal_of(request: Request) -> Principal:
    try:
        return await current_principal(request)
    except HTTPProblem as problem:
        if problem.status == 401:
            raise unauthorized(request, problem.message) from None
        raise translate(problem) from None


@dataclass
class Ctx:
    request: Request
    eng: Engine
    principal: Principal
    name: Name
    repo: Repo

    @property
    def image(self) -> str:
        return self.name.image

    def url(self, suffix: str) -> str:
        """An absolute URL below /v2/<name>/."""
        return f"{base_url(self.request)}/v2/{self.name.full}/{suffix}"


def may(request: Request, principal: Principal, name: Name, action: str) -> bool:
    if isinstance(principal, TokenPrincipal) and not principal.grants(name.full, action):
        return False
    return app_state(request).security.allowed(principal, name.repository, action)


def authorize(
    request: Request, principal: Principal, name: Name, action: str, also: tuple[str, ...] = ()
) -> None:
    """401 with a challenge naming the scope to ask for, or 403 once the caller is known.

    `also` are further scopes the request can use (a mount's `repository:<from>:pull`): a challenge
    names them too, space-separated as distribution does, so one token serves the whole request.
    """
    scope = " ".join(
        (scope_for(name.full, {ACTION_OF[action], "pull"} if action != "read" else {"pull"}), *also)
    )
    if isinstance(principal, TokenPrincipal) and not principal.grants(name.full, action):
        raise unauthorized(
            request,
            f"the token does not grant {ACTION_OF[action]} on {name.full}",
            scope,
            "insufficient_scope",
        )
    if app_state(request).security.allowed(principal, name.repository, action):
        return
    if principal.anonymous:
        raise unauthorized(
            request, f"{ACTION_OF[action]} access to {name.full} requires authentication", scope
        )
    raise OCIError("DENIED", f"{principal.username} may not {ACTION_OF[action]} {name.full}")


async def open_ctx(request: Request, name: str, action: str, also: tuple[str, ...] = ()) -> Ctx:
    parsed = parse_name(name)
    if parsed is None:
        raise OCIError("NAME_INVALID", f"invalid repository name {name!r}", detail={"name": name})
    principal = await principal_of(request)
    authorize(request, principal, parsed, action, also)
    eng = engine(request)
    repo = eng.repos.get(parsed.repository)
    if repo is None or repo.format != OCI:
        raise OCIError("NAME_UNKNOWN", f"repository {parsed.repository!r} not found", detail={"name": name})
    return Ctx(request, eng, principal, parsed, repo)


def push_target(ctx: Ctx) -> Repo:
    """Where a push goes: only into a hosted repository (a group names the one to use)."""
    repo = ctx.repo
    if repo.type == HOSTED:
        if repo.write_policy == "deny":
            raise OCIError("DENIED", f"repository {repo.name} is read-only (write policy deny)")
        return repo
    if repo.type == GROUP:
        hosted = [str(repo.config["write_member"])] if repo.config.get("write_member") else []
        if not hosted:  # named only when the caller may see them
            hosted = [m.name for m in ctx.eng.group.members(repo, ctx.principal) if m.type == HOSTED]
        where = f"push to {' or '.join(hosted)}" if hosted else "push to a hosted repository"
        raise OCIError("DENIED", f"{repo.name} is a group and cannot be pushed to: {where}")
    raise OCIError("DENIED", f"{repo.name} is a proxy of {repo.config.get('url')} and cannot be pushed to")


def deletion_allowed(ctx: Ctx) -> None:
    if ctx.repo.type == GROUP:
        raise OCIError("UNSUPPORTED", f"repository {ctx.repo.name} is a group; its members hold the content")
    if not ctx.repo.config.get("delete_enabled", True):
        raise OCIError("UNSUPPORTED", f"deletion is disabled in repository {ctx.repo.name}")


# -- reads through proxies and groups ---------------------------------------------------------
def upstream_url(config: Any, path: str) -> str | None:
    """The upstream registry URL of a repository path (see coordinates for the layout)."""
    located = locate(path)
    if located is None:
        return None
    root = str(config["url"]).rstrip("/")
    if root.endswith("/v2"):
        root = root[: -len("/v2")]
    image = located.image
    namespace = str(config.get("default_namespace") or "").strip("/")
    if namespace and "/" not in image:
        image = f"{namespace}/{image}"
    if located.kind == "tags":
        return f"{root}/v2/{quote(image)}/tags/list"
    folder = {"blob": "blobs", "manifest": "manifests", "referrers": "referrers"}[located.kind]
    return f"{root}/v2/{quote(image)}/{folder}/{quote(located.reference, safe=':')}"


def _proxies(eng: Engine, repo: Repo, principal: Principal, seen: frozenset[str] = frozenset()) -> list[Repo]:
    if repo.type == PROXY:
        return [repo]
    if repo.type != GROUP or repo.name in seen:
        return []
    found: list[Repo] = []
    for member in eng.group.members(repo, principal):
        found.extend(_proxies(eng, member, principal, seen | {repo.name}))
    return found


async def prepare_proxies(eng: Engine, repo: Repo, principal: Principal, path: str) -> None:
    """Before a read that may reach upstream: our upstream client, and the upstream URL of `path`."""
    for proxy in _proxies(eng, repo, principal):
        fmt = eng.formats[proxy.format]
        eng.upstreams.get(proxy.id, proxy.config, fmt.upstream_auth)
        url = upstream_url(proxy.config, path)
        if url is None:
            continue
        # Re-remembered every 12 hours: gc forgets links nobody refreshed for a week.
        key = (proxy.id, url, path, int(time.time() // 43200))
        if key in _LINKS_REMEMBERED:
            continue
        await eng.db_call(eng.proxy.remember_upstream, proxy, {path: url})
        _LINKS_REMEMBERED[key] = None
        if len(_LINKS_REMEMBERED) > _LINK_CACHE_SIZE:
            _LINKS_REMEMBERED.popitem(last=False)


async def fetch(ctx: Ctx, path: str, stream: bool, repo: Repo | None = None) -> Content | None:
    repo = repo or ctx.repo
    if repo.type != HOSTED:
        await prepare_proxies(ctx.eng, repo, ctx.principal, path)
    try:
        return await ctx.eng.get(repo, path, ctx.principal, stream=stream)
    except HTTPProblem as problem:
        raise translate(problem) from None
