"""npm audit.

Reading the repository is needed, as for any read. A proxy (or the first proxy inside a group the
caller may read, found by the engine's `Repositories.proxies`) forwards the request to its upstream
through `Repositories.call_upstream`, with the proxy's upstream credentials: only for a logged-in
caller who may read that proxy, and only a bounded body. An upstream that fails is reported as a
502, never as an empty report (npm would print "found 0 vulnerabilities"). A repository without an
online proxy answers an empty report: there is nothing it could know advisories of.
"""

from __future__ import annotations

from artifactory_formats.npm.httputil import read_body
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import (
    BadGateway,
    HTTPProblem,
    Unauthorized,
    access,
    current_path,
    current_principal,
    current_repository,
    loads,
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


async def audit(request: Request) -> Response:
    """POST /-/npm/v1/security/advisories/bulk and /-/npm/v1/security/audits[/quick]."""
    path = current_path(request)
    repo, principal = current_repository(request), await current_principal(request)
    access(request).require(principal, repo, "read")  # a POST, but a read: the core checks only GET and HEAD
    service = repositories(request)
    proxy = next(iter(service.proxies(repo, principal)), None)
    if proxy is None:
        await read_body(request, AUDIT_BODY_LIMIT)
        return JSONResponse({} if path.endswith("advisories/bulk") else EMPTY_QUICK_AUDIT)
    # The upstream is asked with the proxy's credentials: never on behalf of someone unknown.
    if principal.anonymous:
        raise Unauthorized(f"npm audit through {repo.name} needs a logged-in user (npm login)")
    access(request).require(principal, proxy, "read")
    body = await read_body(request, AUDIT_BODY_LIMIT)
    content_type = request.headers.get("content-type", "application/json")
    answer = await service.call_upstream(
        proxy, "POST", path, AUDIT_ANSWER_LIMIT, content=body, headers={"Content-Type": content_type}
    )
    if answer.status != 200:
        raise BadGateway(f"the audit service of {proxy.name}'s upstream answered {answer.status}")
    try:
        report = loads(answer.body, "the upstream's audit report", max_values=None, allow_nul=True)
    except HTTPProblem as exc:
        raise BadGateway(exc.message) from None
    if not isinstance(report, dict):
        raise BadGateway("the upstream's audit report is not a JSON object")
    return Response(answer.body, media_type="application/json")
