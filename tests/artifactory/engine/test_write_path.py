"""What the write path costs in database transactions, counted (not timed) on SQLite and PostgreSQL:
a hosted PUT at most 2 and a proxy's cold miss at most 3, with group commit keeping every upload's
own outcome (a refusal stays the refused upload's, the others commit)."""

import asyncio
import fcntl
import hashlib
import os
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from artifactory.db import engine as db_engine
from artifactory.repository import hosted as hosted_module
from artifactory.repository.hosted import Companion, Upload, WritePolicyViolation
from artifactory.repository.model import StoredAsset, Streaming
from tests.artifactory.engine.test_engine_api import ADMIN, make_repo
from tests.artifactory.repository.leases import leases_left
from tests.artifactory.repository.upstream import running


@contextmanager
def transactions(state):
    """Every transaction begun on the database's engines (read and write) while the block runs;
    the hot read path's lookups, which run on a raw pooled connection, are counted as one each."""
    counted = {"begin": 0, "commit": 0, "lookup": 0}
    lock = threading.Lock()

    def on(kind):
        def listener(*args):
            if kind == "commit" and args and args[0].get_execution_options().get("postgresql_readonly"):
                return  # the end of a read (`Database.read` on PostgreSQL), not a write's commit
            with lock:
                counted[kind] += 1

        return listener

    engines = {id(e): e for e in (state.db.engine, state.db.lazy_engine, state.db.read_engine)}.values()
    listeners = [(e, name, on(name)) for e in engines for name in ("begin", "commit")]
    for engine, name, fn in listeners:
        event.listen(engine, name, fn)
    lookup = state.engine._find_asset
    count_lookup = on("lookup")

    def counting(*args):
        count_lookup()
        return lookup(*args)

    state.engine._find_asset = counting
    try:
        yield counted
    finally:
        state.engine._find_asset = lookup
        for engine, name, fn in listeners:
            event.remove(engine, name, fn)


def raw_proxy(state, url):
    name = f"p{os.urandom(4).hex()}"
    state.engine.repos.create({"name": name, "format": "raw", "type": "proxy", "url": url})
    return state.engine.repository(name)


async def drained(content):
    if isinstance(content, Streaming):
        return b"".join([chunk async for chunk in content.chunks])
    return content


async def settled(state):
    """Wait for the proxy's background stores (a streamed fetch commits after its last chunk)."""
    while state.engine.proxy._tasks:
        await asyncio.gather(*state.engine.proxy._tasks, return_exceptions=True)


def test_a_hosted_put_costs_at_most_two_transactions(state):
    repo = make_repo(state)

    async def scenario():
        await state.engine.put_bytes(repo, b"warm the pools", Upload(path="warm.bin"), ADMIN)
        with transactions(state) as counted:  # a request's: its repository, then its upload
            current = state.engine.repository(repo.name)
            stored = await state.engine.put_bytes(current, os.urandom(1024), Upload(path="a/b.bin"), ADMIN)
        assert stored.path == "a/b.bin"
        return counted

    counted = asyncio.run(scenario())
    assert counted["begin"] + counted["lookup"] <= 2, counted
    assert counted["commit"] == 1, counted


def test_a_cold_miss_costs_at_most_three_transactions_streamed_or_whole(state):
    with running() as upstream:
        upstream.put("lib/one.bin", os.urandom(5000))
        upstream.put("lib/two.bin", os.urandom(5000))
        repo = raw_proxy(state, upstream.url)

        async def scenario():
            engine = state.engine
            try:
                await engine.get(repo, "lib/warm.bin", ADMIN)  # a 404: pools and health copy warmed
                results = {}
                for path, stream in (("lib/one.bin", True), ("lib/two.bin", False)):
                    engine.proxy._health.clear()  # the worst case: this process's health copy expired
                    with transactions(state) as counted:
                        content = await engine.get(repo, path, ADMIN, stream=stream)
                        body = await drained(content)
                        await settled(state)
                    results[path] = (counted, body)
                    stored = engine.lookup(repo, path)
                    assert stored is not None and stored.size == 5000
                with transactions(state) as counted:
                    hit = await engine.get(repo, "lib/one.bin", ADMIN)
                results["hit"] = (counted, hit)
                return results
            finally:
                await engine.close()

        results = asyncio.run(scenario())
        for path in ("lib/one.bin", "lib/two.bin"):
            counted, _body = results[path]
            assert counted["begin"] + counted["lookup"] <= 3, (path, counted)
            assert counted["commit"] <= 2, (path, counted)
            assert upstream.count(path) == 1
        counted, hit = results["hit"]
        assert isinstance(hit, StoredAsset) and counted["begin"] == 0 and counted["lookup"] == 1, counted


