"""npm search and npm audit.

Search: a hosted repository searches its own packages (an index built from its components, cached
per revision); a proxy asks its upstream; a group combines its members, first member first.
Audit: reading the repository is needed, as for any read. A proxy (or the first proxy inside a group
the caller may read) forwards the request to its upstream, with the proxy's upstream credentials:
only for a logged-in caller who may read that proxy, and only a bounded body. An upstream that fails
is reported as a 502, never as an empty report (npm would print "found 0 vulnerabilities"). A
repository without a proxy answers an empty report: there is nothing it could know advisories of.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
from artifactory_formats.npm import metadata, safejson
from artifactory_formats.npm.httputil import read_body
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import (
    BadGateway,
    ComponentInfo,
    HTTPProblem,
    Principal,
    Repo,
    Unauthorized,
    current_path,
    current_principal,
    current_repository,
    engine,
)

MAX_SEARCH_SIZE = 250
AUDIT_BODY_LIMIT = 4 * 1024 * 1024  # npm's bulk audit body: {name: [versions]} of one project
AUDIT_ANSWER_LIMIT = 32 * 1024 * 1024
SEARCH_ANSWER_LIMIT = 8 * 1024 * 1024
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


# -- search ----------------------------------------------------------------------------------
def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value))) if value is not None else default
    except ValueError:
        return default


def index_entries(components: Sequence[ComponentInfo]) -> list[dict[str, Any]]:
    """One search entry per package, describing its highest version."""
    packages: dict[tuple[str, str], list[ComponentInfo]] = {}
    for component in components:
        packages.setdefault((component.namespace, component.name), []).append(component)
    entries = []
    for (namespace, name), versions in sorted(packages.items()):
        by_version = {c.version: c for c in versions}
        best = metadata.highest(by_version) or versions[-1].version
        chosen = by_version[best]
        attributes = chosen.attributes
        publisher = str(attributes.get("publisher") or "")
        keywords = attributes.get("keywords")
        entries.append(
            {
                "name": f"{namespace}/{name}" if namespace else name,
                "scope": namespace[1:] if namespace else "unscoped",
                "version": best,
                "description": str(attributes.get("description") or ""),
                "keywords": keywords if isinstance(keywords, list) else [],
                "date": str(attributes.get("date") or chosen.created_at.isoformat()),
                "links": {},
                "publisher": {"username": publisher},
                "maintainers": [{"username": publisher}] if publisher else [],
            }
        )
    return entries


def score(entry: dict[str, Any], terms: Sequence[str]) -> float:
    """0 unless every term matches; name matches weigh most, then keywords, then the description."""
    total = 0.0
    name = entry["name"].lower()
    keywords = [str(k).lower() for k in entry["keywords"]]
    description = entry["description"].lower()
    for term in terms:
        if term.startswith("keywords:"):
            wanted = term.split(":", 1)[1]
            if wanted not in keywords:
                return 0.0
            total += 3
        elif term.startswith("scope:"):
            if entry["scope"] != term.split(":", 1)[1].lstrip("@"):
                return 0.0
            total += 1
        elif term == name:
            total += 10
        elif term in name:
            total += 5
        elif any(term in keyword for keyword in keywords):
            total += 3
        elif term in description:
            total += 1
        else:
            return 0.0
    return total or 1.0


def search_object(entry: dict[str, Any], value: float) -> dict[str, Any]:
    detail = {"quality": 1.0, "popularity": 1.0, "maintenance": 1.0}
    return {"package": entry, "score": {"final": value, "detail": detail}, "searchScore": value, "flags": {}}


async def hosted_results(request: Request, repo: Repo, terms: Sequence[str]) -> list[dict[str, Any]]:
    eng = engine(request)

    async def build() -> bytes:
        return json.dumps(index_entries(await eng.components(repo))).encode()

    body, _ = await eng.document(repo, "npm:search-index", build)
    scored = [(score(entry, terms), entry) for entry in json.loads(body)]
    scored = [item for item in scored if item[0] > 0]
    scored.sort(key=lambda item: (-item[0], item[1]["name"]))
    return [search_object(entry, value) for value, entry in scored]


async def proxy_results(request: Request, repo: Repo, text: str, wanted: int) -> list[dict[str, Any]]:
    try:
        status, body = await upstream_call(
            request,
            repo,
            "GET",
            "-/v1/search",
            SEARCH_ANSWER_LIMIT,
            params={"text": text, "size": wanted, "from": 0},
        )
        answer = safejson.loads(body, "the upstream's search answer") if status == 200 else None
    except (httpx.HTTPError, BadGateway, HTTPProblem):
        return []
    objects = answer.get("objects") if isinstance(answer, dict) else None
    return (
        [o for o in objects if isinstance(o, dict) and isinstance(o.get("package"), dict)]
        if isinstance(objects, list)
        else []
    )


async def results(
    request: Request, repo: Repo, principal: Principal, text: str, wanted: int, seen: frozenset[str]
) -> list[dict[str, Any]]:
    if repo.type == "hosted":
        return await hosted_results(request, repo, text.lower().split())
    if repo.type == "proxy":
        return await proxy_results(request, repo, text, wanted)
    combined: dict[str, dict[str, Any]] = {}
    for member in engine(request).group.members(repo, principal):
        if member.name in seen:
            continue
        for item in await results(request, member, principal, text, wanted, seen | {repo.name}):
            combined.setdefault(str(item["package"].get("name")), item)
    return list(combined.values())


async def search(request: Request) -> Response:
    repo = current_repository(request)
    text = request.query_params.get("text", "")
    size = _int(request.query_params.get("size"), 20, 0, MAX_SEARCH_SIZE)
    start = _int(request.query_params.get("from"), 0, 0, 10_000)
    found = await results(request, repo, await current_principal(request), text, start + size, frozenset())
    return JSONResponse(
        {"objects": found[start : start + size], "total": len(found), "time": metadata.now_iso()}
    )


# -- audit -----------------------------------------------------------------------------------
def upstream_client(request: Request, repo: Repo) -> httpx.AsyncClient:
    eng = engine(request)
    return eng.upstreams.get(repo.id, repo.config, eng.formats[repo.format].upstream_auth)


def upstream_url(repo: Repo, path: str) -> str:
    return str(repo.config["url"]).rstrip("/") + "/" + path


async def upstream_call(
    request: Request, repo: Repo, method: str, path: str, limit: int, **kwargs: Any
) -> tuple[int, bytes]:
    """Ask a proxy's upstream; its status and body, 502 when the body is larger than `limit`."""
    client = upstream_client(request, repo)
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


