"""One commit stores a file, its conflict key and its companion files together or not at all,
under the write policy, on SQLite and PostgreSQL."""

import asyncio
import dataclasses
import os
import threading

import pytest
from sqlalchemy import select

from artifactory.db import queries
from artifactory.db.models import AuditEvent
from artifactory.formats import Coordinates
from artifactory.repository.errors import CompanionDelete
from artifactory.repository.hosted import Companion, Upload, WritePolicyViolation
from tests.artifactory.engine.test_engine_api import ADMIN, chunks, make_repo


def stored_paths(state, repo):
    return sorted(asset.path for asset in state.engine._under(repo, ""))


def temps(state):
    return sorted(name for name, _mtime in state.blobs.driver.list_temps())


def test_allow_once_refuses_another_path_with_the_same_conflict_key(state):
    repo = make_repo(state, write_policy="allow_once")

    async def scenario():
        first = await state.engine.put_bytes(
            repo, b"one", Upload(path="foo_bar-1.0.whl", conflict_key="foo-bar 1 py3"), ADMIN
        )
        assert first.attributes["conflict_key"] == "foo-bar 1 py3"
        before = temps(state)
        for path in ("Foo_Bar-1.0.whl", "foo_bar-1.0.0.whl"):
            with pytest.raises(WritePolicyViolation) as refused:
                await state.engine.put_bytes(
                    repo, b"two", Upload(path=path, conflict_key="foo-bar 1 py3"), ADMIN
                )
            assert refused.value.existing == "foo_bar-1.0.whl"
            assert "foo_bar-1.0.whl" in refused.value.message
        staged = await state.engine.stage(repo, chunks(b"three"), Upload(path="x"))
        with pytest.raises(WritePolicyViolation):
            await state.engine.commit(
                repo, staged, Upload(path="foo_bar-01.0.whl", conflict_key="foo-bar 1 py3"), ADMIN
            )
        assert temps(state) == before
        # Another key is another file.
        await state.engine.put_bytes(
            repo, b"four", Upload(path="foo_bar-2.0.whl", conflict_key="foo-bar 2 py3"), ADMIN
        )

    asyncio.run(scenario())
    assert stored_paths(state, repo) == ["foo_bar-1.0.whl", "foo_bar-2.0.whl"]


def test_allow_keeps_both_spellings_of_one_conflict_key(state):
    repo = make_repo(state)

    async def scenario():
        await state.engine.put_bytes(repo, b"1", Upload(path="a-1.0.whl", conflict_key="a 1"), ADMIN)
        await state.engine.put_bytes(repo, b"2", Upload(path="a-1.0.0.whl", conflict_key="a 1"), ADMIN)

    asyncio.run(scenario())
    assert stored_paths(state, repo) == ["a-1.0.0.whl", "a-1.0.whl"]


def test_companions_are_stored_with_their_file_and_not_when_it_is_refused(state, raw_companions):
    repo = make_repo(state, write_policy="allow_once")

    async def scenario():
        engine = state.engine
        metadata = Companion("a-1.0.whl.metadata", await engine.stage_bytes(b"Name: a\n"), "text/plain")
        staged = await engine.stage(repo, chunks(b"wheel"), Upload(path="a-1.0.whl"))
        stored = await engine.commit(repo, staged, Upload(path="a-1.0.whl", companions=(metadata,)), ADMIN)
        assert stored.path == "a-1.0.whl"
        companion = engine.lookup(repo, "a-1.0.whl.metadata")
        assert companion is not None and companion.content_type == "text/plain"
        assert companion.attributes["companion_of"] == "a-1.0.whl"
        assert await engine.read_bytes(companion.sha256) == b"Name: a\n"

        # The loser of an allow_once conflict leaves neither its file nor its companion.
        before = temps(state)
        loser = Companion("a-1.0.whl.metadata", await engine.stage_bytes(b"Name: other\n"))
        staged = await engine.stage(repo, chunks(b"other wheel"), Upload(path="a-1.0.whl"))
        with pytest.raises(WritePolicyViolation):
            await engine.commit(repo, staged, Upload(path="a-1.0.whl", companions=(loser,)), ADMIN)
        assert await engine.read_bytes(engine.lookup(repo, "a-1.0.whl.metadata").sha256) == b"Name: a\n"
        assert temps(state) == before

    asyncio.run(scenario())
    assert stored_paths(state, repo) == ["a-1.0.whl", "a-1.0.whl.metadata"]