def test_a_cold_miss_the_upstream_does_not_have_costs_at_most_three_and_is_remembered(state):
    with running() as upstream:
        repo = raw_proxy(state, upstream.url)

        async def scenario():
            engine = state.engine
            try:
                await engine.get(repo, "warm.bin", ADMIN)
                engine.proxy._health.clear()
                with transactions(state) as missed:
                    assert await engine.get(repo, "nothing.bin", ADMIN) is None
                with transactions(state) as remembered:
                    assert await engine.get(repo, "nothing.bin", ADMIN) is None
                return missed, remembered
            finally:
                await engine.close()

        missed, remembered = asyncio.run(scenario())
        assert missed["begin"] + missed["lookup"] <= 3, missed
        assert remembered["begin"] + remembered["lookup"] <= 2, remembered
        assert upstream.count("nothing.bin") == 1


def put(engine, repo, text, path):
    return engine.put_bytes(repo, text.encode(), Upload(path=path), ADMIN)


def test_concurrent_uploads_share_commits_and_a_refusal_stays_its_own(state):
    """allow_once: racing uploads of one path and of distinct paths, grouped into shared commits;
    exactly one of the same-path uploads wins, every distinct path is stored."""
    repo = make_repo(state, write_policy="allow_once")

    async def scenario():
        engine = state.engine
        with transactions(state) as counted:
            results = await asyncio.gather(
                *(put(engine, repo, f"same {i}", "same.bin") for i in range(6)),
                *(put(engine, repo, f"own {i}", f"own/{i}.bin") for i in range(24)),
                return_exceptions=True,
            )
        return results, counted

    results, counted = asyncio.run(scenario())
    same, own = results[:6], results[6:]
    assert sum(isinstance(r, StoredAsset) for r in same) == 1, same
    assert all(isinstance(r, WritePolicyViolation) for r in same if not isinstance(r, StoredAsset))
    assert all(isinstance(r, StoredAsset) for r in own), own
    stored = {a.path: a for a in state.engine._under(repo, "")}
    assert sorted(stored) == sorted([f"own/{i}.bin" for i in range(24)] + ["same.bin"])
    for i in range(24):
        assert asyncio.run(state.engine.read_bytes(stored[f"own/{i}.bin"].sha256)) == f"own {i}".encode()
    # Thirty commits took fewer transactions than thirty: some were grouped.
    assert counted["commit"] < 30, counted


def test_concurrent_uploads_of_the_same_bytes_share_one_blob_and_each_keeps_its_path(state):
    """Small uploads committed together: identical bodies in one batch are written once, and every
    path still gets its asset pointing at them."""
    repo = make_repo(state)

    async def scenario():
        return await asyncio.gather(
            *(put(state.engine, repo, "identical", f"copy/{i}.bin") for i in range(12)),
            *(put(state.engine, repo, f"other {i}", f"other/{i}.bin") for i in range(4)),
        )

    results = asyncio.run(scenario())
    digest = hashlib.sha256(b"identical").hexdigest()
    assert {r.sha256 for r in results[:12]} == {digest}
    stored = {a.path: a for a in state.engine._under(repo, "")}
    assert len(stored) == 16 and all(stored[f"copy/{i}.bin"].sha256 == digest for i in range(12))
    assert asyncio.run(state.engine.read_bytes(digest)) == b"identical"  # kept in the blob's row


@pytest.mark.parametrize("policy", ["allow", "deny"])
def test_allow_and_deny_are_decided_without_reading_first(state, policy):
    repo = make_repo(state, write_policy=policy)

    async def scenario():
        with transactions(state) as counted:
            try:
                await state.engine.put_bytes(repo, b"x", Upload(path="x.bin"), ADMIN)
            except WritePolicyViolation:
                pass
        return counted

    counted = asyncio.run(scenario())
    # allow: the save alone (its RETURNING gives the new revision); no read of the path first.
    assert counted["begin"] == (1 if policy == "allow" else 0), counted


