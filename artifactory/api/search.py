"""GET /api/v1/search: components with their assets, in repositories the caller may read.

One query shape serves the API and the web UI's search page:
- `q`: part of the name or namespace, ignoring case; with `*` in it, a glob over the whole name
  (`req*` is a prefix search, `*-utils` a suffix search);
- `version`, `format`, `repository` (a group means its members the caller may read): exact;
- `sha256`, `sha1`, `md5`: a digest of any asset of the component;
- `limit` (1..1000, default 200) and `cursor` (the `next` of the previous page): keyset paging in
  (name, id) order, so a page costs the same however deep it is.

An unknown or repeated parameter answers 400: a typo must not silently widen the search.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory.db.models import MAX_INTEGER, Asset, Blob, Component
from artifactory.http.bodies import loads
from artifactory.http.errors import BadRequest
from artifactory.repository.model import GROUP, Repo
from artifactory.security.principal import Principal
from artifactory.state import AppState

PARAMETERS = ("q", "format", "repository", "version", "sha256", "sha1", "md5", "cursor", "limit")
DIGEST_LENGTHS = {"sha256": 64, "sha1": 40, "md5": 32}
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
MAX_TEXT = 255
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class SearchQuery:
    q: str = ""
    format: str = ""
    repository: str = ""
    version: str = ""
    sha256: str = ""
    sha1: str = ""
    md5: str = ""
    after: tuple[str, int] | None = None
    limit: int = DEFAULT_LIMIT

    @property
    def empty(self) -> bool:
        """No criterion at all (the UI shows a form rather than every component)."""
        return not any((self.q, self.format, self.repository, self.version, self.sha256, self.sha1, self.md5))

    def params(self) -> dict[str, str]:
        """The criteria as query parameters (without paging), for links to the next page."""
        names = ("q", "format", "repository", "version", "sha256", "sha1", "md5")
        return {name: getattr(self, name) for name in names if getattr(self, name)}


@dataclass(frozen=True)
class SearchPage:
    items: list[dict[str, Any]]
    next: str | None


def parse_query(params: Any, default_limit: int = DEFAULT_LIMIT) -> SearchQuery:
    """Check query parameters (a Starlette QueryParams or a multi-dict); BadRequest naming the problem."""
    names = [key for key, _ in params.multi_items()]
    unknown = sorted(set(names) - set(PARAMETERS))
    if unknown:
        raise BadRequest(f"unknown search parameter {unknown[0]!r}; known: {', '.join(PARAMETERS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BadRequest(f"search parameter {repeated[0]!r} is given more than once")
    values = {key: value.strip() for key, value in params.multi_items()}
    for key in ("q", "format", "repository", "version"):
        if len(values.get(key, "")) > MAX_TEXT:
            raise BadRequest(f"{key} is longer than {MAX_TEXT} characters")
    digests = {}
    for algorithm, length in DIGEST_LENGTHS.items():
        value = values.get(algorithm, "").lower()
        if value and (len(value) != length or not _HEX.match(value)):
            raise BadRequest(f"{algorithm} must be {length} hexadecimal digits")
        digests[algorithm] = value
    try:
        limit = int(values.get("limit") or default_limit)
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    return SearchQuery(
        q=values.get("q", ""),
        format=values.get("format", ""),
        repository=values.get("repository", ""),
        version=values.get("version", ""),
        after=decode_cursor(values["cursor"]) if values.get("cursor") else None,
        limit=max(1, min(limit, MAX_LIMIT)),
        **digests,
    )


def encode_cursor(name: str, component_id: int) -> str:
    raw = json.dumps([name, component_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, component_id = loads(raw, "the cursor")  # InvalidJSON is a ValueError
        if isinstance(name, str) and isinstance(component_id, int) and not isinstance(component_id, bool):
            return name, max(0, min(component_id, MAX_INTEGER))
    except (binascii.Error, ValueError, TypeError):
        pass
    raise BadRequest("cursor is not one this server handed out (use the `next` of a previous page)")


def name_condition(column: Any, q: str) -> Any:
    """`q` as a case-insensitive LIKE: a substring, or with `*` a glob over the whole value."""
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = escaped.replace("*", "%") if "*" in q else f"%{escaped}%"
    return func.lower(column).like(pattern, escape="\\")


def readable_repositories(
    state: AppState, principal: Principal, repository: str = "", fmt: str = ""
) -> dict[int, Repo]:
    """The hosted and proxy repositories to search: {id: Repo}, only those the caller may read.

    A group named by `repository` stands for its members (nested groups included) that the caller may
    read, and only if the caller may read the group itself.
    """
    security = state.security
    if repository:
        repo = state.engine.repos.get(repository)
        if repo is None or not security.allowed(principal, repo.name, "read"):
            return {}
        # The engine's walk: the members as the group's readers read them, each checked.
        candidates = state.engine.group.leaves(repo, principal)
    else:
        candidates = [
            r
            for r in state.engine.repos.all()
            if r.type != GROUP and security.allowed(principal, r.name, "read")
        ]
    return {r.id: r for r in candidates if not fmt or r.format == fmt}


def run_search(state: AppState, principal: Principal, query: SearchQuery) -> SearchPage:
    """The page of components matching `query` that `principal` may read (blocking: run in a thread)."""
    repos = readable_repositories(state, principal, query.repository, query.format)
    if not repos:
        return SearchPage([], None)
    every = len(repos) == sum(1 for r in state.engine.repos.all() if r.type != GROUP)
    with state.db.read() as session:
        statement = select(Component.id, Component.repository_id, Component.namespace, Component.name)
        if not every:
            # Without this condition an index on component.name serves the (name, id) order and
            # the query stops at the page's end; with it, matches are gathered and sorted.
            statement = statement.where(Component.repository_id.in_(list(repos)))
        if query.q:
            statement = statement.where(
                or_(name_condition(Component.name, query.q), name_condition(Component.namespace, query.q))
            )
        if query.version:
            statement = statement.where(Component.version == query.version)
        digest_ids = _components_with_digests(session, query, list(repos))
        if digest_ids is not None:
            if not digest_ids:
                return SearchPage([], None)
            statement = statement.where(Component.id.in_(digest_ids))
        if query.after is not None:
            name, last_id = query.after
            statement = statement.where(
                or_(Component.name > name, and_(Component.name == name, Component.id > last_id))
            )
        rows = list(session.execute(statement.order_by(Component.name, Component.id).limit(query.limit + 1)))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = describe(session, repos, [row.id for row in rows])
    last = rows[-1] if rows else None
    return SearchPage(items, encode_cursor(last.name, last.id) if more and last is not None else None)


def _components_with_digests(
    session: Session, query: SearchQuery, repository_ids: list[int]
) -> list[int] | None:
    """Ids of components with an asset of the given digests (None: no digest was asked for).

    Found from the digest side first (blob.sha256 is the key, and asset.blob_sha256 is indexed), so
    a checksum search never walks the component table.
    """
    wanted = {a: getattr(query, a) for a in DIGEST_LENGTHS if getattr(query, a)}
    if not wanted:
        return None
    blobs = select(Blob.sha256)
    for algorithm, value in wanted.items():
        blobs = blobs.where(getattr(Blob, algorithm) == value)
    # The blobs first (a handful at most), then their assets by the indexed asset.blob_sha256.
    digests = list(session.scalars(blobs.limit(100)))
    if not digests:
        return []
    statement = select(Asset.component_id).where(
        Asset.blob_sha256.in_(digests),
        Asset.component_id.is_not(None),
        Asset.repository_id.in_(repository_ids),
    )
    return sorted({cid for (cid,) in session.execute(statement.distinct().limit(10_000)) if cid is not None})


def describe(session: Session, repos: Mapping[int, Repo], component_ids: list[int]) -> list[dict[str, Any]]:
    """The API's JSON items for these components, in the given order, with every asset (two queries)."""
    if not component_ids:
        return []
    components = {c.id: c for c in session.scalars(select(Component).where(Component.id.in_(component_ids)))}
    assets: dict[int, list[dict[str, Any]]] = {}
    rows = session.execute(
        select(
            Asset.component_id,
            Asset.path,
            Asset.blob_sha256,
            Asset.content_type,
            Asset.updated_at,
            Blob.size,
            Blob.sha1,
            Blob.md5,
        )
        .join(Blob, Blob.sha256 == Asset.blob_sha256)
        .where(Asset.component_id.in_(component_ids))
        .order_by(Asset.path)
    )
    for row in rows:
        assets.setdefault(row.component_id, []).append(
            {
                "path": row.path,
                "sha256": row.blob_sha256,
                "sha1": row.sha1,
                "md5": row.md5,
                "size": row.size,
                "content_type": row.content_type,
                "updated_at": row.updated_at.isoformat() if row.updated_at else None,
            }
        )
    found = []
    for cid in component_ids:
        component = components.get(cid)
        if component is None:
            continue
        repo = repos[component.repository_id]
        found.append(
            {
                "repository": repo.name,
                "format": repo.format,
                "namespace": component.namespace,
                "name": component.name,
                "version": component.version,
                "created_at": component.created_at.isoformat() if component.created_at else None,
                "assets": assets.get(cid, []),
            }
        )
    return found


async def search(request: Request) -> Response:
    state: AppState = request.scope["artifactory.state"]
    principal = await state.principal(request)
    query = parse_query(request.query_params)
    page = await to_thread.run_sync(run_search, state, principal, query)
    return JSONResponse({"items": page.items, "next": page.next})
