"""Hosted storage: store, fetch and delete assets, with write policies, written once for every format.

Order of a store (the rule that keeps a crash harmless): bytes are hashed into a temporary object
(fsynced when it is closed), or held in memory if the body is small; they are promoted (or written
whole) to their content address, durably, unless that address holds them already, in which case the
temporary object (or the bytes in memory) is kept for now; only then does the one transaction that
creates the asset run. Bytes held in memory and no larger than `Settings.inline_blob_bytes` are not
placed at all: that transaction writes them into their blob's row (`Blob.data`), so they are durable
exactly when the asset is.

The transaction is grouped with other uploads of this process (`Database.batched`; bytes small enough
to stay in memory, an upload's or a proxy's fetched file or document, are handed to this process's
`_SmallCommits`, which writes the bytes of every such commit waiting in one worker-thread call and
commits their rows in another, so that concurrent small commits share their flushes, their statements
and their thread hops; one whose bytes all go into rows skips the first call). It touches each
blob's row, which waits for a GC that holds it and keeps a later GC away, and then checks the bytes
are there (promoting the kept copy if GC took the stored one meanwhile); under a write policy other
than allow it takes the repository's row lock and checks the path and the upload's conflict key; and
it saves the asset and its companions together.
The 201 follows the commit. A crash at any point leaves at worst an object without a row or a
temporary object, which GC removes after LEFTOVER_SECONDS, whatever its grace.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import mimetypes
import threading
import time
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from anyio import to_thread

from artifactory.blobstore import store as blobstore
from artifactory.blobstore.store import BlobError, BlobInfo, StagedBlob
from artifactory.db import queries
from artifactory.db.models import AuditEvent, utcnow
from artifactory.events import AssetEvent
from artifactory.formats import Coordinates
from artifactory.http.errors import BadRequest, HTTPProblem
from artifactory.repository.errors import CompanionDelete, DigestMismatch, TooLarge, WritePolicyViolation
from artifactory.repository.model import HOSTED, Repo, StoredAsset
from artifactory.security.principal import Principal

if TYPE_CHECKING:
    from artifactory.repository.engine import Engine

T = TypeVar("T")


class BlobGone(HTTPProblem):
    """A linked blob was collected before the link took hold (503: the client may simply retry)."""

    status = 503

    def __init__(self, sha256: str) -> None:
        super().__init__(
            f"stored bytes {sha256} were collected while they were being linked; try again",
            headers={"Retry-After": "1"},
        )
        self.sha256 = sha256


@dataclass(frozen=True)
class Upload:
    """Everything a format knows about an upload besides its bytes."""

    path: str
    expected: Mapping[str, str | None] | None = None
    content_type: str | None = None
    component: Coordinates | None = None
    attributes: Mapping[str, Any] | None = None
    component_attributes: Mapping[str, Any] | None = None
    # Stores regardless of the write policy (server-generated files such as metadata documents).
    bypass_write_policy: bool = False
    # Assets with the same conflict key count as the same file for the write policy (one release
    # spelled two ways): under allow_once a second one is refused, checked inside the commit's
    # transaction under the repository's row lock. Kept as attributes["conflict_key"] too.
    conflict_key: str | None = None
    # Files derived from this upload (a wheel's .metadata), stored in the same transaction as it
    # (or not at all), whatever the write policy once the upload itself passes it.
    companions: tuple[Companion, ...] = ()


@dataclass(frozen=True)
class Companion:
    """A file derived from an upload, committed with it or not at all."""

    path: str
    staged: StagedBlob
    content_type: str | None = None


def held_to_policy(repo: Repo) -> bool:
    """Whether the repository's commits and deletions take its row first: a hosted one whose write
    policy is checked (a proxy's cache commits never wait for one another)."""
    return repo.type == HOSTED and repo.write_policy != "allow"


def guess_content_type(path: str) -> str:
    return mimetypes.guess_type(path.rsplit("/", 1)[-1])[0] or "application/octet-stream"


# The most small uploads one worker-thread call commits; more wait for the next one.
MAX_SMALL_BATCH = 64
# The longest the row stage waits for the uploads it expects before it takes a batch
# (`_SmallCommits._gather`), however long the last commit took.
MAX_GATHER_SECONDS = 0.01


@dataclass(eq=False)
class _Small:
    """A small upload waiting for `_SmallCommits`, and then its outcome."""

    repo: Repo
    staged: StagedBlob
    upload: Upload
    content_type: str
    principal: Principal
    kept: list[StagedBlob] = field(default_factory=list)
    saved: tuple[StoredAsset, list[StoredAsset]] | None = None
    error: BaseException | None = None
    checked: bool = False  # the plugins' upload checks have passed
    # Run in the transaction that saves the rows (a proxy's lease release), and whether the rows
    # must survive a power cut (a batch is durable when any of its uploads asks).
    also: Callable[[Any], None] | None = None
    durable: bool = True

    def blobs(self) -> tuple[StagedBlob, ...]:
        return (self.staged, *(c.staged for c in self.upload.companions))


_Entry = tuple[_Small, "asyncio.Future[None]"]


@dataclass(frozen=True)
class _Rows:
    """What the rows of an upload whose bytes are placed are made of."""

    repo: Repo
    staged: StagedBlob
    upload: Upload
    content_type: str
    principal: Principal


class _SamePath(Exception):  # noqa: N818 - not an error of the upload's: the batch is saved again one by one
    pass


class _SmallCommits:
    """Small uploads of this process committed together, in two stages that overlap: one
    worker-thread call writes the bytes of every upload waiting (shared flushes), then another
    commits the rows of every upload whose bytes are written (one grouped transaction); while one
    batch's rows commit, the next batch's bytes are written. A lone upload never waits.

    A row-stage thread goes on from one batch to the next by itself, taking the uploads waiting when
    a commit ends, and wakes each upload through the event loop: a batch does not first wait for the
    loop to get round to starting it (with the loop busy answering the uploads of the batch before,
    that wait took a fifth of the stage's time). On PostgreSQL a second such thread commits another
    batch meanwhile (see `_threads`).

    Under a steady load it gathers (`_gather`): the uploads of a batch and those that waited while it
    committed were all in the stage at once, and with fewer waiting than that when the next batch is
    taken, it waits for the rest, at most as long as the last batch took to commit. A commit costs
    its fixed part (the BEGIN, each statement, the COMMIT and its flush) once per batch, and on one
    busy core that part was what set the rate: 8 clients PUTting small files on SQLite were
    committed 4 at a time on average, as the event loop handed them over, and 8 at a time once
    gathered, with a fifth less CPU per upload. A lone upload, or the first after the stage went
    idle, never waits: the stage expects nothing then; nor does a thread just started (only a
    thread going on from a batch of its own gathers)."""

    def __init__(self, hosted: Hosted) -> None:
        self.hosted = hosted
        self._waiting: list[_Entry] = []
        # Appended to by the event loop, taken from by the row stage's thread.
        self._placed: collections.deque[_Entry] = collections.deque()
        self._placing = False
        self._saving = 0  # row-stage threads running (or starting); under `_lock`
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified as uploads join `_placed`
        # How many uploads the next batch should hold: those of the last batch and those that
        # waited when it had committed (the last batch's clients come back), 0 once the stage went
        # idle; and how long the last batch took to commit, which bounds a wait. Both under `_lock`.
        self._expected = 0
        self._pace = 0.0
        # On PostgreSQL two batches commit at once: the second's statements run while the first
        # commits, and it waits only at its last, the revision bump, which every transaction takes
        # last and in one order (`bump_revision_at_commit`). A SQLite write holds the database's
        # one writer lock from its start: a second thread would only queue.
        self._threads = 1 if hosted.engine.db.is_sqlite else 2

    async def commit(self, small: _Small) -> tuple[StoredAsset, list[StoredAsset]]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if all(self.hosted.inline(blob) for blob in small.blobs()):
            # Nothing to write to the blob store: the bytes travel in the rows' transaction.
            self._placed.append((small, done))
            self._start_saving()
        else:
            self._waiting.append((small, done))
            if not self._placing:
                self._placing = True
                ran: list[bool] = []
                task = asyncio.get_running_loop().create_task(self._place(ran))
                task.add_done_callback(functools.partial(self._place_never_ran, ran))
        # Shielded: the commit goes on if the client goes away; its outcome is simply not sent.
        await asyncio.shield(done)
        if small.error is not None:
            raise small.error
        assert small.saved is not None
        return small.saved

    async def _place(self, ran: list[bool]) -> None:
        ran.append(True)
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_SMALL_BATCH], self._waiting[MAX_SMALL_BATCH:]
                try:
                    await to_thread.run_sync(self.hosted._place_many, [s for s, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to every upload of the call
                    _settle(batch, exc)
                    continue
                except BaseException:
                    _settle(batch, RuntimeError("the commit was interrupted"))
                    raise
                self._placed.extend(batch)
                self._start_saving()
        finally:
            self._placing = False
            _settle(self._waiting, RuntimeError("the commit was interrupted"))  # only if interrupted
            self._waiting = []

    def _place_never_ran(self, ran: list[bool], _task: asyncio.Task[None]) -> None:
        """A placing task cancelled before it started (its loop is closing) will never run: what it
        would have taken is woken with an error, and the next upload starts another."""
        if not ran:
            self._placing = False
            _settle(self._waiting, RuntimeError("the commit was interrupted"))
            self._waiting = []

    def _start_saving(self) -> None:
        with self._lock:
            self._arrived.notify_all()  # for a thread gathering (`_gather`)
            if self._saving >= self._threads:
                return  # a running thread takes what was just appended
            self._saving += 1
        ran: list[bool] = []
        task = asyncio.get_running_loop().create_task(self._save(ran))
        task.add_done_callback(functools.partial(self._save_never_ran, ran))

    async def _save(self, ran: list[bool]) -> None:
        await to_thread.run_sync(self._save_waiting, ran)

    def _save_never_ran(self, ran: list[bool], _task: asyncio.Task[None]) -> None:
        """A saving task that ended before its thread ran (cancelled before it started: its loop
        is closing) leaves the count of threads as if it had; with no other thread left, what is
        waiting is woken with an error now, while its loop still runs."""
        with self._lock:
            if ran:
                return
            ran.append(False)  # should its thread start after all, it ends at once
            self._saving -= 1
            left: list[_Entry] = []
            if not self._saving:
                left = list(self._placed)
                self._placed.clear()
        _settle(left, RuntimeError("the commit was interrupted"))

    def _take(self) -> list[_Entry] | None:
        """The next batch of uploads waiting for their rows; None when none is left, and the
        calling thread then ends (it is counted off)."""
        with self._lock:
            if not self._placed:
                self._saving -= 1
                self._expected = 0  # idle: the next upload is taken at once
                return None
            return [self._placed.popleft() for _ in range(min(MAX_SMALL_BATCH, len(self._placed)))]

    def _gather(self) -> None:
        """Blocking, before a thread takes its next batch: while fewer uploads wait than the load
        has been committing together, wait for more, at most as long as the last batch took (see
        the class docstring). Returns at once when none waits (`_take` then ends the thread)."""
        with self._lock:
            deadline = time.monotonic() + min(self._pace, MAX_GATHER_SECONDS)
            while 0 < len(self._placed) < self._expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._arrived.wait(left)

    def _save_waiting(self, ran: list[bool]) -> None:
        """Blocking, in one worker thread: commit the rows of the uploads waiting, a batch at a time,
        until none is left; each batch's uploads are woken through their event loop (`_wake`)."""
        with self._lock:
            if ran:  # its task ended first and counted it off (`_save_never_ran`)
                return
            ran.append(True)
        writing = self.hosted.engine.db.writing
        # A thread gathers between batches of its own only: one just started (the stage was idle,
        # or every thread busy: PostgreSQL's second) takes what waits at once, rather than waiting
        # for the commits another thread's last batch expected, which that thread takes itself.
        gathers = False
        try:
            while True:
                batch: list[_Entry] | None = None
                failure: BaseException = RuntimeError("the commit was interrupted")
                try:
                    if gathers:
                        self._gather()
                    gathers = True
                    # The batch is chosen once the writer lock is held: what arrives while another
                    # process of the node commits (SQLite) joins it.
                    with writing():
                        batch = self._take()
                        if batch is None:
                            return
                        started = time.monotonic()
                        self.hosted._save_many([s for s, _ in batch if s.error is None])
                        with self._lock:
                            self._pace = time.monotonic() - started
                            self._expected = min(MAX_SMALL_BATCH, len(batch) + len(self._placed))
                except Exception as exc:  # noqa: BLE001 - handed to every upload of the call
                    failure = exc
                    if batch is None:  # the lock itself failed: the batch waiting gets the error
                        batch = self._take()
                        if batch is None:
                            return
                finally:
                    if batch is not None:
                        _wake(batch, failure)
        except BaseException:
            # Interrupted: nobody would take what is left.
            with self._lock:
                self._saving -= 1
                left = list(self._placed)
                self._placed.clear()
            _wake(left, RuntimeError("the commit was interrupted"))
            raise


def _wake(entries: Sequence[_Entry], failure: BaseException) -> None:
    """From a worker thread: `_settle` each upload on the event loop it waits on. A server has one
    loop per process, but a thread may outlive the loop that started it (tests run each upload in a
    loop of its own) and take an upload of the next; an upload of a loop that has closed waits for
    nothing any more."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Entry]] = {}
    for entry in entries:
        by_loop.setdefault(entry[1].get_loop(), []).append(entry)
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(_settle, waiting, failure)


def _settle(entries: Sequence[_Entry], failure: BaseException) -> None:
    """Wake every upload of `entries`, with `failure` as the outcome of any that has none."""
    for small, done in entries:
        if small.saved is None and small.error is None:
            small.error = failure
        if not done.done():
            done.set_result(None)


class Hosted:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._small = _SmallCommits(self)

    def inline(self, blob: StagedBlob) -> bool:
        """Whether a commit keeps these staged bytes in their blob's database row rather than
        placing them in the blob store: small bytes held in memory (`Settings.inline_blob_bytes`).
        The row is written in the commit's transaction, so the bytes are durable with it."""
        limit = self.engine.settings.inline_blob_bytes
        return blob.in_memory and blob.data is not None and blob.info.size <= limit

    def check_write_policy(self, repo: Repo, path: str, existing: str | None) -> None:
        """Refuse a write the policy forbids; `existing` is the path of a stored asset the write
        would replace (the same path, or another one with the same conflict key), or None."""
        policy = repo.write_policy
        if policy == "deny":
            raise WritePolicyViolation(f"repository {repo.name} is read-only (write policy deny)")
        if policy == "allow_once" and existing is not None:
            same = "" if existing == path else f" (the same file as {existing}, stored or deleted)"
            raise WritePolicyViolation(
                f"repository {repo.name} does not allow updating assets (write policy allow_once): "
                f"{path}{same}",
                existing,
            )

    async def precheck(self, repo: Repo, upload: Upload) -> None:
        """The write policy, checked early to spare a doomed upload (`_save` checks it again).
        Under allow nothing is ever refused, so nothing is read."""
        if upload.bypass_write_policy or repo.write_policy == "allow":
            return
        existing = None
        if repo.write_policy != "deny":
            existing = await self.engine.db_call(self._existing, repo, upload)
        self.check_write_policy(repo, upload.path, existing)

    async def stage(
        self, repo: Repo, chunks: AsyncIterable[bytes], upload: Upload, max_size: int | None
    ) -> StagedBlob:
        staged, _ = await self._ingest(chunks, upload, max_size, None)
        return staged

    async def _ingest(
        self,
        chunks: AsyncIterable[bytes],
        upload: Upload,
        max_size: int | None,
        then: Callable[[StagedBlob], T] | None,
    ) -> tuple[StagedBlob, T | None]:
        try:
            return await self.engine.blobs.ingest_then(chunks, upload.expected, max_size, then)
        except blobstore.DigestMismatch as exc:
            raise DigestMismatch(
                f"checksum mismatch for {upload.path}: {exc}", exc.algorithm, exc.expected, exc.actual
            ) from None
        except blobstore.TooLarge as exc:
            raise TooLarge(str(exc)) from None
        except BlobError as exc:
            raise BadRequest(str(exc)) from None

    async def store(
        self, repo: Repo, chunks: AsyncIterable[bytes], upload: Upload, principal: Principal
    ) -> StoredAsset:
        """Receive, check and commit an upload: a small body (held in memory) with the other small
        uploads of this process waiting (`_SmallCommits`), a larger one in a worker thread of its own."""
        staged: StagedBlob | None = None
        kept: list[StagedBlob] = []
        try:
            await self.precheck(repo, upload)
            limit = int(repo.config.get("max_upload_bytes") or self.engine.settings.max_upload_bytes)
            content_type = self._content_type(repo, upload)
            staged, _ = await self._ingest(chunks, upload, limit, None)
            saved = await self._save_staged(repo, staged, upload, content_type, principal, kept)
        except BaseException:
            await self.discard([*([staged] if staged is not None else []), *upload.companions])
            raise
        return await self._stored(repo, principal, saved, kept)

    async def discard(self, staged: Sequence[StagedBlob | Companion]) -> None:
        for item in staged:
            blob = item.staged if isinstance(item, Companion) else item
            if blob.unplaced:
                await self.engine.blobs.discard(blob)

    def _content_type(self, repo: Repo, upload: Upload) -> str:
        fmt = self.engine.formats[repo.format]
        return upload.content_type or fmt.content_type(upload.path) or guess_content_type(upload.path)

    async def commit(
        self,
        repo: Repo,
        staged: StagedBlob,
        upload: Upload,
        principal: Principal,
        also: Callable[[Any], None] | None = None,
        durable: bool = True,
    ) -> StoredAsset:
        """Make staged bytes the asset at upload.path, and its companions theirs, all or nothing:
        plugin checks, promotion, then one (grouped) transaction for every asset row, which also
        runs `also(session)` (a proxy's lease release) so that it commits with them. `durable=False`
        for rows a power cut may lose (a proxy's cache: its bytes are durable all the same, and a
        lost row is fetched again)."""
        blobs = [staged, *(c.staged for c in upload.companions)]
        kept: list[StagedBlob] = []
        try:
            content_type = self._content_type(repo, upload)
            saved = await self._save_staged(
                repo, staged, upload, content_type, principal, kept, also, durable
            )
        except BaseException:
            await self.discard(blobs)
            raise
        return await self._stored(repo, principal, saved, kept)

    async def _save_staged(
        self,
        repo: Repo,
        staged: StagedBlob,
        upload: Upload,
        content_type: str,
        principal: Principal,
        kept: list[StagedBlob],
        also: Callable[[Any], None] | None = None,
        durable: bool = True,
    ) -> tuple[StoredAsset, list[StoredAsset]]:
        """The commit of staged bytes: held in memory, with the other small commits of this process
        waiting (`_SmallCommits`); else in a worker thread of its own (`_place_and_save`)."""
        named = self.engine.formats[repo.format].companions(upload.path)
        strays = [c.path for c in upload.companions if c.path not in named]
        if strays:  # a format's mistake: nothing would ever delete them
            raise ValueError(f"{strays} are not companions of {upload.path} (Format.companions)")
        if staged.in_memory:
            small = _Small(repo, staged, upload, content_type, principal, kept, also=also, durable=durable)
            return await self._small.commit(small)
        return await self.engine.db_call(
            self._place_and_save, repo, upload, content_type, principal, also, kept, staged, durable
        )

    def _place_and_save(
        self,
        repo: Repo,
        upload: Upload,
        content_type: str,
        principal: Principal,
        also: Callable[[Any], None] | None,
        kept: list[StagedBlob],
        staged: StagedBlob,
        durable: bool = True,
    ) -> tuple[StoredAsset, list[StoredAsset]]:
        """Blocking, in one worker thread: plugin checks, promotion, the (grouped) transaction."""
        engine = self.engine
        engine.pm.hook.artifactory_check_upload(
            repository=repo.name,
            format=repo.format,
            path=upload.path,
            size=staged.info.size,
            principal=principal,
        )
        blobs = [staged, *(c.staged for c in upload.companions)]
        kept.extend(b for b in blobs if b.unplaced and not self.inline(b) and not engine.blobs.place(b))
        save = functools.partial(self._save, repo, staged, upload, content_type, principal, also)
        saved, revision = engine.db.batched(save, (repo.id, upload.path), durable)
        # The cached snapshot takes the revision this commit wrote, rather than being read again.
        engine.repos.advance(repo.name, revision())
        return saved()

    def _check_many(self, batch: Sequence[_Small]) -> list[_Small]:
        """Blocking: the plugins' upload checks of each upload not checked yet; those that pass (an
        upload refused gets its error)."""
        ready: list[_Small] = []
        for small in batch:
            if small.error is not None:
                continue
            if not small.checked:
                try:
                    self.engine.pm.hook.artifactory_check_upload(
                        repository=small.repo.name,
                        format=small.repo.format,
                        path=small.upload.path,
                        size=small.staged.info.size,
                        principal=small.principal,
                    )
                except Exception as exc:  # noqa: BLE001 - this upload's refusal
                    small.error = exc
                    continue
                small.checked = True
            ready.append(small)
        return ready

    def _place_many(self, batch: Sequence[_Small]) -> None:
        """Blocking, in one worker thread: plugin checks, then the bytes of several small uploads
        written together; an upload refused, or whose bytes could not be written, gets its error."""
        engine = self.engine
        ready = self._check_many(batch)
        unplaced = [
            (small, blob)
            for small in ready
            for blob in small.blobs()
            if blob.unplaced and not self.inline(blob)
        ]
        try:
            placed = engine.blobs.place_many([blob for _small, blob in unplaced])
        except Exception as exc:  # noqa: BLE001 - the shared write failed: every upload gets it
            for small in ready:
                small.error = exc
            return
        for (small, blob), was_placed in zip(unplaced, placed, strict=True):
            if not was_placed:
                small.kept.append(blob)

    def _save_many(self, batch: Sequence[_Small]) -> None:
        """Blocking, in one worker thread: the rows of several small uploads whose bytes are placed,
        in one transaction of a few statements for them all (`_save_all`); if that fails, each
        upload's rows as a job of their own, grouped (`Database.together`), so that an upload's
        outcome (or its own error) is never another's."""
        engine = self.engine
        batch = self._check_many(batch)  # those that went straight here (every blob inline)
        if not batch:
            return
        uploads = [_Rows(s.repo, s.staged, s.upload, s.content_type, s.principal) for s in batch]
        durable = any(s.durable for s in batch)
        outcomes: Sequence[tuple[Any, BaseException | None]] = []
        if len(uploads) > 1:
            save = functools.partial(self._save_rows, uploads, batch)
            [(result, error)] = engine.db.together([(save, 0)], durable)
            if error is None:
                saved, revisions = result
                outcomes = [
                    ((one, revisions[small.repo.id]), None) for small, one in zip(batch, saved(), strict=True)
                ]
        if not outcomes:
            jobs = [
                (functools.partial(self._save_rows, [rows], [small]), (rows.repo.id, rows.upload.path))
                for rows, small in zip(uploads, batch, strict=True)
            ]
            outcomes = [
                (None, error) if error is not None else ((result[0]()[0], result[1][rows.repo.id]), None)
                for rows, (result, error) in zip(uploads, engine.db.together(jobs, durable), strict=True)
            ]
        for small, (result, error) in zip(batch, outcomes, strict=True):
            if error is not None:
                small.error = error
                continue
            small.saved, revision = result
            engine.repos.advance(small.repo.name, revision())

    def _save_rows(
        self, uploads: Sequence[_Rows], batch: Sequence[_Small], session: Any
    ) -> tuple[Callable[[], list[tuple[StoredAsset, list[StoredAsset]]]], dict[int, Callable[[], int]]]:
        """`_save_all` of the uploads, then what each asked to run in the same transaction."""
        saved = self._save_all(uploads, session)
        for small in batch:
            if small.also is not None:
                small.also(session)
        return saved

    async def _stored(
        self,
        repo: Repo,
        principal: Principal,
        saved: tuple[StoredAsset, list[StoredAsset]],
        kept: list[StagedBlob],
    ) -> StoredAsset:
        """After the commit: drop temporaries of bytes that were stored already, tell plugins."""
        await self.discard(kept)
        asset, companions = saved
        for stored in (asset, *companions):
            self.engine.fire(
                "artifactory_asset_stored",
                event=AssetEvent(
                    repository=repo.name,
                    format=repo.format,
                    path=stored.path,
                    sha256=stored.sha256,
                    size=stored.size,
                    actor=principal.username,
                    attributes=dict(stored.attributes),
                ),
            )
        return asset

    def _existing(self, repo: Repo, upload: Upload) -> str | None:
        with self.engine.db.read() as session:
            return self._collision(session, repo, upload)

    def _collision(self, session: Any, repo: Repo, upload: Upload) -> str | None:
        """The stored path this upload would replace: the same path, one with the same conflict key,
        or one whose deletion left the same tombstone (what was deleted is not stored again)."""
        if queries.find_asset(session, repo.id, upload.path) is not None:
            return upload.path
        if upload.conflict_key:
            found = queries.find_conflict(session, repo.id, upload.conflict_key)
            if found is not None:
                return found
        key = self.engine.formats[repo.format].tombstone(upload.path)
        if key is not None:
            return queries.tombstoned(session, repo.id, key)
        return None

    def _save(
        self,
        repo: Repo,
        staged: StagedBlob,
        upload: Upload,
        content_type: str,
        principal: Principal,
        also: Callable[[Any], None] | None,
        session: Any,
    ) -> tuple[Callable[[], tuple[StoredAsset, list[StoredAsset]]], Callable[[], int]]:
        """One upload's rows (`_save_all`), and `also(session)` in the same transaction."""
        saved, revisions = self._save_all([_Rows(repo, staged, upload, content_type, principal)], session)
        if also is not None:
            also(session)
        return lambda: saved()[0], revisions[repo.id]

    def _save_all(
        self, uploads: Sequence[_Rows], session: Any
    ) -> tuple[Callable[[], list[tuple[StoredAsset, list[StoredAsset]]]], dict[int, Callable[[], int]]]:
        """The rows of uploads whose bytes are placed, in the session's transaction, each kind of row
        in one statement for them all; from functions to call once the transaction is done: per
        upload, its asset and its companions as saved, and per repository, its new revision (on
        PostgreSQL the statements travel together and are read back only then). Raises if
        any upload may not be saved (its write policy, bytes collected meanwhile), and when two
        uploads name the same path (the caller then saves them one by one, in order)."""
        self._check_policies(uploads, session)
        blobs = {
            b.info.sha256: b
            for rows in uploads
            for b in (rows.staged, *(c.staged for c in rows.upload.companions))
        }
        keys = [
            (rows.repo.id, c.namespace, c.name, c.version)
            for rows in uploads
            if (c := rows.upload.component) is not None and not rows.upload.component_attributes
        ]
        # Small bytes are written into their blob's row (`inline`), whatever the row held before.
        inline = {sha: b.data for sha, b in blobs.items() if self.inline(b) and b.data is not None}
        # The blobs' row locks must hold before their bytes are looked for (when every blob's bytes
        # travel in its row, nothing is looked for, and nothing is waited for until the commit).
        wait = len(inline) < len(blobs)
        queries.touch_blobs(session, [blob.info for blob in blobs.values()], wait=wait, inline=inline)
        queries.touch_components(session, keys)
        for sha256 in sorted(blobs):
            if sha256 in inline or self.engine.blobs.publish_kept(blobs[sha256]):
                continue
            if queries.inline_bytes(session, sha256) is None:  # a link to bytes kept in the row
                raise BlobGone(sha256)
        now = utcnow()
        # Per upload, (path, bytes, content type, attributes, component) of each asset it saves.
        files: list[list[tuple[str, BlobInfo, str, dict[str, Any], int | None]]] = []
        new: list[queries.NewAsset] = []
        for rows in uploads:
            upload, component_id, named = rows.upload, None, None
            if (c := upload.component) is not None:
                if upload.component_attributes:
                    component_id = queries.ensure_component(
                        session,
                        rows.repo.id,
                        c.namespace,
                        c.name,
                        c.version,
                        dict(upload.component_attributes),
                    )
                else:  # written by `touch_components` above, and found by the asset's statement
                    named = (c.namespace, c.name, c.version)
            own = self._files(rows, component_id)
            files.append(own)
            new.extend(
                queries.NewAsset(
                    rows.repo.id,
                    path,
                    info.sha256,
                    ctype,
                    attrs,
                    cid,
                    upload.conflict_key if i == 0 else None,
                    named if i == 0 else None,
                )
                for i, (path, info, ctype, attrs, cid) in enumerate(own)
            )
        if len({(a.repository_id, a.path) for a in new}) < len(new):
            raise _SamePath("two uploads of one batch name the same path")
        asset_ids = queries.save_assets(session, new, now)
        for rows, own in zip(uploads, files, strict=True):
            queries.bump_generations(
                session, rows.repo.id, self.touched_names(rows.repo, [f[0] for f in own], rows.upload)
            )
        queries.add_audit(
            session,
            [
                {
                    "actor": rows.principal.username,
                    "action": "asset.stored",
                    "repository": rows.repo.name,
                    "path": path,
                    "details": {"sha256": info.sha256, "size": info.size},
                }
                for rows, own in zip(uploads, files, strict=True)
                for path, info, *_rest in own
            ],
        )
        # Once per transaction, last: the revision's row lock (on PostgreSQL concurrent commits to a
        # repository queue on it) is held for the commit only.
        revisions = {rows.repo.id: queries.bump_revision_at_commit(session, rows.repo.id) for rows in uploads}

        def saved() -> list[tuple[StoredAsset, list[StoredAsset]]]:
            """What was written, as a read would return it (no second query)."""
            ids, done = asset_ids(), []
            for rows, own in zip(uploads, files, strict=True):
                stored = [
                    StoredAsset.of_blob(
                        rows.repo.name, path, info, ctype, now, attrs, *ids[(rows.repo.id, path)]
                    )
                    for path, info, ctype, attrs, _cid in own
                ]
                done.append((stored[0], stored[1:]))
            return done

        return saved, revisions

    @staticmethod
    def _files(
        rows: _Rows, component_id: int | None
    ) -> list[tuple[str, BlobInfo, str, dict[str, Any], int | None]]:
        """(path, bytes, content type, attributes, component) of each asset an upload saves: its
        file, then its companions."""
        upload = rows.upload
        attributes = dict(upload.attributes or {})
        if upload.conflict_key:
            attributes["conflict_key"] = upload.conflict_key
        files = [(upload.path, rows.staged.info, rows.content_type, attributes, component_id)]
        for companion in upload.companions:
            companion_type = companion.content_type or guess_content_type(companion.path)
            files.append(
                (companion.path, companion.staged.info, companion_type, {"companion_of": upload.path}, None)
            )
        return files

    def _check_policies(self, uploads: Sequence[_Rows], session: Any) -> None:
        """The write policy of each upload that is held to one, against what is stored and what the
        uploads before it in `uploads` store (the same path or conflict key counts as the same file)."""
        locked: set[int] = set()
        earlier: dict[tuple[int, str, str], str] = {}
        for rows in uploads:
            repo, upload = rows.repo, rows.upload
            if not held_to_policy(repo):
                continue
            if repo.id not in locked:
                # Held to the end: a concurrent commit of the same file (or conflict key) waits here
                # and then sees this one's asset. Taken by an upload that bypasses the policy too (a
                # Maven snapshot): a deletion here takes it first as well (`_delete`), and a commit
                # holding the rows it then waits for would deadlock with it.
                queries.lock_repository(session, repo.id)
                locked.add(repo.id)
            if upload.bypass_write_policy:
                continue
            claims = [(repo.id, "path", upload.path)]
            if upload.conflict_key:
                claims.append((repo.id, "key", upload.conflict_key))
            existing = next((earlier[c] for c in claims if c in earlier), None)
            self.check_write_policy(repo, upload.path, existing or self._collision(session, repo, upload))
            earlier.update(dict.fromkeys(claims, upload.path))

    async def delete(self, repo: Repo, path: str, principal: Principal) -> StoredAsset | None:
        deleted = await self.engine.db_call(self._delete, repo, path, principal)
        if not deleted:
            return None
        self.engine.repos.forget(repo.name)
        for asset in deleted:
            self.engine.fire(
                "artifactory_asset_deleted",
                event=AssetEvent(
                    repository=repo.name,
                    format=repo.format,
                    path=asset.path,
                    sha256=asset.sha256,
                    size=asset.size,
                    actor=principal.username,
                ),
            )
        return deleted[0]

    def touched_names(
        self, repo: Repo, paths: Sequence[str], upload: Upload | None = None
    ) -> list[tuple[str, str]]:
        """The component names a change to `paths` touches: their documents must be rebuilt (none
        where the format builds no documents)."""
        fmt = self.engine.formats[repo.format]
        if not fmt.builds_documents:
            return []
        names = [(c.namespace, c.name) for c in (fmt.coordinates(p) for p in paths) if c is not None]
        if upload is not None and upload.component is not None:
            names.append((upload.component.namespace, upload.component.name))
        return names

    def _delete(self, repo: Repo, path: str, principal: Principal) -> list[StoredAsset]:
        """Delete the asset at `path` and its companions (`Format.companions`) in one transaction,
        each leaving its tombstone and audit event; the assets deleted, `path`'s first (none when
        `path` is not stored). A companion whose file is stored is refused (`CompanionDelete`).

        Rows are locked in the order a commit locks them, so that neither waits for the other in
        a cycle (PostgreSQL would abort one): the repository's row first where commits held to the
        write policy take it first (`_check_policies`), the component's, the assets' by path, the
        generations', and the repository's revision last."""
        fmt = self.engine.formats[repo.format]
        with self.engine.db.write() as session:
            if held_to_policy(repo):
                queries.lock_repository(session, repo.id)
            current = queries.find_asset(session, repo.id, path)
            if current is None:
                return []
            if current.component_id is not None:
                queries.lock_component(session, current.component_id)
            companions = fmt.companions(path)
            # In the order a commit takes them (`queries.save_assets`: by path).
            rows = {each: queries.lock_asset(session, repo.id, each) for each in sorted((path, *companions))}
            if rows[path] is None:
                return []
            owner = fmt.companion_of(path)
            # Looked for with `path`'s row locked: a commit of `owner` (which writes `path` too) has
            # either committed, and is seen, or waits for this deletion to end.
            if owner is not None and queries.find_asset(session, repo.id, owner) is not None:
                raise CompanionDelete(path, owner)
            deleted = []
            names = []
            for each in (path, *companions):
                found = rows[each]
                if found is None:
                    continue
                if found.component_id is not None and fmt.builds_documents:
                    named = queries.component_name(session, found.component_id)
                    names.extend([named] if named else [])
                queries.delete_found(session, found)
                deleted.append(queries.to_asset(repo.name, found))
                key = fmt.tombstone(each)
                if key is not None:
                    queries.add_tombstone(session, repo.id, key, each)
                actor = principal.username
                session.add(AuditEvent(actor=actor, action="asset.deleted", repository=repo.name, path=each))
            names.extend(self.touched_names(repo, [asset.path for asset in deleted]))
            queries.bump_generations(session, repo.id, names)
            queries.bump_revision_at_commit(session, repo.id)  # last, as a commit moves it
            return deleted


__all__ = ["BlobGone", "Companion", "Hosted", "Upload", "WritePolicyViolation", "HTTPProblem"]