def test_the_asset_a_put_returns_is_the_stored_one_without_reading_it_back(state, raw_companions):
    """The commit builds its answer from what it wrote: it must equal a read of the row, for a new
    path and for one replaced (new bytes, the same asset), and its companion is stored with it."""
    repo = make_repo(state)
    fmt_attrs = {"kind": "file", "nested": {"n": 1}}

    async def scenario():
        first = await state.engine.put_bytes(
            repo, b"one", Upload(path="a/x.bin", attributes=fmt_attrs, conflict_key="x"), ADMIN
        )
        staged = await state.engine.stage_bytes(b"derived")
        upload = Upload(
            path="a/x.bin",
            content_type="text/x-test",
            companions=(Companion(path="a/x.bin.meta", staged=staged, content_type="text/plain"),),
        )
        second = await state.engine.put_bytes(repo, b"two", upload, ADMIN)
        return first, second

    first, second = asyncio.run(scenario())
    assert first.attributes == {**fmt_attrs, "conflict_key": "x"}
    assert second.asset_id == first.asset_id and second.content_type == "text/x-test"
    current = state.engine.repository(repo.name)
    assert state.engine.lookup(current, "a/x.bin") == second
    assert second.sha512 == hashlib.sha512(b"two").hexdigest() and second.size == 3
    companion = state.engine.lookup(current, "a/x.bin.meta")
    assert companion is not None and companion.attributes == {"companion_of": "a/x.bin"}
    assert companion.content_type == "text/plain" and companion.updated_at == second.updated_at


def ended(small):
    """Wait for the row stage's threads to end (each wakes its last batch's uploads before it looks
    for more, finds none and ends), then check that nothing is left waiting."""
    deadline = time.monotonic() + 10
    while small._saving and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not small._saving and not small._placed


def test_the_row_stage_goes_on_through_waves_of_uploads_and_after_an_interruption(state, monkeypatch):
    """The row stage's thread takes batch after batch by itself (`_SmallCommits._save_waiting`;
    on PostgreSQL two such threads): uploads arriving while a batch commits are committed next,
    each upload woken with its own outcome. A thread interrupted by something that is not an
    upload's error wakes the uploads of its batch and every upload still waiting with an error, and
    the next upload starts a new one."""
    repo = make_repo(state)
    small = state.engine.hosted._small
    save_many = type(state.engine.hosted)._save_many
    batches: list[int] = []

    def counting(self, batch):
        batches.append(len(batch))
        time.sleep(0.01)  # long enough for the next wave to wait behind this batch
        return save_many(self, batch)

    monkeypatch.setattr(type(state.engine.hosted), "_save_many", counting)

    async def waves():
        first = [asyncio.ensure_future(put(state.engine, repo, f"a {i}", f"a/{i}.bin")) for i in range(3)]
        await asyncio.sleep(0.002)  # the first batch is committing
        second = [put(state.engine, repo, f"b {i}", f"b/{i}.bin") for i in range(5)]
        return await asyncio.gather(*first, *second)

    stored = asyncio.run(waves())
    assert [a.path for a in stored] == [*(f"a/{i}.bin" for i in range(3)), *(f"b/{i}.bin" for i in range(5))]
    assert sum(batches) == 8 and len(batches) < 8, batches
    ended(small)

    class Interrupted(BaseException):  # not an upload's error: the thread ends
        pass

    def interrupted(self, batch):
        raise Interrupted

    monkeypatch.setattr(type(state.engine.hosted), "_save_many", interrupted)

    async def interrupt():
        return await asyncio.gather(
            *(put(state.engine, repo, f"c {i}", f"c/{i}.bin") for i in range(4)), return_exceptions=True
        )

    failed = asyncio.run(interrupt())
    assert all(isinstance(r, RuntimeError) and "interrupted" in str(r) for r in failed), failed
    ended(small)
    monkeypatch.setattr(type(state.engine.hosted), "_save_many", save_many)
    again = asyncio.run(put(state.engine, repo, "d", "d.bin"))
    assert state.engine.lookup(state.engine.repository(repo.name), "d.bin") == again


