"""Proxy repositories: a cache in front of an upstream, written once for every format.

- Immutable paths (the format's cache policy) are never revalidated once cached; metadata paths are
  revalidated after the TTL with If-None-Match / If-Modified-Since, and a 304 only refreshes the TTL.
- Concurrent misses for one path, in any process on any node, make one upstream request: a lease
  elects the fetcher, the others wait for its asset to appear (and share its 502 if it fails). On
  PostgreSQL the lease is a row; on SQLite, whose processes share one machine, a kernel lock on a
  byte of a file beside the database (`db.leases`), taken without a write transaction. No HEAD
  probe is sent.
- Upstream credentials go only to the configured upstream's origin, never to an absolute link that an
  upstream document names on another host.
- The fetcher streams the file to its client while it is stored (the download finishes into the cache
  even if that client goes away).
- A client is answered as soon as the bytes are verified and at their content address (a document,
  or a file that arrived whole in memory: as soon as it is checked, from memory, and so are the
  requests that join its fetch, such as a range after a HEAD); the rows that cache them commit right
  after, in the background, together with the lease's release. Until then the lease stays held, so other
  processes still wait for the commit, and requests of this process for the same path share the
  fetch in flight (`Flight`) instead of claiming and polling the lease. Nothing is answered or
  cached before it is verified.
- A file an upstream index document lists (`Format.declared_by`) is fetched from the URL that
  document gives (files often live on another host); no other record of upstream URLs is kept.
- Fetched bytes are verified while they stream against the digests the path states by itself
  (`Format.expected_digests`) and those its upstream index document declared for it (the engine's
  index, `Parsed.files`), within the repository's size limit and a whole-transfer deadline. Bytes that
  fail are never cached: a whole-body fetch answers 502, and a streaming client's connection is cut
  before its last chunk, so it never receives a complete-looking wrong file.
- Misses are remembered (negative cache); after repeated failures the proxy blocks itself for a while
  and answers from cache (or 404) at once; a failing or offline upstream never hides cached content.
- A cold miss costs two write transactions on PostgreSQL, both grouped with other requests': the
  claim (the upstream's health, the negative cache, the lease, the asset as it is now; with other
  claims, `Database.batched`) and the finish (the file's rows, the lease's release, health and
  misses, together; a file or document held in memory with the other small commits waiting,
  `Hosted.commit`).
  On SQLite the claim is reads and the node's lease, and the finish is the one transaction that
  stores the file (or records a miss or a failure), the lease let go once it has committed. A
  per-process copy of the health, at most `config_cache_seconds` old, answers "blocked" before
  any transaction.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from artifactory.blobstore.store import HEX_LENGTH, BlobInfo, DigestMismatch, StagedBlob
from artifactory.db import queries
from artifactory.db.engine import read_connection
from artifactory.db.models import Asset, ProxyHealth, ProxyLease, ProxyMiss, utcnow
from artifactory.formats import CachePolicy, Format
from artifactory.http.errors import BadGateway
from artifactory.keeper import Keeper
from artifactory.metrics import PROXY_FETCHES
from artifactory.repository.errors import UpstreamUnavailable
from artifactory.repository.hosted import Upload, guess_content_type
from artifactory.repository.model import Repo, StoredAsset, Streaming
from artifactory.security.principal import Principal
from artifactory.text import ascii_digits
from artifactory.upstream.client import UpstreamError, UpstreamResponse

if TYPE_CHECKING:
    from artifactory.repository.engine import Engine

log = logging.getLogger(__name__)
SYSTEM = Principal(username="system:proxy", roles=frozenset({"admin"}))
LEASE_SECONDS = 120
LEASE_REFRESH_SECONDS = 15
MAX_FOLLOW_SECONDS = 3600
# How long a follower looks at the lease it waits for at least every so often, before it looks less
# and less often: on SQLite a look is one system call (the node's lease file), on PostgreSQL a query
# (many followers of one fetch must not flood the database).
FOLLOW_QUICK_SECONDS = 1.0
FOLLOW_POLL_SECONDS = {"node": 0.005, "rows": 0.025}
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
SIBLING_BYTES = 1024 * 1024  # a checksum file a format's check reads
# The whole transfer of one upstream file, headers to last byte (`transfer_timeout_seconds` in the
# repository's config overrides it); `timeout_seconds` bounds each read within it.
TRANSFER_TIMEOUT_SECONDS = 3600.0
# A streamed file up to this size that only declared digests check is verified as it passes (on the
# event loop), and its client has its last bytes before they are made durable.
EARLY_VERIFY_BYTES = 8 * 1024 * 1024
HOP_HEADERS = {"etag", "last-modified", "content-type"}
PATH_SAFE = "/%:@!$&'()*+,;=~"
HEX_DIGITS = frozenset("0123456789abcdef")


_LEASE_EXPIRY = select(ProxyLease.expires_at).where(
    ProxyLease.repository_id == bindparam("rid"), ProxyLease.path == bindparam("path")
)
_MISS_EXPIRY = select(ProxyMiss.expires_at).where(
    ProxyMiss.repository_id == bindparam("rid"), ProxyMiss.path == bindparam("path")
)
_HEALTH = select(ProxyHealth.failures, ProxyHealth.blocked_until).where(
    ProxyHealth.repository_id == bindparam("rid")
)


class _Unknown:
    """Not looked up yet (as opposed to None: looked up, and absent)."""


UNKNOWN = _Unknown()
Known = StoredAsset | None | _Unknown


@dataclass(frozen=True)
class DocumentSource:
    """An index document's upstream copy, fetched for the engine's index (not a client's path):
    from `url`, asked for with `accept`, refused before caching when `check(body, url, sha256)`
    raises ValueError (a malformed document never replaces the cached copy); `sha256` is the body's,
    computed once for the check and the cache."""

    url: str
    accept: str
    check: Callable[[bytes, str, str], None]


@dataclass
class Claim:
    """What the claim transaction found: a blocked upstream, a remembered miss, or a lease taken
    (or not) and, for its
    holder, the asset and whether the upstream's health needs a write."""

    blocked: bool = False
    negative: bool = False
    acquired: bool = True
    current: StoredAsset | None = None
    unhealthy: bool = False


@dataclass
class Outcome:
    """What a fetch learnt, written by its finish: an error, a miss, a revalidation."""

    unhealthy: bool = False
    reached: bool = False  # the upstream answered (a success for its health)
    error: str | None = None
    miss: bool = False
    revalidated: StoredAsset | None = None
    committed: bool = False


@dataclass
class Fetched:
    """A 200 from upstream on its way into the cache."""

    owner: str
    outcome: Outcome
    expected: dict[str, str]
    meta: dict[str, Any]
    content_type: str | None


@dataclass
class Flight:
    """A fetch under way in this process. Requests for the same path wait for `result` (what the
    fetcher's own client gets, as soon as it may have it) instead of claiming the lease themselves;
    the flight ends when the fetch's rows have committed (or it failed), so until then a request
    finds it rather than missing the asset in the database."""

    result: asyncio.Future[StoredAsset | None]
    landing: bool = False  # a background task commits the fetch and ends the flight

    def settle(self, result: StoredAsset | None | BaseException) -> None:
        if self.result.done():
            return
        if isinstance(result, BaseException):
            self.result.set_exception(result if isinstance(result, Exception) else RuntimeError("cancelled"))
        else:
            self.result.set_result(result)


class Proxy:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._health: dict[int, tuple[float, datetime | None, int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # The background commits of each repository's answered fetches, by repository id.
        self._landing: dict[int, set[asyncio.Task[Any]]] = {}
        self._flights: dict[tuple[int, str], Flight] = {}
        self._statements = ClaimStatements()
        # A follower polls the lease it waits for (every few milliseconds at first) and then reads
        # the negative cache: indexed reads on a pooled DBAPI connection, not through an ORM session.
        self._lease_expiry = queries.RawQuery(engine.db.read_engine, _LEASE_EXPIRY)
        self._miss_expiry = queries.RawQuery(engine.db.read_engine, _MISS_EXPIRY)
        self._health_query = queries.RawQuery(engine.db.read_engine, _HEALTH)
        self._asset_lookup = queries.AssetLookup(engine.db.read_engine)
        # SQLite: the node's leases (`db.leases`), and the descriptor of each one held, by owner.
        self._node = engine.db.node_leases
        self._held: dict[str, int] = {}
        # PostgreSQL: the lease rows held, (repository id, path, owner), kept from expiring (`_keep_lease`).
        self._leases: Keeper[tuple[int, str, str]] = Keeper(
            lambda: LEASE_REFRESH_SECONDS, self._refresh_leases, "the proxy's leases"
        )
        # Fetched bytes answered from memory while their blob is still being stored (documents,
        # and files that arrived whole in memory): sha256 -> bytes, and how many fetches hold them.
        self._pending: dict[str, bytes] = {}
        self._pending_holds: dict[str, int] = {}

    # -- public ------------------------------------------------------------------------------
    async def get(
        self,
        repo: Repo,
        path: str,
        stream: bool,
        document: DocumentSource | None = None,
        known: Known = UNKNOWN,
        declaring: Known = UNKNOWN,
    ) -> StoredAsset | Streaming | None:
        """`known`: the asset at `path` (or None) as the caller has just read it (a group's probe),
        so that it is not looked up again; `declaring`: likewise the cached copy of the upstream
        document that declares `path` (`Format.declared_by`)."""
        engine = self.engine
        flight = self._flights.get((repo.id, path))
        if flight is not None:  # fetched by this process right now: share it
            return await asyncio.shield(flight.result)
        fmt = engine.formats[repo.format]
        policy = CachePolicy.METADATA if document is not None else fmt.cache_policy(path)
        if not isinstance(known, _Unknown):
            cached = known
        else:
            cached = await engine.read_call(self._cached, repo, path)
        if cached is not None and not self._stale(repo, cached, policy):
            PROXY_FETCHES.labels(repo.name, "hit").inc()
            return cached
        if (document is None and not self._included(repo, path)) or repo.config.get("offline"):
            return cached
        if self._blocked_cached(repo):
            return cached
        return await self._fetch_shared(repo, path, cached, policy, stream, document, declaring)

    def pending(self, sha256: str) -> bytes | None:
        """Fetched bytes this process answers from memory while their blob is being stored (a
        document, or a file that arrived whole in memory and was verified)."""
        return self._pending.get(sha256)

    def _hold_pending(self, sha256: str, data: bytes) -> None:
        self._pending[sha256] = data
        self._pending_holds[sha256] = self._pending_holds.get(sha256, 0) + 1

    def _drop_pending(self, sha256: str) -> None:
        left = self._pending_holds.get(sha256, 0) - 1
        if left > 0:
            self._pending_holds[sha256] = left
        else:
            self._pending_holds.pop(sha256, None)
            self._pending.pop(sha256, None)

    async def landed(self, repo: Repo) -> None:
        """Wait until the fetches this process answered for `repo` are committed (for what reads
        the database rather than a path: a listing, a query of components)."""
        while tasks := self._landing.get(repo.id):
            await asyncio.wait(list(tasks))

    def status(self, repo: Repo) -> dict[str, Any]:
        with self.engine.db.read() as session:
            health = session.get(ProxyHealth, repo.id)
        now = datetime.now(UTC)
        blocked = bool(health and health.blocked_until and health.blocked_until > now)
        return {
            "online": not repo.config.get("offline", False),
            "blocked": blocked,
            "blocked_until": health.blocked_until.isoformat()
            if blocked and health and health.blocked_until
            else None,
            "failures": health.failures if health else 0,
            "last_error": health.last_error if health else "",
        }

    def invalidate(self, repo: Repo, prefix: str) -> None:
        """Forget negative-cache entries and force revalidation of cached files under `prefix`."""
        now = time.time()
        marks = [
            m for m in repo.state.get("invalidations", []) if prefix and not m["prefix"].startswith(prefix)
        ]
        if prefix:
            marks.append({"prefix": prefix, "at": now})
        with self.engine.db.write() as session:
            query = delete(ProxyMiss).where(ProxyMiss.repository_id == repo.id)
            if prefix:
                query = query.where(queries.starts_with(ProxyMiss.path, prefix))
            session.execute(query)
        self.engine.repos.set_state(repo.name, "invalidations", marks[-100:])
        if not prefix:
            self.engine.repos.set_state(repo.name, "invalidated_at", now)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self._leases.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- cache state -------------------------------------------------------------------------
    def _cached(self, repo: Repo, path: str) -> StoredAsset | None:
        return self.engine.lookup(repo, path)

    def fresh(self, repo: Repo, asset: StoredAsset) -> bool:
        """Whether a cached metadata document may be served without asking the upstream again."""
        return not self._stale(repo, asset, CachePolicy.METADATA)

    def _stale(self, repo: Repo, asset: StoredAsset, policy: CachePolicy) -> bool:
        fetched = float(asset.attributes.get("proxy", {}).get("fetched_at", 0))
        if fetched < float(repo.state.get("invalidated_at", 0)):
            return True
        for mark in repo.state.get("invalidations", []):
            if asset.path.startswith(mark["prefix"]) and fetched < mark["at"]:
                return True
        if policy is CachePolicy.IMMUTABLE:
            return False
        return time.time() - fetched > float(repo.config.get("metadata_ttl_seconds", 3600))

    def _included(self, repo: Repo, path: str) -> bool:
        include = repo.config.get("include") or []
        exclude = repo.config.get("exclude") or []
        if include and not any(fnmatch.fnmatchcase(path, p) for p in include):
            return False
        return not any(fnmatch.fnmatchcase(path, p) for p in exclude)

    def _negative(self, repository_id: int, path: str) -> bool:
        return _unexpired(self._miss_expiry.rows({"rid": repository_id, "path": path}))

    def _remember_miss(self, session: Session, repo: Repo, path: str) -> None:
        seconds = int(repo.config.get("negative_cache_seconds", 300))
        if seconds <= 0:
            return
        queries.upsert(
            session,
            ProxyMiss,
            {"repository_id": repo.id, "path": path, "expires_at": utcnow() + timedelta(seconds=seconds)},
            ["repository_id", "path"],
            ["expires_at"],
        )

    def _blocked_cached(self, repo: Repo) -> bool | None:
        """Whether the upstream is blocked, from this process's copy of its health (refreshed by
        every claim and record); None when that copy is older than the config cache lifetime, and
        the claim, which reads the health anyway, decides."""
        entry = self._health.get(repo.id)
        if entry is None or time.monotonic() - entry[0] > self.engine.settings.config_cache_seconds:
            return None
        return entry[1] is not None and entry[1] > datetime.now(UTC)

    def _remember_health(self, repository_id: int, health: ProxyHealth | None) -> None:
        self._health[repository_id] = (
            time.monotonic(),
            health.blocked_until if health else None,
            health.failures if health else 0,
        )

    def _record(self, session: Session, repo: Repo, error: str | None) -> None:
        """Count a failure (blocking the upstream after `block_after_failures` of them in a row), or
        end a run of failures on success: inside the caller's write transaction."""
        health = session.get(ProxyHealth, repo.id)
        if health is None:
            if error is None:
                return
            health = ProxyHealth(repository_id=repo.id, failures=0, last_error="")
            session.add(health)
        if error is None:
            if health.failures == 0 and health.blocked_until is None:
                return
            health.failures = 0
            health.blocked_until = None
        else:
            now = utcnow()
            if health.blocked_until is not None and health.blocked_until <= now:
                # The block is over: this failure starts a new run.
                health.failures = 0
                health.blocked_until = None
            # The count is kept while blocked: the status reports the failures behind a block.
            health.failures += 1
            health.last_error = error[:1000]
            threshold = int(repo.config.get("block_after_failures", 3))
            if health.blocked_until is None and health.failures >= threshold > 0:
                health.blocked_until = now + timedelta(seconds=int(repo.config.get("block_seconds", 60)))
        session.flush()
        self._remember_health(repo.id, health)

    # -- single flight -----------------------------------------------------------------------
    def _claim(self, repo: Repo, path: str, owner: str, check_negative: bool, session: Session) -> Claim:
        """The one transaction before a fetch: the negative cache, the lease (single flight across
        processes), and, for the lease's holder, what it needs to fetch: the asset as it is now
        (another fetcher may have just stored it) and the upstream's health. Its statements run on
        the transaction's DBAPI cursor (`ClaimStatements`): every cold miss pays for them, in the
        writer's turn that concurrent misses of every process wait for."""
        now = utcnow()
        run = self._statements.runner(session)
        found = run("health", rid=repo.id).fetchone()
        failures, blocked_until = (int(found[0]), _utc(found[1])) if found is not None else (0, None)
        self._health[repo.id] = (time.monotonic(), blocked_until, failures)
        if blocked_until is not None and blocked_until > now:
            return Claim(blocked=True)
        if check_negative:
            missed = run("miss", rid=repo.id, path=path).fetchone()
            if missed is not None and (_utc(missed[0]) or now) > now:
                return Claim(negative=True)
        expires = now + timedelta(seconds=LEASE_SECONDS)
        if run("lease", rid=repo.id, path=path, owner=owner, expires=expires).fetchone() is None:
            taken = run("take", rid=repo.id, path=path, now=now, new_owner=owner, new_expires=expires)
            if not taken.rowcount or taken.rowcount < 0:
                return Claim(acquired=False)
        row = run("asset", rid=repo.id, path=path).fetchone()
        return Claim(
            current=queries.asset_of_row(repo.name, row) if row is not None else None,
            unhealthy=failures > 0 or blocked_until is not None,
        )

    def _claim_node(self, repo: Repo, path: str, owner: str, check_negative: bool) -> Claim:
        """The claim on SQLite: the claim transaction's reads, around the node's lease instead of
        its row (no write). The negative cache and the asset are read once the lease is held, so
        that a fetch another process has just finished (it lets go of the lease after its commit)
        is seen rather than repeated."""
        assert self._node is not None
        with read_connection(self.engine.db.read_engine) as connection:  # one for the three reads
            found = self._health_query.rows({"rid": repo.id}, connection)
            failures, blocked_until = (int(found[0][0]), _utc(found[0][1])) if found else (0, None)
            self._health[repo.id] = (time.monotonic(), blocked_until, failures)
            if blocked_until is not None and blocked_until > utcnow():
                return Claim(blocked=True)
            fd = self._node.acquire(repo.id, path)
            if fd is None:
                return Claim(acquired=False)
            self._held[owner] = fd
            try:
                where = {"rid": repo.id, "path": path}
                if check_negative and _unexpired(self._miss_expiry.rows(where, connection)):
                    self._release_node(owner)
                    return Claim(negative=True)
                current = self._asset_lookup(repo.name, repo.id, path, connection)
            except BaseException:
                self._release_node(owner)
                raise
        return Claim(current=current, unhealthy=failures > 0 or blocked_until is not None)

    def _release_node(self, owner: str) -> None:
        """Let go of the node's lease `owner` holds, if it holds one (SQLite)."""
        fd = self._held.pop(owner, None)
        if fd is not None and self._node is not None:
            self._node.release(fd)

    def _lease_held(self, repository_id: int, path: str) -> bool:
        if self._node is not None:
            return self._node.held(repository_id, path)
        return _unexpired(self._lease_expiry.rows({"rid": repository_id, "path": path}))

    def _keep_lease(self, repo: Repo, path: str, owner: str) -> None:
        """Keep the lease row `owner` has just taken from expiring until the fetch lets go of it
        (`_let_go`): refreshed every LEASE_REFRESH_SECONDS with the process's other held leases,
        however long the fetch takes (an upstream's headers may take `timeout_seconds`, a body the
        whole transfer timeout, whether streamed to a client or read whole), so that no other
        process takes it for an abandoned one and fetches the path a second time. The node's lease
        (SQLite) is a kernel lock, held as long as its holder lives: nothing to keep."""
        if self._node is None:
            self._leases.hold((repo.id, path, owner))

    def _let_go(self, repo: Repo, path: str, owner: str) -> None:
        """Stop keeping `owner`'s lease (the transaction that releases it is under way): a refresh
        still running then finds no row of its owner's, or none unexpired to matter."""
        self._leases.release((repo.id, path, owner))

    async def _refresh_leases(self, held: list[tuple[int, str, str]]) -> None:
        await self.engine.db_call(self._refresh_rows, held)

    def _refresh_rows(self, held: list[tuple[int, str, str]]) -> None:
        expires = utcnow() + timedelta(seconds=LEASE_SECONDS)
        with self.engine.db.write(durable=False) as session:
            for repository_id, path, owner in held:
                session.execute(
                    update(ProxyLease)
                    .where(
                        ProxyLease.repository_id == repository_id,
                        ProxyLease.path == path,
                        ProxyLease.owner == owner,
                    )
                    .values(expires_at=expires)
                )

    def _finish(self, repo: Repo, path: str, owner: str, outcome: Outcome, session: Session) -> None:
        """The one transaction after a fetch, or its part of the transaction that stores the file:
        release the lease (a row's: the node's is let go after the commit) and record what the
        fetch taught (health, a miss, a revalidation)."""
        if self._node is None:
            self._statements.runner(session)("release", rid=repo.id, path=path, owner=owner)
        if outcome.error is not None or (outcome.reached and outcome.unhealthy):
            self._record(session, repo, outcome.error)
        if outcome.miss:
            self._remember_miss(session, repo, path)
        if outcome.revalidated is not None:
            session.execute(
                update(Asset)
                .where(Asset.id == outcome.revalidated.asset_id)
                .values(attributes=dict(outcome.revalidated.attributes))
            )

    async def _finish_alone(self, repo: Repo, path: str, owner: str, outcome: Outcome) -> None:
        """The finish of a fetch that stored nothing: it only coordinates and remembers (a miss, the
        upstream's health, a revalidation), all of which a power cut may lose, so not durable. On
        SQLite a fetch that taught nothing to remember needs no transaction; the node's lease is let
        go once whatever there was to write has committed (or failed)."""
        self._let_go(repo, path, owner)
        try:
            if self._node is None or _teaches(outcome):
                finish = functools.partial(self._finish, repo, path, owner, outcome)
                await self.engine.db_call(self.engine.db.batched, finish, (repo.id, path), False)
        finally:
            self._release_node(owner)

    async def _follow(self, repo: Repo, path: str, cached: StoredAsset | None) -> StoredAsset | None:
        """Wait for another fetcher's result instead of asking the upstream a second time."""
        # Wait as long as the fetcher keeps its lease alive (it refreshes it while a large file
        # arrives); an expired lease means the fetcher died, and its work is not waited for.
        deadline = time.monotonic() + MAX_FOLLOW_SECONDS
        # A fetch from a nearby upstream ends in milliseconds (its client is answered before its
        # commit, and may well ask this process next): look again soon, for a while at least every
        # FOLLOW_POLL_SECONDS (a follower that notices a release late is a request answered late:
        # during a cold install through a group, the last of a phase), then less and less often.
        delay = 0.002
        started = time.monotonic()
        quick_poll = FOLLOW_POLL_SECONDS["node" if self._node is not None else "rows"]
        while True:
            await asyncio.sleep(delay)
            quick = time.monotonic() - started < FOLLOW_QUICK_SECONDS
            delay = min(delay * 1.5, quick_poll if quick else 0.25)
            if not await self.engine.read_call(self._lease_held, repo.id, path):
                break
            if time.monotonic() > deadline:
                if cached is None:
                    raise UpstreamUnavailable(f"timed out waiting for the upstream fetch of {path}")
                break
        found = await self.engine.read_call(self._cached, repo, path)
        if found is not None or cached is not None:
            return found or cached
        # Nothing was stored: the upstream said 404 (remembered as a miss, unless misses are not
        # remembered at all) or the fetch failed, which must not reach these clients as a 404.
        if int(repo.config.get("negative_cache_seconds", 300)) <= 0 or await self.engine.read_call(
            self._negative, repo.id, path
        ):
            return None
        raise UpstreamUnavailable(f"upstream of {repo.name} is unavailable: the fetch of {path} failed")

    # -- fetching ----------------------------------------------------------------------------
    def _target(self, repo: Repo, path: str) -> str:
        """The upstream URL of `path`: the path below the proxy's URL."""
        # Not urljoin: a path is data, so "#", "?", spaces and a colon in its first segment ("v1:x/")
        # must be percent-encoded rather than read as a fragment, a query or a URL scheme. "%" stays:
        # the only escapes left in a decoded path are the ones its format keeps on purpose (npm's %2F).
        base = urlsplit(str(repo.config["url"]))
        folder = base.path if base.path.endswith("/") else base.path + "/"
        return urlunsplit(base._replace(path=folder + quote(path, safe=PATH_SAFE), fragment=""))

    def _limits(self, repo: Repo) -> tuple[int, float]:
        """(most bytes, deadline on the monotonic clock) of one upstream transfer."""
        limit = int(repo.config.get("max_upload_bytes") or self.engine.settings.max_upload_bytes)
        seconds = float(repo.config.get("transfer_timeout_seconds") or TRANSFER_TIMEOUT_SECONDS)
        return limit, time.monotonic() + seconds

    async def _fetch_shared(
        self,
        repo: Repo,
        path: str,
        cached: StoredAsset | None,
        policy: CachePolicy,
        stream: bool,
        document: DocumentSource | None,
        declaring: Known = UNKNOWN,
    ) -> StoredAsset | Streaming | None:
        """`_fetch` as this process's one flight for the path."""
        key = (repo.id, path)
        flight = Flight(asyncio.get_running_loop().create_future())
        flight.result.add_done_callback(_retrieved)
        self._flights[key] = flight
        try:
            result = await self._fetch(repo, path, cached, policy, stream, document, flight, declaring)
        except BaseException as exc:
            flight.settle(exc)
            raise
        else:
            if not isinstance(result, Streaming):  # a stream's task settles it once it is verified
                flight.settle(result)
            return result
        finally:
            if not flight.landing:
                self._end(key, flight)

    def _end(self, key: tuple[int, str], flight: Flight) -> None:
        flight.settle(RuntimeError("the fetch ended without a result"))
        self._unlist(key, flight)

    def _unlist(self, key: tuple[int, str], flight: Flight) -> None:
        """New requests stop joining the flight (those waiting still get its result). Done before
        the transaction that releases a lease without storing anything, so that a request arriving
        meanwhile claims the lease after it, as a request of another process does."""
        if self._flights.get(key) is flight:
            del self._flights[key]

    async def _fetch(
        self,
        repo: Repo,
        path: str,
        cached: StoredAsset | None,
        policy: CachePolicy,
        stream: bool,
        document: DocumentSource | None,
        flight: Flight,
        declaring: Known = UNKNOWN,
    ) -> StoredAsset | Streaming | None:
        """A fetch costs two transactions of its own: the claim before it and the finish after it
        (the finish being part of the one that stores the file, when there is a file to store)."""
        engine = self.engine
        fmt = engine.formats[repo.format]
        owner = uuid.uuid4().hex
        if self._node is not None:
            claim = await engine.read_call(self._claim_node, repo, path, owner, cached is None)
        else:
            claim_it = functools.partial(self._claim, repo, path, owner, cached is None)
            # Not durable: a lease only coordinates (a lease a power cut loses is one nobody holds
            # any more), so the claim commits without the WAL fsync on the miss's response path.
            claim = await engine.db_call(engine.db.batched, claim_it, (repo.id, path), False)
        if claim.blocked:
            return cached
        if claim.negative:
            return None
        if not claim.acquired:
            return await self._follow(repo, path, cached)
        self._keep_lease(repo, path, owner)
        outcome = Outcome(unhealthy=claim.unhealthy)
        handed_over = False
        try:
            # Another request may have completed this very fetch between our lookup and the lease.
            current = claim.current
            if current is not None and not self._stale(repo, current, policy):
                return current
            cached = current
            limit, deadline = self._limits(repo)
            ref = None if document is not None else await engine.index.file_ref(repo, path, declaring)
            if document is not None:
                url, declared = document.url, {}
            elif ref is not None:
                url, declared = ref.url, clean_digests(ref.digests)
            else:
                url, declared = self._target(repo, path), {}
            try:
                expected = merge_digests(fmt.expected_digests(repo, path), declared)
            except ValueError as exc:
                return self._unavailable(repo, path, cached, str(exc))
            headers = {"Accept-Encoding": "gzip" if document else "identity"}
            if document is not None:
                headers["Accept"] = document.accept
            meta = cached.attributes.get("proxy", {}) if cached is not None else {}
            if cached is not None:
                if meta.get("etag") or meta.get("last_modified"):
                    if meta.get("etag"):
                        headers["If-None-Match"] = meta["etag"]
                    if meta.get("last_modified"):
                        headers["If-Modified-Since"] = meta["last_modified"]
                elif cached.updated_at is not None:
                    headers["If-Modified-Since"] = format_datetime(cached.updated_at, usegmt=True)
            try:
                fetcher = engine.upstreams.fetcher(repo.id, repo.config, fmt.upstream_auth)
                async with asyncio.timeout(deadline - time.monotonic()):  # the transfer's, from its start
                    response = await fetcher.get(url, headers)
            except (UpstreamError, TimeoutError) as exc:
                outcome.error = str(exc) or "the upstream's answer took longer than the transfer timeout"
                return self._unavailable(repo, path, cached, outcome.error)
            if response.status_code == 304 and cached is not None:
                await response.aclose()
                outcome.reached = True
                attributes = dict(cached.attributes)
                attributes["proxy"] = {**attributes.get("proxy", {}), "fetched_at": time.time()}
                outcome.revalidated = StoredAsset(**{**cached.__dict__, "attributes": attributes})
                return outcome.revalidated
            if response.status_code in (404, 410):
                await response.aclose()
                outcome.reached = outcome.miss = True
                return None
            if response.status_code != 200:
                await response.aclose()
                outcome.error = f"upstream answered {response.status_code}"
                return self._unavailable(repo, path, cached, f"upstream answered HTTP {response.status_code}")
            outcome.reached = True
            length = response.headers.get("content-length")
            if (
                not response.headers.get("content-encoding")
                and length
                and ascii_digits(length)
                and int(length) > limit
            ):
                await response.aclose()
                return self._unavailable(
                    repo, path, cached, f"{path} is larger than the limit of {limit} bytes"
                )
            meta = {
                "url": url,
                "fetched_at": time.time(),
                "etag": response.headers.get("etag"),
                "last_modified": response.headers.get("last-modified"),
            }
            content_type = response.headers.get("content-type")
            body = _bounded(response.aiter_bytes(), path, limit, deadline)
            fetched = Fetched(owner, outcome, expected, meta, content_type)
            if stream and document is None:
                handed_over = True
                return self._stream(repo, path, response, body, fetched, flight)
            try:
                if document is not None:
                    answer, stage = await self._take_document(repo, path, response, body, fetched, document)
                    held = True
                else:
                    answer, stage, held = await self._take_whole(repo, path, response, body, fetched)
            except BadGateway as exc:
                return self._unavailable(repo, path, cached, exc.message)
            handed_over = True
            flight.settle(answer)
            self._land(repo, path, flight, fetched, stage, answer.sha256 if held else None)
            return answer
        finally:
            if not handed_over and not outcome.committed:
                self._unlist((repo.id, path), flight)
                await self._finish_alone(repo, path, owner, outcome)

    def _unavailable(self, repo: Repo, path: str, cached: StoredAsset | None, reason: str) -> StoredAsset:
        PROXY_FETCHES.labels(repo.name, "error").inc()
        if cached is not None:
            log.warning("proxy %s: serving cached %s, upstream failed: %s", repo.name, path, reason)
            return cached
        raise UpstreamUnavailable(f"upstream of {repo.name} is unavailable: {reason}")

    def _upload(self, repo: Repo, path: str, meta: dict[str, Any], content_type: str | None) -> Upload:
        fmt = self.engine.formats[repo.format]
        return Upload(
            path=path,
            content_type=fmt.content_type(path) or content_type,
            component=fmt.coordinates(path),
            attributes={"proxy": meta},
            bypass_write_policy=True,
        )

    async def _take_document(
        self,
        repo: Repo,
        path: str,
        response: UpstreamResponse,
        body: AsyncIterator[bytes],
        fetched: Fetched,
        source: DocumentSource,
    ) -> tuple[StoredAsset, Callable[[], Awaitable[StagedBlob]]]:
        """An upstream document read whole and checked: its provisional asset (read by the index
        only, from memory, see `pending`) and how its blob is staged for the commit."""
        try:
            document = bytearray()
            async for chunk in body:
                document += chunk
                if len(document) > MAX_DOCUMENT_BYTES:
                    raise UpstreamUnavailable(
                        f"upstream document {path} is larger than {MAX_DOCUMENT_BYTES} bytes"
                    )
        except UpstreamError as exc:
            raise UpstreamUnavailable(f"upstream transfer failed: {exc}") from None
        finally:
            await response.aclose()
        fetched.meta["url"] = str(response.url)
        data = bytes(document)
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            source.check(data, str(response.url), sha256)
        except (ValueError, RecursionError) as exc:
            # A malformed upstream document (or one nested deeper than a parser recurses, which no
            # format has to guard against itself): keep serving the cached one.
            raise UpstreamUnavailable(f"upstream document {source.url} is unusable: {exc}") from None
        self._hold_pending(sha256, data)
        # Only the index reads a document's asset, by its sha256: the other digests are not needed.
        answer = self._provisional(repo, path, BlobInfo(sha256, len(data), "", "", ""), fetched)

        async def stage() -> StagedBlob:
            return await self.engine.blobs.ingest_bytes(data)

        return answer, stage

    async def _take_whole(
        self, repo: Repo, path: str, response: UpstreamResponse, body: AsyncIterator[bytes], fetched: Fetched
    ) -> tuple[StoredAsset, Callable[[], Awaitable[StagedBlob]], bool]:
        """A file received whole and verified: its provisional asset (served like a stored one), the
        staged blob for the commit, and whether its bytes are held in memory for the readers
        (`pending`) until the commit, which places them (or keeps them in their row,
        `Hosted.inline`): small bytes are not in the blob store before it; larger ones are at
        their content address already."""
        try:
            staged, kept = await self._stage_verified(repo, path, body, fetched.expected)
        except UpstreamError as exc:
            raise UpstreamUnavailable(f"upstream transfer failed: {exc}") from None
        finally:
            await response.aclose()
        answer = self._provisional(repo, path, staged.info, fetched)
        held = kept.in_memory and kept.data is not None
        if held:
            assert kept.data is not None
            self._hold_pending(kept.info.sha256, kept.data)

        async def stage() -> StagedBlob:
            return kept

        return answer, stage, held

    async def _stage_verified(
        self,
        repo: Repo,
        path: str,
        body: AsyncIterable[bytes],
        expected: Mapping[str, str],
        verified: Callable[[StagedBlob], None] | None = None,
    ) -> tuple[StagedBlob, StagedBlob]:
        """Receive fetched bytes, verify them (the digests declared for them, then the format's own
        check) and move them to their content address: (the staged blob, what the commit takes,
        which keeps the temporary copy if the address held the bytes already, see `BlobStore.place`).
        Bytes that fail are removed and refused with UpstreamUnavailable. Verified bytes held in
        memory are left for the commit to make durable and place (what the commit takes is then the
        staged blob itself), and `verified(staged)` is called with them."""
        engine = self.engine
        blobs = engine.blobs
        checked = self._checks(repo)
        # The files the format's check will read are asked for while this one arrives.
        early = {
            other: asyncio.get_running_loop().create_task(self._fetch_sibling(repo, other))
            for other in (engine.formats[repo.format].siblings_checked(repo, path) if checked else ())
        }
        try:
            try:
                if checked or verified is not None:  # small bytes stay in memory until placed
                    staged, _ = await blobs.ingest_then(body, expected, None, None)
                else:  # verified, made durable and placed in the worker thread that wrote the last bytes
                    # (unless they are held in memory: the commit places them, or keeps them in their row)
                    staged, placed = await blobs.ingest_then(body, expected, None, self._place_unless_held)
            except DigestMismatch as exc:
                raise UpstreamUnavailable(
                    f"{path} from the upstream of {repo.name} was refused: {exc}"
                ) from None
            if checked or verified is not None:
                if checked:
                    await self._verify_fetched(repo, path, staged, early)
                if staged.in_memory and staged.data is not None:
                    if verified is not None:
                        verified(staged)
                    # Placed (or kept in its row) by the commit, in its own worker-thread call
                    # (`Hosted.commit`): the client is answered from memory meanwhile (`pending`),
                    # not after a write and two flushes it need not wait for.
                    return staged, staged
                try:
                    placed = await engine.db_call(blobs.place, staged)
                except BaseException:
                    await blobs.discard(staged)
                    raise
        finally:
            for task in early.values():  # not read: a check that stopped early, or a failure
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved, so that it is not reported as lost
                else:
                    task.cancel()
        return staged, (StagedBlob(info=staged.info, temp_name="") if placed else staged)

    def _place_unless_held(self, staged: StagedBlob) -> bool:
        """Blocking: `BlobStore.place` for bytes written to a temporary object; bytes held in memory
        are left to the commit (False), and their client is answered from memory meanwhile."""
        return False if staged.in_memory else self.engine.blobs.place(staged)

    def _checks(self, repo: Repo) -> bool:
        """Whether the format checks fetched files itself (`Format.verify_fetched`)."""
        return type(self.engine.formats[repo.format]).verify_fetched is not Format.verify_fetched

    def _provisional(self, repo: Repo, path: str, info: BlobInfo, fetched: Fetched) -> StoredAsset:
        """The asset a fetch's commit is about to save, for answering before it has."""
        upload = self._upload(repo, path, fetched.meta, fetched.content_type)
        return StoredAsset.of_blob(
            repo.name,
            path,
            info,
            upload.content_type or guess_content_type(path),
            utcnow(),
            dict(upload.attributes or {}),
        )

    def _land(
        self,
        repo: Repo,
        path: str,
        flight: Flight,
        fetched: Fetched,
        stage: Callable[[], Awaitable[StagedBlob]],
        pending: str | None,
    ) -> None:
        """Commit an answered fetch in the background: its rows, the lease's release, the end of
        its flight. A failure here leaves nothing cached (the next request fetches again)."""
        flight.landing = True

        async def run() -> None:
            try:
                await self._commit_fetched(repo, path, await stage(), fetched)
            except Exception as exc:  # noqa: BLE001 - the client has its answer; this is only logged
                log.warning("proxy %s: caching %s failed: %s", repo.name, path, exc)
            finally:
                if pending is not None:
                    self._drop_pending(pending)
                if not fetched.outcome.committed:
                    self._unlist((repo.id, path), flight)
                    await self._finish_alone(repo, path, fetched.owner, fetched.outcome)
                self._end((repo.id, path), flight)

        self._spawn(repo, run())

    def _spawn(self, repo: Repo, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        landing = self._landing.setdefault(repo.id, set())
        landing.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            landing.discard(task)
            if not landing and self._landing.get(repo.id) is landing:
                del self._landing[repo.id]

        task.add_done_callback(done)

    async def _verify_fetched(
        self,
        repo: Repo,
        path: str,
        staged: StagedBlob,
        early: dict[str, asyncio.Task[bytes | None]] | None = None,
    ) -> None:
        """Let the format check fetched bytes (an upstream checksum file, asked for `early` where
        the format said it would read it) before they are cached."""
        engine = self.engine

        async def sibling(other: str) -> bytes | None:
            if early and other in early:
                return await early.pop(other)
            return await self._fetch_sibling(repo, other)

        try:
            await engine.formats[repo.format].verify_fetched(repo, path, staged.info, sibling)
        except ValueError as exc:
            await engine.blobs.discard(staged)
            raise UpstreamUnavailable(f"{path} from the upstream of {repo.name} was refused: {exc}") from None

    async def _commit_fetched(
        self, repo: Repo, path: str, staged: StagedBlob, fetched: Fetched
    ) -> StoredAsset:
        """Store fetched bytes; the fetch's finish (the lease's release) commits with them."""
        upload = self._upload(repo, path, fetched.meta, fetched.content_type)
        finish = functools.partial(self._finish, repo, path, fetched.owner, fetched.outcome)
        # A cache's row need not survive a power cut (the bytes are durable; a lost row is fetched
        # again): on SQLite it commits without the WAL flush, which the next miss's claim would wait for.
        try:
            stored = await self.engine.hosted.commit(repo, staged, upload, SYSTEM, also=finish, durable=False)
        finally:  # the lease is released by the commit, or by the finish that follows its failure
            self._let_go(repo, path, fetched.owner)
        fetched.outcome.committed = True
        self._release_node(fetched.owner)  # after the commit: a follower then finds the asset
        return stored

    async def _fetch_sibling(self, repo: Repo, path: str) -> bytes | None:
        """GET another upstream path without caching it: its bytes (at most 1 MiB), or None when the
        upstream says it has none (404, 410). Any other failure raises ValueError, so a checksum
        file that could not be fetched is never taken for one that was not published."""
        engine, (_limit, deadline) = self.engine, self._limits(repo)
        auth = engine.formats[repo.format].upstream_auth
        try:
            fetcher = engine.upstreams.fetcher(repo.id, repo.config, auth)
            async with asyncio.timeout(deadline - time.monotonic()):
                response = await fetcher.get(self._target(repo, path), {"Accept-Encoding": "identity"})
                if response.status_code == 200:
                    return await response.read(SIBLING_BYTES)
                await response.aclose()
        except (UpstreamError, TimeoutError) as exc:
            raise ValueError(f"could not fetch {path} from the upstream: {exc or 'timed out'}") from None
        if response.status_code in (404, 410):
            return None
        raise ValueError(f"could not fetch {path} from the upstream: HTTP {response.status_code}")

    def _stream(
        self,
        repo: Repo,
        path: str,
        response: UpstreamResponse,
        body: AsyncIterator[bytes],
        fetched: Fetched,
        flight: Flight,
    ) -> Streaming:
        """Store the upstream body in a background task while handing its chunks to the client.

        The client is always one chunk behind the store: the last chunk reaches it only once every
        byte has been verified, so bytes that fail end its connection short of a complete file. Its
        response ends then, before the commit; the flight shares the verified file as soon as it is
        verified when it arrived whole in memory (answered from memory until the commit), else once
        it is at its content address. A small file (a known length up to EARLY_VERIFY_BYTES) that
        only declared digests check is verified as it passes, so its client has its last chunk
        before the bytes are made durable; any other waits for the blob store's verification (and
        the format's check).
        """
        flight.landing = True
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=16)
        attached = True
        answered = False
        released = False
        held: bytes | None = None
        length = response.headers.get("content-length")
        early = (
            not self._checks(repo)
            and not response.headers.get("content-encoding")
            and length is not None
            and ascii_digits(length)
            and int(length) <= EARLY_VERIFY_BYTES
        )
        hashers = {algorithm: hashlib.new(algorithm) for algorithm in fetched.expected} if early else {}

        async def source() -> AsyncIterator[bytes]:
            nonlocal held
            async for chunk in body:
                if held is not None and attached:
                    await queue.put(held)
                held = chunk
                for hasher in hashers.values():
                    hasher.update(chunk)
                yield chunk
            if early:
                for algorithm, hasher in hashers.items():
                    actual = hasher.hexdigest()
                    if not hmac.compare_digest(actual, fetched.expected[algorithm]):
                        raise DigestMismatch(algorithm, fetched.expected[algorithm], actual)
                await answer()

        async def answer() -> None:
            nonlocal answered
            if held is not None:
                await _put(held)  # verified: the client may have its last bytes
            await _put(None)
            answered = True

        in_memory: list[str] = []  # the sha256 of bytes `verified` holds for the flight

        def verified(staged: StagedBlob) -> None:
            """Bytes that arrived whole in memory and passed every check: requests that join the
            flight (a range after a HEAD) are answered from memory until the commit, rather than
            after the bytes are made durable (`pending`)."""
            assert staged.data is not None
            self._hold_pending(staged.info.sha256, staged.data)
            in_memory.append(staged.info.sha256)
            flight.settle(self._provisional(repo, path, staged.info, fetched))

        async def run() -> None:
            try:
                staged, kept = await self._stage_verified(repo, path, source(), fetched.expected, verified)
                flight.settle(self._provisional(repo, path, staged.info, fetched))
                if not answered:
                    await answer()
                await self._commit_fetched(repo, path, kept, fetched)
            except BaseException as exc:  # noqa: BLE001 - handed to the client side, then re-raised
                log.warning("proxy %s: fetch of %s failed: %s", repo.name, path, exc)
                flight.settle(exc)
                if not answered:
                    try:
                        if isinstance(exc, Exception):
                            # Before its client learns of the failure: the request it sends next
                            # must claim the lease and ask the upstream again, not join this
                            # flight nor follow the lease to the same failure.
                            await response.aclose()
                            await release()
                    finally:
                        await _put(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                if not isinstance(exc, Exception):
                    raise
            finally:
                try:
                    await response.aclose()
                    await release()
                    self._end((repo.id, path), flight)
                finally:
                    for sha256 in in_memory:  # committed (or failed): reads go to the blob store again
                        self._drop_pending(sha256)

        async def release() -> None:
            """Once: end the flight and release the lease, unless the commit released it."""
            nonlocal released
            if released or fetched.outcome.committed:
                return
            released = True
            self._unlist((repo.id, path), flight)
            try:
                await self._finish_alone(repo, path, fetched.owner, fetched.outcome)
            except Exception as exc:  # noqa: BLE001 - the lease expires by itself
                log.warning("proxy %s: releasing the lease of %s failed: %s", repo.name, path, exc)

        async def _put(item: bytes | BaseException | None) -> None:
            if attached:
                try:
                    queue.put_nowait(item)
                except asyncio.QueueFull:
                    await queue.put(item)

        self._spawn(repo, run())

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal attached
            try:
                while True:
                    item = await queue.get()
                    if item is None:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                attached = False
                while not queue.empty():  # unblock a producer waiting on a full queue
                    queue.get_nowait()

        size_header = (
            None if response.headers.get("content-encoding") else response.headers.get("content-length")
        )
        return Streaming(
            repository=repo.name,
            path=path,
            chunks=chunks(),
            size=int(size_header) if size_header and ascii_digits(size_header) else None,
            content_type=self.engine.formats[repo.format].content_type(path)
            or fetched.content_type
            or "application/octet-stream",
            upstream_headers={k: v for k, v in response.headers.items() if k.lower() in HOP_HEADERS},
        )


def clean_digests(declared: Mapping[str, Any] | None) -> dict[str, str]:
    """The digests the engine can verify (sha256, sha512, sha1, md5 as hex), lower-cased; others
    (an algorithm the blob store does not compute, a malformed value) are left out."""
    clean: dict[str, str] = {}
    for algorithm, value in (declared or {}).items():
        if algorithm in HEX_LENGTH and isinstance(value, str):
            value = value.strip().lower()
            if len(value) == HEX_LENGTH[algorithm] and HEX_DIGITS.issuperset(value):
                clean[algorithm] = value
    return clean


def merge_digests(*sources: Mapping[str, Any]) -> dict[str, str]:
    """Every digest the fetched bytes must have; ValueError when two sources disagree."""
    merged: dict[str, str] = {}
    for source in sources:
        for algorithm, value in clean_digests(source).items():
            if merged.setdefault(algorithm, value) != value:
                raise ValueError(f"the upstream declared two different {algorithm} digests")
    return merged


def check_digests(data: bytes, expected: Mapping[str, str]) -> None:
    for algorithm, value in expected.items():
        actual = hashlib.new(algorithm, data).hexdigest()
        if not hmac.compare_digest(actual, value):
            raise DigestMismatch(algorithm, value, actual)


async def _bounded(
    chunks: AsyncIterator[bytes], path: str, limit: int, deadline: float
) -> AsyncIterator[bytes]:
    """An upstream body cut off past `limit` bytes or the transfer deadline (each read is bounded
    by the client's own timeout, so a stalled upstream is cut off too)."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise UpstreamUnavailable(f"upstream file {path} is larger than the limit of {limit} bytes")
        if time.monotonic() > deadline:
            raise UpstreamUnavailable(f"upstream transfer of {path} took longer than its deadline")
        yield chunk


class ClaimStatements:
    """The claim's statements, compiled once per dialect and run on the transaction's DBAPI cursor
    (building and executing them through the ORM cost many times the indexed statements)."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], tuple[str, list[str] | None, dict[str, Any]]] = {}

    @staticmethod
    def _statement(name: str, dialect: str) -> Any:
        rid: Any = bindparam("rid")
        path: Any = bindparam("path")
        if name == "health":
            return _HEALTH
        if name == "miss":
            return _MISS_EXPIRY
        if name == "lease":
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            return (
                insert(ProxyLease)
                .values(
                    repository_id=rid, path=path, owner=bindparam("owner"), expires_at=bindparam("expires")
                )
                .on_conflict_do_nothing(index_elements=["repository_id", "path"])
                .returning(ProxyLease.repository_id)
            )
        if name == "asset":  # the asset as it is now: `queries.find_asset`'s statement
            return queries._FIND_ASSET
        if name == "release":
            return delete(ProxyLease).where(
                ProxyLease.repository_id == rid,
                ProxyLease.path == path,
                ProxyLease.owner == bindparam("owner"),
            )
        return (  # "take": a lease whose holder let it expire
            update(ProxyLease)
            .where(
                ProxyLease.repository_id == rid,
                ProxyLease.path == path,
                ProxyLease.expires_at < bindparam("now"),
            )
            .values(owner=bindparam("new_owner"), expires_at=bindparam("new_expires"))
        )

    def runner(self, session: Session) -> Callable[..., Any]:
        """A function that runs one of the statements by name with keyword values; its cursor."""
        dialect, cursor = queries._cursor(session)

        def run(name: str, **values: Any) -> Any:
            found = self._compiled.get((dialect, name))
            if found is None:
                compiled = self._statement(name, dialect).compile(dialect=session.get_bind().dialect)
                order = list(compiled.positiontup or []) if compiled.positional else None
                found = self._compiled[(dialect, name)] = (compiled.string, order, dict(compiled.params))
            sql, order, defaults = found
            bound = {**defaults, **values}
            for key, value in bound.items():
                if isinstance(value, datetime):
                    bound[key] = queries._bind_time(dialect, value)
            cursor.execute(sql, tuple(bound[key] for key in order) if order is not None else bound)
            return cursor

        return run


def _teaches(outcome: Outcome) -> bool:
    """Whether a fetch's finish has anything to write besides the lease's release."""
    return (
        outcome.error is not None
        or (outcome.reached and outcome.unhealthy)
        or outcome.miss
        or outcome.revalidated is not None
    )


def _unexpired(rows: list[Any]) -> bool:
    """Whether the one row of an `expires_at` read (a lease, a remembered miss) is still in force."""
    expires = _utc(rows[0][0]) if rows else None
    return expires is not None and expires > datetime.now(UTC)


def _utc(value: datetime | str | None) -> datetime | None:
    """A timestamp as a driver returns it (SQLite: zoneless text), as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _retrieved(result: asyncio.Future[Any]) -> None:
    """A flight's failure is its fetcher's to raise: nobody else need look at it."""
    if not result.cancelled():
        result.exception()
