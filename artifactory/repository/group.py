"""Group repositories: ordered members, written once for every format.

Files come from the first member that has them (index documents are merged by the engine's index,
`index.py`, which uses the same members and guard). Members the caller may not read are skipped. The
dependency-confusion guard: a component name that a hosted member holds is never served from a proxy
member, unless the group's config allows it. The guard looks at every hosted member, readable by the
caller or not, and reaches into nested groups both ways: a hosted repository inside a nested group
guards, and a proxy inside a nested group is guarded.

A request reads what it needs of the members in one query (`probe.py`): every leaf's copy of the
file, the guard's answer, and each proxy's cached copy of the upstream document that declares the
file, handed to the walk (nested groups included) and to the proxy, which then looks nothing up
again. A cold miss through a group costs that read plus the proxy's claim and commit."""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import bindparam, select

from artifactory.db import queries
from artifactory.db.models import Component
from artifactory.http.errors import BadGateway
from artifactory.lru import Lru
from artifactory.repository.index import cache_path
from artifactory.repository.model import GROUP, HOSTED, PROXY, Content, Repo
from artifactory.repository.probe import Probe, Probed
from artifactory.security.principal import Principal

if TYPE_CHECKING:
    from artifactory.repository.engine import Engine

# (group id, folder) of the last probe in this request (a task's context) that found nothing under
# that folder in any of the group's leaves.
_EMPTY_FOLDER: ContextVar[tuple[int, str] | None] = ContextVar("artifactory_empty_folder", default=None)
GUARD_CACHE_SIZE = 8192
MAX_MERGED_INPUT = 64 * 1024 * 1024


class NameLookup:
    """Whether any of some repositories holds a component of a name: the guard's one query, compiled
    once per number of repositories and run on a pooled DBAPI connection (the ORM's execution
    costs several times the indexed query itself)."""

    def __init__(self, engine: SqlEngine) -> None:
        self.engine = engine
        self._compiled: dict[int, queries.RawQuery] = {}

    def __call__(self, ids: Sequence[int], namespace: str, name: str) -> bool:
        if not ids:
            return False
        query = self._compiled.get(len(ids))
        if query is None:
            statement = (
                select(Component.id)
                .where(
                    Component.repository_id.in_([bindparam(f"r{i}") for i in range(len(ids))]),
                    Component.namespace == bindparam("namespace"),
                    Component.name == bindparam("name"),
                )
                .limit(1)
            )
            query = self._compiled[len(ids)] = queries.RawQuery(self.engine, statement)
        values = {f"r{i}": rid for i, rid in enumerate(ids)}
        return bool(query.rows({**values, "namespace": namespace, "name": name}))


