"""Where a project's files come from, for each kind of repository.

- hosted: the components and the per-file facts stored at upload, plus the yank marks; rebuilt when
  that project's generation document changes (every upload, deletion and yank writes a new one),
  which each process checks once per repository revision.
- proxy: the upstream's page as the engine caches it (revalidated after the metadata TTL), asked for
  as pip and uv ask (PEP 691 JSON by `Accept`, see format.UPSTREAM_ACCEPT) and parsed once per
  distinct body; each file's absolute upstream URL, and the digests the page publishes for it, are
  recorded with the engine just before the file is first fetched, so the engine fetches it from there
  (files often live on another host) and caches nothing that does not match.
- group: the members' views merged in member order (first member wins per filename); while a hosted
  member holds the project, proxy members are left out (the engine's dependency-confusion guard,
  unless the group sets allow_proxy_shadowing), so a page never lists a file the group would not serve.
  Like the engine's guard, this looks at every hosted member, whether the caller may read it or not:
  a caller who may not read the hosted member that holds a project gets neither its files nor the
  proxies' (404), never the public lookalike.

Each view comes with an identity string that changes whenever what it was built from changes; rendered
documents are cached under it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from artifactory_formats.pypi import metadata
from artifactory_formats.pypi.coordinates import (
    METADATA_SUFFIX,
    SIMPLE,
    file_path,
    generation_path,
    metadata_path,
    page_path,
    split_file_path,
    yanked_path,
)
from artifactory_formats.pypi.metadata import Project

from artifactory.plugin import BadGateway, ComponentInfo, Engine, Principal, Repo, StoredAsset

log = logging.getLogger(__name__)
HOSTED, PROXY, GROUP = "hosted", "proxy", "group"
MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_YANK_DOCUMENT = 4 * 1024 * 1024
MODEL_MAX_AGE = 600.0
# Digests the engine's proxy can verify a fetched file against (hex, as a page publishes them).
VERIFIABLE = ("sha256", "sha512", "sha1", "md5")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def put(self, key: K, value: V) -> V:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


_EMPTY = Project(name="", files=(), versions=())
_hosted: Lru[tuple[int, str, str], tuple[float, Project]] = Lru(1024)
_generations: Lru[tuple[int, str], tuple[int, str]] = Lru(100_000)
_hosted_roots: Lru[tuple[int, int], list[str]] = Lru(64)
_proxied: Lru[tuple[int, str, str], Project] = Lru(1024)
_proxied_roots: Lru[tuple[int, str], list[str]] = Lru(16)
_remembered: Lru[tuple[int, str, str, str, int], bool] = Lru(100_000)
_verified: Lru[tuple[int, str, str], bool] = Lru(100_000)
SYSTEM = Principal(username="system:pypi", roles=frozenset({"admin"}))


def upstream_index(repo: Repo) -> str:
    url = str(repo.config["url"])
    return url if url.endswith("/") else url + "/"


def upstream_page(repo: Repo, project: str) -> str:
    return upstream_index(repo) + quote(project) + "/"


def every_leaf(eng: Engine, repo: Repo, seen: frozenset[str] = frozenset()) -> list[Repo]:
    """Every hosted and proxy repository behind `repo`, whoever asks (the guard must not depend on it)."""
    if repo.type != GROUP:
        return [repo]
    found: list[Repo] = []
    for name in repo.members:
        member = eng.repos.get(name)
        if member is None or member.name in seen or member.name == repo.name:
            continue
        for leaf in every_leaf(eng, member, seen | {repo.name}):
            if all(leaf.name != other.name for other in found):
                found.append(leaf)
    return found


def leaves(eng: Engine, repo: Repo, principal: Principal, seen: frozenset[str] = frozenset()) -> list[Repo]:
    """The hosted and proxy repositories behind `repo`, in member order, readable by `principal`."""
    if repo.type != GROUP:
        return [repo]
    found: list[Repo] = []
    for member in eng.group.members(repo, principal):
        if member.name in seen or member.name == repo.name:
            continue
        for leaf in leaves(eng, member, principal, seen | {repo.name}):
            if all(leaf.name != other.name for other in found):
                found.append(leaf)
    return found


def verifiable(hashes: Mapping[str, str] | None) -> dict[str, str]:
    return {name: value for name in VERIFIABLE if hashes and (value := hashes.get(name))}


async def remember(
    eng: Engine, repo: Repo, links: dict[str, str], digests: dict[str, dict[str, str]] | None = None
) -> None:
    """Record the upstream URL of each path and the digests its page publishes for it, which the
    engine's proxy verifies the fetched bytes against (once per process; the engine keeps them in
    the database)."""
    digests = digests or {}

    half_day = int(time.time() // 43200)  # re-remembered twice a day: gc forgets links unused for a week

    def key(path: str, url: str) -> tuple[int, str, str, str, int]:
        return (repo.id, path, url, json.dumps(digests.get(path, {}), sort_keys=True), half_day)

    fresh = {path: url for path, url in links.items() if key(path, url) not in _remembered}
    if not fresh:
        return
    declared = {path: digests[path] for path in fresh if digests.get(path)}
    await eng.db_call(eng.proxy.remember_upstream, repo, fresh, declared)
    for path, url in fresh.items():
        _remembered.put(key(path, url), True)


# -- hosted -----------------------------------------------------------------------------------
async def _yanked(eng: Engine, repo: Repo, project: str) -> dict[str, Any]:
    asset = await eng.db_call(eng.lookup, repo, yanked_path(project))
    if asset is None:
        return {}
    data = json.loads(await eng.read_bytes(asset.sha256, MAX_YANK_DOCUMENT))
    return data if isinstance(data, dict) else {}


async def touch(eng: Engine, repo: Repo, project: str) -> None:
    """Mark a hosted project changed (after an upload, a deletion, a yank): every process rebuilds
    that project's pages on its next read, and only that project's."""
    await eng.update_document(
        repo, generation_path(project), lambda old: uuid.uuid4().hex.encode(), SYSTEM, "text/plain"
    )


async def _generation(eng: Engine, repo: Repo, project: str) -> str:
    """The project's generation, looked up once per repository revision (the hot path reads none)."""
    key = (repo.id, project)
    seen = _generations.get(key)
    if seen is not None and seen[0] == repo.revision:
        return seen[1]
    asset = await eng.db_call(eng.lookup, repo, generation_path(project))
    generation = asset.sha256[:16] if asset is not None else "-"
    _generations.put(key, (repo.revision, generation))
    return generation