def slowed_row_stage(state, monkeypatch, seconds):
    """The row stage of one thread (the gathering is the same with PostgreSQL's two; one makes the
    order of batches certain), each batch committing `seconds` longer, and the gather's bound
    raised above that. Returns the stage, the sizes of the batches begun so far, and each finished
    batch's size and the moments it started and ended."""
    small = state.engine.hosted._small
    monkeypatch.setattr(small, "_threads", 1)
    monkeypatch.setattr(hosted_module, "MAX_GATHER_SECONDS", 10.0)
    save_many = type(state.engine.hosted)._save_many
    begun: list[int] = []
    batches: list[tuple[int, float, float]] = []

    def slowed(self, batch):
        started = time.monotonic()
        begun.append(len(batch))
        time.sleep(seconds)
        try:
            return save_many(self, batch)
        finally:
            batches.append((len(batch), started, time.monotonic()))

    monkeypatch.setattr(type(state.engine.hosted), "_save_many", slowed)
    return small, begun, batches


async def until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert condition()


def test_a_batch_waits_for_the_clients_of_the_batch_before_when_they_come_back(state, monkeypatch):
    """Under a steady load the row stage gathers (`_SmallCommits._gather`): two uploads commit while
    two more wait, so four were in the stage at once; when the first two's clients send their next
    uploads at once, those join the two waiting in one batch of four, instead of a batch of two
    for the ones waiting and another for the newcomers."""
    repo = make_repo(state)
    small, begun, batches = slowed_row_stage(state, monkeypatch, 0.5)

    async def scenario():
        first = [asyncio.ensure_future(put(state.engine, repo, f"a {i}", f"a/{i}.bin")) for i in range(2)]
        await until(lambda: begun)  # the first batch is committing
        waiting = [asyncio.ensure_future(put(state.engine, repo, f"b {i}", f"b/{i}.bin")) for i in range(2)]
        await asyncio.gather(*first)
        back = [put(state.engine, repo, f"c {i}", f"c/{i}.bin") for i in range(2)]  # the clients come back
        return await asyncio.gather(*waiting, *back)

    stored = asyncio.run(scenario())
    assert sorted(a.path for a in stored) == ["b/0.bin", "b/1.bin", "c/0.bin", "c/1.bin"]
    assert [size for size, _, _ in batches] == [2, 4], batches
    ended(small)


def test_a_batch_waits_no_longer_than_the_last_commit_took_and_a_lone_upload_not_at_all(state, monkeypatch):
    """The wait for uploads that do not come ends after as long as the last batch took to commit;
    once the stage has gone idle, the next upload is taken at once, whatever the load before it."""
    repo = make_repo(state)
    small, begun, batches = slowed_row_stage(state, monkeypatch, 0.5)

    async def scenario():
        first = [asyncio.ensure_future(put(state.engine, repo, f"a {i}", f"a/{i}.bin")) for i in range(2)]
        await until(lambda: begun)  # the first batch is committing
        # Four in the stage at once; after the first batch, two wait for the two that do not come.
        await asyncio.gather(*first, *(put(state.engine, repo, f"b {i}", f"b/{i}.bin") for i in range(2)))

    asyncio.run(scenario())
    assert [size for size, _, _ in batches] == [2, 2], batches
    (_, _, first_ended), (_, second_started, _) = batches
    assert 0.35 < second_started - first_ended < 5.0, batches  # it waited, about one commit's time
    ended(small)

    async def lone():
        asked = time.monotonic()
        await put(state.engine, repo, "lone", "lone.bin")
        return asked

    asked = asyncio.run(lone())
    assert batches[-1][0] == 1
    assert batches[-1][1] - asked < 0.35, batches  # taken at once, not after a commit's time
    ended(small)


def test_a_thread_just_started_takes_what_waits_at_once(state, monkeypatch):
    """Only a thread going on from a batch of its own gathers: one just started (PostgreSQL's second,
    started while the first commits) takes what waits at once, even when the stage expects more
    (the first thread's last batch counted what was waiting then, which the new thread took)."""
    repo = make_repo(state)
    small, _begun, batches = slowed_row_stage(state, monkeypatch, 0.0)
    small._expected, small._pace = 2, 3.0  # what another thread's last batch left

    async def scenario():
        asked = time.monotonic()
        await put(state.engine, repo, "alone", "alone.bin")
        return time.monotonic() - asked

    took = asyncio.run(scenario())
    assert [size for size, _, _ in batches] == [1], batches
    assert took < 2.0, took  # not the three seconds a gather would have waited
    ended(small)


