"""npm search (`/-/v1/search`).

The packages of hosted repositories are indexed through the engine (`SEARCH_KEY`, a whole-repository
document: one entry per package, rebuilt on each change, merged across a group's hosted members by
the engine); each proxy the caller may read (the engine's `Repositories.proxies`) asks its upstream
with the query (`Repositories.call_upstream`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from artifactory_formats.npm import metadata
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.plugin import (
    ComponentInfo,
    HTTPProblem,
    IndexKey,
    Principal,
    Repo,
    access,
    current_principal,
    current_repository,
    loads,
    repositories,
)

SEARCH_KEY = IndexKey("search", whole_repository=True)
MAX_SEARCH_SIZE = 250
SEARCH_ANSWER_LIMIT = 8 * 1024 * 1024


# -- the hosted index ----------------------------------------------------------------------------------
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


async def hosted_results(
    request: Request, repo: Repo, principal: Principal, terms: Sequence[str]
) -> list[dict[str, Any]]:
    """Matches among the packages hosted in `repo` (every hosted member of a group, through the
    engine's index: the entries are built once per repository revision)."""
    entries = await repositories(request).index_model(repo, SEARCH_KEY, principal) or []
    scored = [(score(entry, terms), entry) for entry in entries]
    scored = [item for item in scored if item[0] > 0]
    scored.sort(key=lambda item: (-item[0], item[1]["name"]))
    return [search_object(entry, value) for value, entry in scored]


async def proxy_results(request: Request, proxy: Repo, text: str, wanted: int) -> list[dict[str, Any]]:
    """What `proxy`'s upstream finds for `text`; nothing when it fails (search is best effort)."""
    params = {"text": text, "size": wanted, "from": 0}
    try:
        answer = await repositories(request).call_upstream(
            proxy, "GET", "-/v1/search", SEARCH_ANSWER_LIMIT, params=params
        )
        found = (
            loads(answer.body, "the upstream's search answer", allow_nul=True)
            if answer.status == 200
            else None
        )
    except HTTPProblem:
        return []
    objects = found.get("objects") if isinstance(found, dict) else None
    return (
        [o for o in objects if isinstance(o, dict) and isinstance(o.get("package"), dict)]
        if isinstance(objects, list)
        else []
    )


async def search(request: Request) -> Response:
    """Hosted packages first (the engine's merge of every hosted member), then what each proxy the
    caller may read finds upstream; a name found twice keeps its first entry."""
    repo, principal = current_repository(request), await current_principal(request)
    access(request).require(principal, repo, "read")
    text = request.query_params.get("text", "")
    size = _int(request.query_params.get("size"), 20, 0, MAX_SEARCH_SIZE)
    start = _int(request.query_params.get("from"), 0, 0, 10_000)
    combined: dict[str, dict[str, Any]] = {}
    found = await hosted_results(request, repo, principal, text.lower().split())
    for proxy in repositories(request).proxies(repo, principal):
        found += await proxy_results(request, proxy, text, start + size)
    for item in found:
        combined.setdefault(str(item["package"].get("name")), item)
    objects = list(combined.values())
    return JSONResponse(
        {"objects": objects[start : start + size], "total": len(objects), "time": metadata.now_iso()}
    )


def merge_entries(models: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Members' entries, one per package name: the first member's wins."""
    merged: dict[str, dict[str, Any]] = {}
    for entries in models:
        for entry in entries:
            merged.setdefault(entry["name"], entry)
    return sorted(merged.values(), key=lambda entry: entry["name"])