def test_a_file_is_deleted_with_its_companions_and_a_companion_not_alone_while_its_file_is_stored(
    state, raw_companions
):
    repo = make_repo(state)

    async def scenario():
        engine = state.engine
        companions = (
            Companion("w.whl.metadata", await engine.stage_bytes(b"Name: w\n")),
            Companion("w.whl.meta", await engine.stage_bytes(b"meta")),
        )
        await engine.put_bytes(repo, b"wheel", Upload(path="w.whl", companions=companions), ADMIN)
        await engine.put_bytes(repo, b"other", Upload(path="lone.bin.meta"), ADMIN)
        revision = engine.repository(repo.name).revision
        with pytest.raises(CompanionDelete) as refused:
            await engine.delete(repo, "w.whl.meta", ADMIN)
        assert refused.value.status == 405 and refused.value.owner == "w.whl"
        assert engine.repository(repo.name).revision == revision  # refused: nothing changed
        deleted = await engine.delete(repo, "w.whl", ADMIN)
        assert deleted is not None and deleted.path == "w.whl"
        # A companion whose file is not stored is an ordinary file.
        assert (await engine.delete(repo, "lone.bin.meta", ADMIN)).path == "lone.bin.meta"

    asyncio.run(scenario())
    assert stored_paths(state, repo) == []
    with state.db.read() as session:
        deletions = AuditEvent.repository == repo.name, AuditEvent.action == "asset.deleted"
        audited = session.scalars(select(AuditEvent.path).where(*deletions)).all()
    assert sorted(audited) == ["lone.bin.meta", "w.whl", "w.whl.meta", "w.whl.metadata"]


def test_an_upload_with_a_companion_its_format_does_not_name_stores_nothing(state):
    """Nothing would ever delete it: a format's mistake, refused before anything is written."""
    repo = make_repo(state)

    async def scenario():
        engine = state.engine
        stray = Companion("elsewhere/m.bin.meta", await engine.stage_bytes(b"stray " + os.urandom(8)))
        with pytest.raises(ValueError, match="not companions"):
            await engine.put_bytes(repo, b"main", Upload(path="m.bin", companions=(stray,)), ADMIN)

    asyncio.run(scenario())
    assert stored_paths(state, repo) == []
    assert temps(state) == []


def test_a_companion_that_cannot_be_stored_stores_nothing(state, raw_companions):
    repo = make_repo(state)

    async def scenario():
        engine = state.engine
        broken = await engine.stage_bytes(b"lost companion " + os.urandom(8))
        await engine.discard(broken)  # its bytes are gone before the commit
        staged = await engine.stage(repo, chunks(b"main"), Upload(path="m.bin"))
        with pytest.raises(KeyError):
            await engine.commit(
                repo, staged, Upload(path="m.bin", companions=(Companion("m.bin.meta", broken),)), ADMIN
            )

    asyncio.run(scenario())
    assert stored_paths(state, repo) == []
    assert temps(state) == []


def test_racing_commits_with_one_conflict_key_store_exactly_one_file_and_its_companion(state, raw_companions):
    """Every racer passes the early check; the one inside the commit transaction decides."""
    repo = make_repo(state, write_policy="allow_once")
    racers = 8

    async def one(i):
        engine = state.engine
        companion = Companion(f"pkg-1.0-{i}.whl.metadata", await engine.stage_bytes(f"meta {i}".encode()))
        staged = await engine.stage(repo, chunks(f"wheel {i}".encode()), Upload(path="x"))
        upload = Upload(path=f"pkg-1.0-{i}.whl", conflict_key="pkg 1.0", companions=(companion,))
        return await engine.hosted.commit(repo, staged, upload, ADMIN)  # no early check: a true race

    async def scenario():
        return await asyncio.gather(*(one(i) for i in range(racers)), return_exceptions=True)

    results = asyncio.run(scenario())
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert all(isinstance(r, WritePolicyViolation) for r in results if r not in winners)
    won = winners[0].path
    assert stored_paths(state, repo) == [won, won + ".metadata"]


WHEEL = "packages/w/w-1.0-py3-none-any.whl"
VERSION = Coordinates(name="w", version="1.0")