def test_cold_fetches_commit_together_in_the_row_stage_each_releasing_its_lease_there(state, monkeypatch):
    """A proxy's fetched files that arrived whole in memory are cached through the row stage too
    (`Hosted.commit`): the fetches that arrive while one commits are committed next as one batch,
    and each one's finish (its lease's release) runs in that batch's transaction. Each client has
    its answer before the commit, and no fetch is asked of the upstream twice."""
    small, begun, batches = slowed_row_stage(state, monkeypatch, 0.5)
    bodies = {f"lib/{i}.bin": os.urandom(3000 + i) for i in range(4)}
    with running() as upstream:
        for path, body in bodies.items():
            upstream.put(path, body)
        repo = raw_proxy(state, upstream.url)

        async def scenario():
            engine = state.engine
            try:
                first = await engine.get(repo, "lib/0.bin", ADMIN, stream=False)
                await until(lambda: begun)  # its commit is under way
                rest = await asyncio.gather(
                    *(engine.get(repo, f"lib/{i}.bin", ADMIN, stream=False) for i in range(1, 4))
                )
                assert not engine.proxy._tasks or len(batches) < 2  # answered before the second batch
                await settled(state)
                return [first, *rest]
            finally:
                await engine.close()

        answered = asyncio.run(scenario())
        assert [a.sha256 for a in answered] == [hashlib.sha256(b).hexdigest() for b in bodies.values()]
        assert [size for size, _, _ in batches] == [1, 3], batches
        for path, body in bodies.items():
            stored = state.engine.lookup(repo, path)
            assert stored is not None and stored.sha256 == hashlib.sha256(body).hexdigest()
            assert upstream.count(path) == 1
        assert leases_left(state, repo, list(bodies)) == []
    ended(small)


def test_what_a_commit_runs_in_its_transaction_fails_that_commit_only(state, monkeypatch):
    """Commits of bytes held in memory share the row stage's transaction with what each runs in it
    (`also`, a proxy's lease release): one that raises fails its own commit, which stores nothing,
    and the others of its batch are stored; a batch is durable when any of its commits asks to be."""
    repo = make_repo(state)
    small, begun, batches = slowed_row_stage(state, monkeypatch, 0.5)
    together = state.db.together
    durable: list[tuple[list[str], bool]] = []  # the paths of each transaction, and its durability

    def recording(jobs, durable_flag=True):
        paths = sorted(rows.upload.path for fn, _key in jobs for rows in fn.args[0])
        durable.append((paths, durable_flag))
        return together(jobs, durable_flag)

    monkeypatch.setattr(state.db, "together", recording)
    ran: list[str] = []

    def also(name, fails=False):
        def run(session):
            ran.append(name)
            if fails:
                raise ValueError(f"{name} refused")

        return run

    async def commit(path, body, fails=False, is_durable=True):
        staged = await state.engine.stage_bytes(body)
        return await state.engine.hosted.commit(
            repo, staged, Upload(path=path), ADMIN, also=also(path, fails), durable=is_durable
        )

    async def scenario():
        first = asyncio.ensure_future(commit("a.bin", b"a", is_durable=False))
        await until(lambda: begun)
        outcomes = await asyncio.gather(
            commit("b.bin", b"b", is_durable=False),
            commit("c.bin", b"c", fails=True, is_durable=False),
            commit("d.bin", b"d", is_durable=False),
            return_exceptions=True,
        )
        await first
        mixed = await asyncio.gather(commit("e.bin", b"e"), commit("f.bin", b"f", is_durable=False))
        return outcomes, mixed

    (b, c, d), mixed = asyncio.run(scenario())
    assert isinstance(c, ValueError) and str(c) == "c.bin refused"
    assert [b.path, d.path] == ["b.bin", "d.bin"] and [a.path for a in mixed] == ["e.bin", "f.bin"]
    stored = sorted(a.path for a in state.engine._under(repo, ""))
    assert stored == ["a.bin", "b.bin", "d.bin", "e.bin", "f.bin"]
    assert sorted(set(ran)) == ["a.bin", "b.bin", "c.bin", "d.bin", "e.bin", "f.bin"]
    assert [size for size, _, _ in batches][:2] == [1, 3], batches
    # Only a transaction holding e.bin, the one commit that asked to be durable, is.
    assert durable and all(flag == ("e.bin" in paths) for paths, flag in durable), durable
    ended(small)