def first_proxy(
    request: Request, repo: Repo, principal: Principal, seen: frozenset[str] = frozenset()
) -> Repo | None:
    """The repository itself if it is a proxy, else the first proxy member (nested groups first
    member first) that `principal` may read."""
    if repo.type == "proxy":
        return repo
    if repo.type != "group" or repo.name in seen:
        return None
    for member in engine(request).group.members(repo, principal):
        found = first_proxy(request, member, principal, seen | {repo.name})
        if found is not None:
            return found
    return None


async def audit(request: Request) -> Response:
    """POST /-/npm/v1/security/advisories/bulk and /-/npm/v1/security/audits[/quick]."""
    path = current_path(request)
    repo, eng = current_repository(request), engine(request)
    principal = await current_principal(request)
    eng.require(principal, repo, "read")  # a POST, but a read: the core checks only GET and HEAD
    proxy = first_proxy(request, repo, principal)
    if proxy is None or proxy.config.get("offline"):
        await read_body(request, AUDIT_BODY_LIMIT)
        return JSONResponse({} if path.endswith("advisories/bulk") else EMPTY_QUICK_AUDIT)
    # The upstream is asked with the proxy's credentials: never on behalf of someone unknown.
    if principal.anonymous:
        raise Unauthorized(f"npm audit through {repo.name} needs a logged-in user (npm login)")
    eng.require(principal, proxy, "read")
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