@pytest.mark.parametrize(
    ("fmt", "policy", "upload"),
    [
        # The file deleted is stored again with its companion at once.
        ("raw", "allow", Upload(path="w.whl", component=VERSION)),
        # The same, where a change also moves the name's generation (its index documents).
        ("pypi", "allow", Upload(path=WHEEL, component=VERSION)),
        # The last file of a version is deleted while another file of that version is uploaded.
        ("raw", "allow_once", Upload(path="other.whl", component=VERSION)),
        ("pypi", "allow_once", Upload(path=WHEEL.replace("py3", "py2"), component=VERSION)),
    ],
    ids=["raw-same-file", "pypi-same-file", "raw-same-version", "pypi-same-version"],
)
def test_a_deletion_and_a_commit_racing_never_wait_on_each_other_in_a_cycle(
    state, raw_companions, monkeypatch, fmt, policy, upload
):
    """A deletion locks rows in the order a commit does (PostgreSQL aborted one of the two with a
    deadlock when a commit held the repository's row and the deletion an asset's or a component's,
    or the deletion moved the revision before the generations)."""
    name = f"r{os.urandom(4).hex()}"
    state.engine.repos.create({"name": name, "format": fmt, "type": "hosted", "write_policy": policy})
    repo = state.engine.repository(name)
    first = WHEEL if fmt == "pypi" else "w.whl"
    reached, go, armed = threading.Event(), threading.Event(), threading.Event()
    bump = queries._bump_revision

    def paused(session, repository_id):  # the deletion's last statement: its row locks are held
        if armed.is_set():
            armed.clear()
            reached.set()
            go.wait(10)
        return bump(session, repository_id)

    monkeypatch.setattr(queries, "_bump_revision", paused)

    async def scenario():
        engine = state.engine
        companion = (Companion(f"{first}.metadata", await engine.stage_bytes(b"one")),)
        stored = Upload(path=first, companions=companion, component=VERSION)
        await engine.put_bytes(repo, b"one", stored, ADMIN)
        armed.set()
        deleting = asyncio.ensure_future(engine.delete(repo, first, ADMIN))
        while not reached.is_set():
            await asyncio.sleep(0.01)
        again = (Companion(f"{upload.path}.metadata", await engine.stage_bytes(b"two")),)
        again_upload = dataclasses.replace(upload, companions=again)
        uploading = asyncio.ensure_future(engine.put_bytes(repo, b"two", again_upload, ADMIN))
        await asyncio.sleep(0.5)  # the commit now waits for the deletion's locks, if it waits at all
        go.set()
        return await asyncio.gather(deleting, uploading, return_exceptions=True)

    deleted, uploaded = asyncio.run(scenario())
    assert not any(isinstance(r, BaseException) for r in (deleted, uploaded)), (deleted, uploaded)
    assert stored_paths(state, repo) == [upload.path, f"{upload.path}.metadata"]


def commit_held_then_delete(state, repo, data, upload, path):
    """Commit `data` as `upload`, held open inside its transaction once its rows are written (its
    revision not moved yet), start the deletion of `path`, then let the commit end: (the commit's
    result, the deletion's), either an exception."""
    written, go = threading.Event(), threading.Event()

    def hold(session):
        written.set()
        go.wait(10)

    async def scenario():
        engine = state.engine
        staged = await engine.stage(repo, chunks(data), upload)
        committing = asyncio.ensure_future(engine.hosted.commit(repo, staged, upload, ADMIN, also=hold))
        while not written.is_set():
            await asyncio.sleep(0.01)
        deleting = asyncio.ensure_future(engine.delete(repo, path, ADMIN))
        await asyncio.sleep(0.3 if not state.db.is_sqlite else 0)  # the deletion now waits, if ever
        go.set()
        return await asyncio.gather(committing, deleting, return_exceptions=True)

    return asyncio.run(scenario())


def test_a_companion_deleted_while_its_file_commits_with_it_is_refused_once_the_file_is_there(
    state, raw_companions
):
    """The companion's row is locked before its file is looked for: a commit of the file that has
    written the companion's row is waited for, then seen (before, a .mod could go from under a zip
    committed at that moment)."""
    repo = make_repo(state)

    async def alone():
        await state.engine.put_bytes(repo, b"alone", Upload(path="m.zip.meta"), ADMIN)
        return (Companion("m.zip.meta", await state.engine.stage_bytes(b"from the zip")),)

    companion = asyncio.run(alone())
    upload = Upload(path="m.zip", companions=companion)
    committed, deleted = commit_held_then_delete(state, repo, b"zip", upload, "m.zip.meta")
    assert committed.path == "m.zip"
    assert isinstance(deleted, CompanionDelete), deleted
    assert stored_paths(state, repo) == ["m.zip", "m.zip.meta"]
    meta = state.engine.lookup(state.engine.repository(repo.name), "m.zip.meta")
    assert asyncio.run(state.engine.read_bytes(meta.sha256)) == b"from the zip"


def test_a_commit_past_the_write_policy_and_a_deletion_in_a_held_repository_never_deadlock(state):
    """An upload that bypasses an allow_once repository's policy (a Maven snapshot) still takes the
    repository's row first, as a deletion there does: it held the component's and asset's rows
    while the deletion, holding the repository's, waited for them."""
    repo = make_repo(state, write_policy="allow_once")
    asyncio.run(state.engine.put_bytes(repo, b"one", Upload(path="s.jar", component=VERSION), ADMIN))
    again = Upload(path="s.jar", component=VERSION, bypass_write_policy=True)
    committed, deleted = commit_held_then_delete(state, repo, b"two", again, "s.jar")
    assert not any(isinstance(r, BaseException) for r in (committed, deleted)), (committed, deleted)
    assert stored_paths(state, repo) == []  # the deletion came second