class Group:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._guards: Lru[tuple[object, ...], bool] = Lru(GUARD_CACHE_SIZE)
        self._hosted_has = NameLookup(engine.db.read_engine)
        self._probe = Probe(engine.db.read_engine)

    def members(self, repo: Repo, principal: Principal, every: list[Repo] | None = None) -> list[Repo]:
        """The members this principal may read through the group. A credential scoped to the group
        reads its members as far as the user's roles allow (the scope names the group, not each
        member); a credential whose scope does not include the group reads nothing through it.
        `every`: the group's `existing` members, when the caller has them already."""
        if not principal.scope_grants(repo.name, "read"):
            return []
        through = self.reader(repo, principal)
        allowed = self.engine.security.allowed
        every = every if every is not None else self.existing(repo)
        return [member for member in every if allowed(through, member.name, "read")]

    def existing(self, repo: Repo) -> list[Repo]:
        """The group's members that exist, in order, whoever asks. A request looks them up once:
        after any commit a lookup reads the member's revision again."""
        found = []
        for name in repo.members:
            member = self.engine.repos.get(name)
            if member is not None:
                found.append(member)
        return found

    def reader(self, repo: Repo, principal: Principal) -> Principal:
        """Who reads through `repo`'s members, nested groups included: a credential whose scope
        grants the group reads what is inside it as the user's roles allow (the scope names the
        group, not what it holds); any other principal as itself."""
        if principal.scope is not None and principal.scope_grants(repo.name, "read"):
            return replace(principal, scope=None)
        return principal

    def leaves(self, repo: Repo, principal: Principal) -> list[Repo]:
        """The hosted and proxy repositories `principal` reads through `repo` (`repo` itself if it
        is not a group), in member order, nested groups expanded where they stand, each once."""
        found: dict[str, Repo] = {}

        def walk(current: Repo, seen: frozenset[str], reader: Principal) -> None:
            if current.type != GROUP:
                found.setdefault(current.name, current)
            elif current.name not in seen:
                for member in self.members(current, reader):
                    walk(member, seen | {current.name}, self.reader(current, reader))

        walk(repo, frozenset(), principal)
        return list(found.values())

    def _leaves(
        self, repo: Repo, seen: frozenset[str] = frozenset(), every: list[Repo] | None = None
    ) -> list[Repo]:
        """Every hosted and proxy repository inside a group, nested groups included, whoever asks
        (`every`: the group's `existing` members, when the caller has them already).

        The guard must not depend on the caller: someone who may not read the internal repository
        must not be handed the public lookalike instead.
        """
        found: list[Repo] = []
        for member in every if every is not None else self.existing(repo):
            if member.type == GROUP:
                if member.name not in seen:
                    found.extend(self._leaves(member, seen | {repo.name}))
            else:
                found.append(member)
        return found

    async def get(
        self,
        repo: Repo,
        path: str,
        principal: Principal,
        stream: bool,
        seen: frozenset[str] = frozenset(),
        skip_proxies: bool = False,
        probed: Probed | None = None,
    ) -> Content | None:
        """`skip_proxies`: an enclosing group's guard already rules out every proxy for `path`.
        `probed`: what the enclosing group's probe read of every leaf (nested groups share it)."""
        if repo.name in seen:
            return None
        seen = seen | {repo.name}
        every = self.existing(repo)
        members = self.members(repo, principal, every)
        principal = self.reader(repo, principal)  # what a nested group is read as
        if not members:
            return None
        if probed is None:
            # A hosted first member's file this process has just read answers alone (no guard
            # applies to a hosted member); anything else asks every leaf at once.
            first = members[0]
            if first.type == HOSTED:
                hit = self.engine.cached_asset(first, path)
                if hit is not None:
                    return hit
            probed = await self.probe_file(repo, path, every)
        if not skip_proxies:
            skip_proxies = await self._shadowed(repo, path, every, probed)
        failure: BadGateway | None = None
        for member in members:
            if skip_proxies and member.type == PROXY:
                continue
            try:
                found = await self._member_get(member, path, principal, stream, seen, skip_proxies, probed)
            except BadGateway as exc:
                failure = exc
                continue
            if found is not None:
                return found
        if failure is not None:
            raise failure
        return None

    async def probe(
        self,
        repo: Repo,
        every: list[Repo],
        paths: Sequence[str],
        name: tuple[str, str] | None,
        folder: str | None = None,
    ) -> Probed:
        """One read of every leaf of `repo` (readable by the caller or not: the guard needs them
        all): the assets at `paths`, given a (namespace, name) which hosted leaf holds it and its
        generation there, and given a `folder` which leaves store anything under it."""
        leaves = self._leaves(repo, every=every)
        probed = await self.engine.read_call(self._probe, leaves, paths, name, folder)
        if folder is not None:
            _EMPTY_FOLDER.set((repo.id, folder) if not probed.in_folder else None)
        return probed

    async def holds_any(self, leaves: Sequence[Repo], folder: str) -> bool:
        """Whether any of `leaves` stores anything under `folder` ("dir/"): the probe's one read."""
        probed = await self.engine.read_call(self._probe, leaves, [folder], None, folder)
        return bool(probed.in_folder)

    def known_empty_folder(self, repo: Repo, folder: str) -> bool:
        """Whether this request's probe of `repo` found nothing stored under `folder` in any leaf (a
        file miss of a format whose paths name folders asks that too): its listing is then empty."""
        return _EMPTY_FOLDER.get() == (repo.id, folder)

    async def probe_file(self, repo: Repo, path: str, every: list[Repo]) -> Probed:
        """`probe` for a file request: the file, the name it belongs to, and the proxies' cached
        copy of the upstream document that declares it (where the proxy learns its URL and digests)."""
        fmt = self.engine.formats[repo.format]
        coordinates = fmt.coordinates(path)
        name = None if coordinates is None else (coordinates.namespace, coordinates.name)
        if name is not None and self.known_guard(repo, *name, every) is not None:
            name = None  # the guard's answer is known: a file request needs nothing else of the name
        declared = fmt.declared_by(path)
        paths = [path] if declared is None else [path, cache_path(declared)]
        # Where a missing file may be a folder (raw), whether it is one comes with the same read.
        return await self.probe(repo, every, paths, name, path + "/" if fmt.folders else None)

    async def _shadowed(self, repo: Repo, path: str, every: list[Repo], probed: Probed | None = None) -> bool:
        """True if a hosted member holds the component `path` belongs to: proxies must not serve it."""
        coordinates = self.engine.formats[repo.format].coordinates(path)
        if coordinates is None:
            return False
        return await self.shadowed_name(repo, coordinates.namespace, coordinates.name, every, probed)

    async def shadowed_name(
        self,
        repo: Repo,
        namespace: str,
        name: str,
        every: list[Repo] | None = None,
        probed: Probed | None = None,
    ) -> bool:
        """True if a hosted repository anywhere in the group holds a component named `name`: no proxy
        member may then serve its files or contribute to its documents. `every`: the group's
        `existing` members, when the caller has them already; `probed`: a probe of this request
        that read the name in every leaf, which then answers without a query."""
        if repo.config.get("allow_proxy_shadowing", False):
            return False
        leaves = self._leaves(repo, every=every)
        hosted = [r for r in leaves if r.type == HOSTED]
        if not hosted or not any(r.type == PROXY for r in leaves):
            return False  # nothing to guard, or nothing to guard against: spare the query
        # Keyed by the hosted members' revisions: any upload or deletion there moves the key.
        key = (tuple((r.id, r.revision) for r in hosted), namespace, name)
        if probed is not None and probed.name == (namespace, name) and all(map(probed.covers, hosted)):
            known: bool | None = probed.shadowed(hosted)
        else:
            known = self._guards.get(key)
        if known is None:
            ids = [r.id for r in hosted]
            known = await self.engine.read_call(self._hosted_has, ids, namespace, name)
        return self._guards.put(key, known)

    def known_guard(
        self, repo: Repo, namespace: str, name: str, every: list[Repo] | None = None
    ) -> bool | None:
        """`shadowed_name`'s answer from what this process already knows; None: it would ask."""
        if repo.config.get("allow_proxy_shadowing", False):
            return False
        leaves = self._leaves(repo, every=every)
        hosted = [r for r in leaves if r.type == HOSTED]
        if not hosted or not any(r.type == PROXY for r in leaves):
            return False
        return self._guards.get((tuple((r.id, r.revision) for r in hosted), namespace, name))

    async def _member_get(
        self,
        member: Repo,
        path: str,
        principal: Principal,
        stream: bool,
        seen: frozenset[str],
        guard: bool,
        probed: Probed | None = None,
    ) -> Content | None:
        if member.type == GROUP:  # hand the guard down: a nested proxy is a proxy all the same
            return await self.get(member, path, principal, stream, seen, guard, probed)
        if probed is None or not probed.covers(member):
            return await self.engine.get(member, path, principal, stream=stream, seen=seen)
        found = probed.asset(member, path)
        if member.type == HOSTED:
            if found is not None:
                self.engine.remember_asset(member, path, found)
            return found
        declared = self.engine.formats[member.format].declared_by(path)
        document = probed.asset(member, cache_path(declared)) if declared is not None else None
        return await self.engine.proxy.get(member, path, stream, known=found, declaring=document)