async def hosted_view(eng: Engine, repo: Repo, project: str) -> tuple[Project | None, str]:
    """A hosted project, rebuilt only when that project changed (or after MODEL_MAX_AGE, a bound on
    staleness should a writer die between storing a file and marking its project changed)."""
    generation = await _generation(eng, repo, project)
    key = (repo.id, project, generation)
    cached = _hosted.get(key)
    now = time.monotonic()
    if cached is None or now - cached[0] > MODEL_MAX_AGE:
        components = await eng.components(repo, name=project)
        built = metadata.hosted_project(components, await _yanked(eng, repo, project)) if components else None
        cached = _hosted.put(key, (now, built or _EMPTY))
    project_view = cached[1]
    return (project_view if project_view.files else None), f"h{repo.id}:{generation}:{cached[0]:.3f}"


async def hosted(eng: Engine, repo: Repo, project: str) -> Project | None:
    return (await hosted_view(eng, repo, project))[0]


async def hosted_names(eng: Engine, repo: Repo) -> list[str]:
    key = (repo.id, repo.revision)
    cached = _hosted_roots.get(key)
    if cached is None:
        projects: dict[str, list[ComponentInfo]] = {}
        for component in await eng.components(repo):
            if component.assets:
                projects.setdefault(component.name, []).append(component)
        names = [metadata.display_name(found) for found in projects.values()]
        cached = _hosted_roots.put(key, metadata.root_names(names))
    return cached


# -- proxy ------------------------------------------------------------------------------------
async def _upstream_document(
    eng: Engine, repo: Repo, path: str, url: str, principal: Principal
) -> StoredAsset | None:
    await remember(eng, repo, {path: url})
    content = await eng.get(repo, path, principal, stream=False)
    return content if isinstance(content, StoredAsset) else None


async def proxied(eng: Engine, repo: Repo, project: str, principal: Principal) -> tuple[Project | None, str]:
    url = upstream_page(repo, project)
    asset = await _upstream_document(eng, repo, page_path(project), url, principal)
    if asset is None:
        return None, f"p{repo.id}:-"
    key = (repo.id, project, asset.sha256)
    cached = _proxied.get(key)
    if cached is None:
        body = await eng.read_bytes(asset.sha256, MAX_PAGE_BYTES)
        page_url = str(asset.attributes.get("proxy", {}).get("url") or url)
        try:
            parsed = await eng.db_call(metadata.parse_upstream, body, page_url, project)
        except (ValueError, TypeError) as exc:
            raise BadGateway(
                f"the upstream page of {project} in {repo.name} is not a simple index page: {exc}"
            ) from None
        cached = _proxied.put(key, parsed)
    return (cached if cached.files else None), f"p{repo.id}:{asset.sha256}"


async def proxied_names(eng: Engine, repo: Repo, principal: Principal) -> tuple[list[str], str]:
    asset = await _upstream_document(eng, repo, SIMPLE, upstream_index(repo), principal)
    if asset is None:
        return [], f"p{repo.id}:-"
    key = (repo.id, asset.sha256)
    cached = _proxied_roots.get(key)
    if cached is None:
        body = await eng.read_bytes(asset.sha256, MAX_PAGE_BYTES)
        try:
            names = await eng.db_call(metadata.parse_upstream_root, body)
        except (ValueError, TypeError) as exc:
            raise BadGateway(f"the upstream root index of {repo.name} cannot be parsed: {exc}") from None
        cached = _proxied_roots.put(key, metadata.root_names(names))
    return cached, f"p{repo.id}:{asset.sha256}"


