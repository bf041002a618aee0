"""One commit stores a file, its conflict key and its companion files together or not at all,
under the write policy, on SQLite and PostgreSQL."""

import asyncio
import os

import pytest
from sqlalchemy import select

from artifactory.db.models import AuditEvent
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
