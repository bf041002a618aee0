"""What every /v2/<name>/... handler starts with: the parsed name, the caller, the repository and
the permission check (with the Bearer challenge a docker client needs to fetch a token). Reads go
through the engine's repository service, which walks groups and fetches through proxies (see
upstream.py for how a proxy reaches a registry's /v2/ layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from artifactory_formats.oci.auth import ACTION_OF, TokenPrincipal, challenge, scope_for
from artifactory_formats.oci.coordinates import Name, parse_name
from artifactory_formats.oci.errors import OCIError, translate
from starlette.requests import Request

from artifactory.plugin import (
    Content,
    HTTPProblem,
    MethodNotAllowed,
    Principal,
    Repo,
    Repositories,
    Unauthorized,
    access,
    base_url,
    repositories,
)

OCI = "oci"


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
        return await access(request).principal(request)
    except Unauthorized as problem:
        raise unauthorized(request, problem.message) from None
    except HTTPProblem as problem:
        raise translate(problem) from None


@dataclass
class Ctx:
    request: Request
    repos: Repositories
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
    return access(request).allowed(principal, name.repository, action)


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
    if access(request).allowed(principal, name.repository, action):
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
    repos = repositories(request)
    repo = repos.find(parsed.repository)
    if repo is None or repo.format != OCI:
        raise OCIError("NAME_UNKNOWN", f"repository {parsed.repository!r} not found", detail={"name": name})
    return Ctx(request, repos, principal, parsed, repo)


def push_target(ctx: Ctx) -> Repo:
    """Where a push goes: the repository it names, which must be one the engine writes to itself.
    A push names the repository its image lives in, so a group is refused even with a write member
    (a registry token scoped to the group would not cover the member); the refusal says where to
    push instead."""
    repo = ctx.repo
    try:
        target = ctx.repos.write_target(repo, ctx.principal)
    except MethodNotAllowed as refused:
        raise OCIError("DENIED", refused.message) from None
    if target.name != repo.name:
        raise OCIError("DENIED", f"{repo.name} is a group and cannot be pushed to: push to {target.name}")
    if repo.write_policy == "deny":
        raise OCIError("DENIED", f"repository {repo.name} is read-only (write policy deny)")
    return repo


def deletion_allowed(ctx: Ctx) -> None:
    if not ctx.repo.config.get("delete_enabled", True):
        raise OCIError("UNSUPPORTED", f"deletion is disabled in repository {ctx.repo.name}")


async def fetch(ctx: Ctx, path: str, stream: bool, repo: Repo | None = None) -> Content | None:
    """A file of `repo` (default: the request's), through its proxy or its group's members."""
    try:
        return await ctx.repos.get(repo or ctx.repo, path, ctx.principal, stream=stream)
    except HTTPProblem as problem:
        raise translate(problem) from None