def test_uploads_arriving_while_another_process_commits_join_one_batch(state):
    """SQLite: the row stage takes the node's writer lock before it chooses its batch, so the uploads
    that arrive while another process holds the lock (here: the test, through a file description
    of its own) are committed together once it is free, in one transaction, not one batch for the
    first upload and another for the rest."""
    if not state.db.is_sqlite:
        pytest.skip("the writer lock is SQLite's")
    repo = make_repo(state)
    small = state.engine.hosted._small
    lock = os.open(state.db._writer_lock.path, os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)

    async def until(condition):
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    async def scenario():
        with transactions(state) as counted:
            first = asyncio.ensure_future(put(state.engine, repo, "w 0", "w/0.bin"))
            await until(lambda: small._saving == 1)
            await asyncio.sleep(0.05)  # its thread waits for the lock
            puts = [put(state.engine, repo, f"w {i}", f"w/{i}.bin") for i in range(1, 8)]
            rest = [asyncio.ensure_future(p) for p in puts]
            await until(lambda: len(small._placed) >= 7)
            fcntl.flock(lock, fcntl.LOCK_UN)
            stored = await asyncio.gather(first, *rest)
        return stored, counted

    try:
        stored, counted = asyncio.run(scenario())
    finally:
        os.close(lock)
    assert [a.path for a in stored] == [f"w/{i}.bin" for i in range(8)]
    assert counted["commit"] == 1, counted
    ended(small)


def test_a_thread_keeps_its_writer_lock_file_open_and_releases_the_lock_after_each_write(state):
    """SQLite: the writer lock file is opened once per thread (not twice more system calls per
    transaction), each write still releases the lock when it ends, and another thread's writes
    still wait for it."""
    if not state.db.is_sqlite:
        pytest.skip("the writer lock is SQLite's")
    db = state.db
    path = db._writer_lock.path

    def opened():
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == str(path) for fd in os.listdir("/proc/self/fd"))

    with db.write():
        pass
    before = opened()
    for _ in range(5):
        with db.write():
            pass
        probe = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free between writes
            fcntl.flock(probe, fcntl.LOCK_UN)
        finally:
            os.close(probe)
    assert opened() == before

    order: list[str] = []
    holding = threading.Event()

    def other():
        holding.wait(10)
        with db.write():
            order.append("other")

    thread = threading.Thread(target=other)
    thread.start()
    with db.writing():
        holding.set()
        time.sleep(0.1)
        order.append("first")
    thread.join(10)
    assert order == ["first", "other"]


def test_writers_waiting_for_the_writer_lock_take_turns(state):
    """SQLite: a writer that releases the node's writer lock and asks for it again at once does not
    get it back ahead of one already waiting (the kernel does not queue flock waiters in order; a
    turnstile does): the waiting one gets it within one more transaction of the other."""
    if not state.db.is_sqlite:
        pytest.skip("the writer lock is SQLite's")
    db = state.db
    rounds = {"n": 0}
    stop = threading.Event()
    started = threading.Event()

    def busy():
        while not stop.is_set():
            with db.writing():
                rounds["n"] += 1
                started.set()
                time.sleep(0.001)

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        assert started.wait(10)
        waits = []
        for _ in range(20):
            before = rounds["n"]
            with db.writing():
                waits.append(rounds["n"] - before)
    finally:
        stop.set()
        thread.join(10)
    assert max(waits) <= 2, waits


def test_row_stage_tasks_whose_loop_closed_before_they_started_leave_no_thread_counted(state):
    """A row-stage task cancelled before it ever ran (its loop closed first: `asyncio.run` cancels
    what is pending) is not counted as a running thread: the next upload, on another loop, still
    starts one (this hung when the count stayed up)."""
    repo = make_repo(state)
    small = state.engine.hosted._small

    async def start_and_leave():
        for _ in range(small._threads):
            small._start_saving()  # tasks that never start: this loop closes first

    asyncio.run(start_and_leave())
    assert small._saving == 0
    stored = asyncio.run(asyncio.wait_for(put(state.engine, repo, "x", "x.bin"), 30))
    assert stored.path == "x.bin"