# -- any repository ---------------------------------------------------------------------------
async def _shadowed(eng: Engine, repo: Repo, project: str) -> bool:
    """Whether proxy members are left out for `project`: a hosted member holds it, be it one the
    caller may read or not (the engine's dependency-confusion guard, for documents)."""
    if repo.type != GROUP or repo.config.get("allow_proxy_shadowing", False):
        return False
    everything = every_leaf(eng, repo)
    if not any(member.type == PROXY for member in everything):
        return False
    for member in everything:
        if member.type == HOSTED and await hosted(eng, member, project) is not None:
            return True
    return False


async def project_view(
    eng: Engine, repo: Repo, project: str, principal: Principal
) -> tuple[Project | None, str]:
    if repo.type == HOSTED:
        return await hosted_view(eng, repo, project)
    members = leaves(eng, repo, principal)
    shadowed = await _shadowed(eng, repo, project)
    found: list[Project] = []
    # The guard's answer is part of what the page is built from (it may come from a hosted member
    # this caller cannot read, whose generation is not among the identities below).
    identity: list[str] = [f"guard:{int(shadowed)}"]
    for member in members:
        if member.type == HOSTED:
            view, seen = await hosted_view(eng, member, project)
            identity.append(seen)
        elif member.type == PROXY and not shadowed:
            try:
                view, seen = await proxied(eng, member, project, principal)
            except BadGateway as exc:
                if repo.type == PROXY:
                    raise
                log.warning("group %s: member %s skipped: %s", repo.name, member.name, exc)
                continue
            identity.append(seen)
        else:
            continue
        if view is not None:
            found.append(view)
    return metadata.merge(found), "|".join(identity)


async def root_view(eng: Engine, repo: Repo, principal: Principal) -> tuple[list[str], str]:
    if repo.type == HOSTED:
        return await hosted_names(eng, repo), f"h{repo.id}:{repo.revision}"
    names: list[str] = []
    identity: list[str] = []
    for member in leaves(eng, repo, principal):
        if member.type == HOSTED:
            names += await hosted_names(eng, member)
            identity.append(f"h{member.id}:{member.revision}")
        elif member.type == PROXY:
            try:
                found, seen = await proxied_names(eng, member, principal)
            except BadGateway as exc:
                if repo.type == PROXY:
                    raise
                log.warning("group %s: member %s skipped: %s", repo.name, member.name, exc)
                continue
            names += found
            identity.append(seen)
    return metadata.root_names(names), "|".join(identity)


async def link_file(eng: Engine, repo: Repo, path: str, principal: Principal) -> None:
    """Before a proxy or group fetches a file it does not hold yet, record the file's upstream URL
    (read from the project page) with the first proxy member that lists it."""
    parts = split_file_path(path)
    if parts is None:
        return
    project, filename = parts
    base = filename.removesuffix(METADATA_SUFFIX)
    members = leaves(eng, repo, principal)
    shadowed: bool | None = None
    for member in members:
        if await eng.db_call(eng.lookup, member, path) is not None:
            return
        if member.type != PROXY:
            continue
        if shadowed is None:
            shadowed = await _shadowed(eng, repo, project)
        if shadowed:
            return
        try:
            view, _ = await proxied(eng, member, project, principal)
        except BadGateway:
            continue
        entry = view.file(base) if view is not None else None
        if entry is None or entry.upstream_url is None:
            continue
        links = {file_path(project, base): entry.upstream_url}
        digests = {file_path(project, base): verifiable(entry.hashes)}
        if entry.core_metadata is not None:
            links[metadata_path(project, base)] = entry.upstream_url + METADATA_SUFFIX
            digests[metadata_path(project, base)] = verifiable(entry.core_metadata)
        await remember(eng, member, links, digests)
        return


async def verify_cached(eng: Engine, path: str, content: StoredAsset, principal: Principal) -> None:
    """A proxied file served from the cache must have the digest its upstream page published; one that
    does not is dropped from the cache (502), so the next request fetches it again."""
    member = eng.repos.get(content.repository)
    parts = split_file_path(path)
    if member is None or member.type != PROXY or parts is None:
        return
    key = (member.id, path, content.sha256)
    if key in _verified:
        return
    project, filename = parts
    try:
        view, _ = await proxied(eng, member, project, principal)
    except BadGateway:
        return  # the page is unavailable: nothing to check against
    entry = view.file(filename.removesuffix(METADATA_SUFFIX)) if view is not None else None
    if entry is not None:
        hashes = entry.core_metadata if filename.endswith(METADATA_SUFFIX) else entry.hashes
        expected = (hashes or {}).get("sha256")
        if expected and expected != content.sha256:
            await eng.delete(member, path, SYSTEM)
            raise BadGateway(
                f"{path} from the upstream of {member.name} does not match the sha256 its index page "
                f"publishes ({expected}); removed from the cache"
            )
    _verified.put(key, True)
