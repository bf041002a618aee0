"""npm audit, and the upstream calls that search and audit make to proxies.

Audit: reading the repository is needed, as for any read. A proxy (or the first proxy inside a group
the caller may read) forwards the request to its upstream, with the proxy's upstream credentials:
only for a logged-in caller who may read that proxy, and only a bounded body. An upstream that fails
is reported as a 502, never as an empty report (npm would print "found 0 vulnerabilities"). A
repository without a proxy answers an empty report: there is nothing it could know advisories of.
"""

from __future__ import annotations

from typing import Any

import httpx
from artifactory_formats.npm import safejson
from artifactory_formats.npm.httputil import read_body
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import (
    BadGateway,
    HTTPProblem,
    Principal,
    Repo,
    Unauthorized,
    access,
    current_path,
    current_principal,
    current_repository,
    repositories,
)

AUDIT_BODY_LIMIT = 4 * 1024 * 1024  # npm's bulk audit body: {name: [versions]} of one project
AUDIT_ANSWER_LIMIT = 32 * 1024 * 1024
EMPTY_QUICK_AUDIT = {
    "actions": [],
    "advisories": {},
    "muted": [],
    "metadata": {
        "vulnerabilities": {"info": 0, "low": 0, "moderate": 0, "high": 0, "critical": 0},
        "dependencies": 0,
        "devDependencies": 0,
        "optionalDependencies": 0,
        "totalDependencies": 0,
    },
}


def proxies(
    request: Request, repo: Repo, principal: Principal, seen: frozenset[str] = frozenset()
) -> list[Repo]:
    """The repository itself if it is a proxy, else the proxies among a group's members (nested
    groups first member first) that `principal` may read. The engine's index has no way to pass a
    search query or an audit body to an upstream, so these two still ask each proxy here."""
    if repo.type == "proxy":
        return [repo]
    if repo.type != "group" or repo.name in seen:
        return []
    found: list[Repo] = []
    for member in repositories(request).members(repo, principal):
        found += proxies(request, member, principal, seen | {repo.name})
    return found


# -- audit -----------------------------------------------------------------------------------
def upstream_url(repo: Repo, path: str) -> str:
    return str(repo.config["url"]).rstrip("/") + "/" + path


async def upstream_call(
    request: Request, repo: Repo, method: str, path: str, limit: int, **kwargs: Any
) -> tuple[int, bytes]:
    """Ask a proxy's upstream; its status and body, 502 when the body is larger than `limit`."""
    client = repositories(request).upstream_client(repo)
    async with client.stream(method, upstream_url(repo, path), **kwargs) as response:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BadGateway(f"the upstream of {repo.name} answered more than {limit} bytes")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise BadGateway(f"the upstream of {repo.name} answered more than {limit} bytes")
        return response.status_code, bytes(body)


async def audit(request: Request) -> Response:
    """POST /-/npm/v1/security/advisories/bulk and /-/npm/v1/security/audits[/quick]."""
    path = current_path(request)
    repo, principal = current_repository(request), await current_principal(request)
    access(request).require(principal, repo, "read")  # a POST, but a read: the core checks only GET and HEAD
    proxy = next(iter(proxies(request, repo, principal)), None)
    if proxy is None or proxy.config.get("offline"):
        await read_body(request, AUDIT_BODY_LIMIT)
        return JSONResponse({} if path.endswith("advisories/bulk") else EMPTY_QUICK_AUDIT)
    # The upstream is asked with the proxy's credentials: never on behalf of someone unknown.
    if principal.anonymous:
        raise Unauthorized(f"npm audit through {repo.name} needs a logged-in user (npm login)")
    access(request).require(principal, proxy, "read")
    body = await read_body(request, AUDIT_BODY_LIMIT)
    try:
        status, answer = await upstream_call(
            request,
            proxy,
            "POST",
            path,
            AUDIT_ANSWER_LIMIT,
            content=body,
            headers={"Content-Type": request.headers.get("content-type", "application/json")},
        )
    except httpx.HTTPError as exc:
        raise BadGateway(f"the audit service of {proxy.name}'s upstream cannot be reached: {exc}") from None
    if status != 200:
        raise BadGateway(f"the audit service of {proxy.name}'s upstream answered {status}")
    try:
        report = safejson.loads(answer, "the upstream's audit report", max_values=None)
    except HTTPProblem as exc:
        raise BadGateway(exc.message) from None
    if not isinstance(report, dict):
        raise BadGateway("the upstream's audit report is not a JSON object")
    return Response(answer, media_type="application/json")