def test_an_upload_taken_by_a_thread_that_outlived_its_loop_is_woken_on_its_own_loop(state, monkeypatch):
    """A row-stage thread may outlive the event loop that started it (`asyncio.run` returns once
    its upload is answered) and take the upload of the next loop: that upload is woken on its own
    loop, not on the closed one (where it waited forever and the suite hung)."""
    from artifactory.repository import hosted

    repo = make_repo(state)
    small = state.engine.hosted._small
    small._threads = 1  # whatever the database: the one thread must take the second upload
    release = threading.Event()
    wake = hosted._wake
    calls = []

    def wake_then_linger(entries, failure):
        calls.append(len(entries))  # before the wake: the upload woken may be checked at once
        wake(entries, failure)
        if len(calls) == 1:
            release.wait(10)  # the first loop ends meanwhile; the thread is still running

    monkeypatch.setattr(hosted, "_wake", wake_then_linger)
    assert asyncio.run(put(state.engine, repo, "one", "one.bin")).path == "one.bin"
    assert small._saving == 1  # the thread that answered it is still running

    async def second():
        task = asyncio.ensure_future(put(state.engine, repo, "two", "two.bin"))
        while not small._placed:
            await asyncio.sleep(0.001)
        release.set()  # the lingering thread goes on, and takes this upload
        return await asyncio.wait_for(task, 30)

    assert asyncio.run(second()).path == "two.bin"
    assert calls == [1, 1]


def test_uploads_of_one_path_in_one_batch_are_each_committed_under_allow(state):
    """Small uploads waiting together are saved in one statement per kind of row; two of them at the
    same path cannot share one (PostgreSQL refuses to update a row twice in one statement), so the
    batch is saved again one upload after the other: every upload answers its own asset, and the
    path ends up serving one of them."""
    repo = make_repo(state)

    async def scenario():
        return await asyncio.gather(
            *(put(state.engine, repo, f"same {i}", "same.bin") for i in range(6)),
            *(put(state.engine, repo, f"own {i}", f"own/{i}.bin") for i in range(10)),
        )

    results = asyncio.run(scenario())
    assert all(isinstance(r, StoredAsset) for r in results), results
    stored = {a.path: a for a in state.engine._under(repo, "")}
    assert len(stored) == 11
    assert stored["same.bin"].sha256 in {r.sha256 for r in results[:6]}
    for i in range(10):
        assert results[6 + i] == state.engine.lookup(state.engine.repository(repo.name), f"own/{i}.bin")


def test_one_conflict_key_in_one_batch_is_stored_once_under_allow_once(state):
    """allow_once counts two paths with one conflict key as the same file, also when both uploads
    are saved in the same batch: exactly one is stored, the others are refused."""
    repo = make_repo(state, write_policy="allow_once")

    async def scenario():
        uploads = [Upload(path=f"spelled-{i}.bin", conflict_key="one-release") for i in range(5)]
        return await asyncio.gather(
            *(state.engine.put_bytes(repo, f"{i}".encode(), u, ADMIN) for i, u in enumerate(uploads)),
            *(put(state.engine, repo, f"own {i}", f"own/{i}.bin") for i in range(8)),
            return_exceptions=True,
        )

    results = asyncio.run(scenario())
    spelled, own = results[:5], results[5:]
    assert sum(isinstance(r, StoredAsset) for r in spelled) == 1, spelled
    assert all(isinstance(r, WritePolicyViolation) for r in spelled if not isinstance(r, StoredAsset))
    assert all(isinstance(r, StoredAsset) for r in own), own
    assert len([a for a in state.engine._under(repo, "") if a.path.startswith("spelled-")]) == 1


def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced(state, monkeypatch):
    """Instead of a ping on every checkout, a pooled PostgreSQL connection idle for a while is
    pinged before use: one the server has closed meanwhile (a restart) is replaced, and the write
    that took it succeeds."""
    if state.db.is_sqlite:
        pytest.skip("PostgreSQL's connections only")
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 0.05)
    repo = make_repo(state)
    asyncio.run(put(state.engine, repo, "before", "before.bin"))
    with state.db.write() as session:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    other = create_engine(state.db.url, poolclass=NullPool)  # not a connection of the pool
    with other.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()
    time.sleep(0.1)
    for i in range(3):  # whichever pooled connection each write takes
        assert asyncio.run(put(state.engine, repo, f"after {i}", f"after/{i}.bin")).path == f"after/{i}.bin"
