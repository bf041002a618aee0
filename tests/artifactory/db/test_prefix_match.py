"""Paths starting with a prefix (`queries.starts_with`): exact to the code point on SQLite and
PostgreSQL, whatever the case, LIKE's wildcards or the characters at the ends of Unicode, and a range
the (repository_id, path) index can scan."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from artifactory.db import queries
from artifactory.db.models import Asset, Blob, utcnow
from artifactory.repository.model import Repo
from artifactory.repository.probe import Probe
from artifactory.state import AppState
from tests.artifactory.engine.test_engine_api import make_repo

SHA = "0" * 64
LAST = chr(0x10FFFF)
# Characters where a LIKE, a collation or a "next string" goes wrong: case, wildcards, the escape, the
# separator and its neighbours, the ends of the Basic Multilingual Plane around the surrogates, the
# last code point, and letters that sort apart from their bytes in a linguistic collation.
AWKWARD = [
    "a",
    "A",
    "b",
    "B",
    "%",
    "_",
    "\\",
    "/",
    "0",
    ".",
    "-",
    " ",
    "\ud7ff",
    "\ue000",
    "\uffff",
    LAST,
    "é",
    "E",
]


def store(state: AppState, repo: Repo, paths: list[str]) -> None:
    """Asset rows at `paths` (all of one blob), committed."""
    with state.db.write() as session:
        queries.upsert(
            session, Blob, {"sha256": SHA, "size": 0, "md5": "", "sha1": "", "sha512": ""}, ["sha256"], []
        )
        if paths:
            session.execute(
                insert(Asset), [{"repository_id": repo.id, "path": p, "blob_sha256": SHA} for p in paths]
            )


def under(state: AppState, repo: Repo, prefix: str) -> list[str]:
    with state.db.read() as session:
        return [row.path for row in queries.assets_under(session, repo.id, prefix)]


def test_prefix_end_is_the_least_text_after_every_text_starting_with_the_prefix() -> None:
    assert queries.prefix_end("a/") == "a0"
    assert queries.prefix_end("a%") == "a&"
    assert queries.prefix_end("a" + LAST) == "b"
    assert queries.prefix_end("a" + LAST + LAST) == "b"
    assert queries.prefix_end("a\ud7ff") == "a\ue000"  # over the surrogates, which no text holds
    assert queries.prefix_end(LAST) is None
    assert queries.prefix_end("") is None


def test_a_listing_is_case_sensitive_and_takes_wildcards_and_the_escape_literally(state: AppState) -> None:
    repo = make_repo(state)
    store(state, repo, ["A/x", "a_b/1", "axb/2", "a%/3", "aZ/4", "a\\/5", "a\\\\/6", "é/7", "e/8", "E/9"])
    assert under(state, repo, "a/") == []
    assert under(state, repo, "A/") == ["A/x"]
    assert under(state, repo, "a_") == ["a_b/1"]
    assert under(state, repo, "a%") == ["a%/3"]
    assert under(state, repo, "a\\") == ["a\\/5", "a\\\\/6"]
    assert under(state, repo, "a\\\\") == ["a\\\\/6"]
    assert under(state, repo, "é") == ["é/7"]
    assert under(state, repo, "e") == ["e/8"]


def test_a_listing_reaches_paths_with_the_last_code_point_and_orders_by_code_point(state: AppState) -> None:
    repo = make_repo(state)
    paths = ["a" + LAST, "a" + LAST + "x", "a" + LAST + LAST, LAST, LAST + "/y", "b", "a\ue000", "a\ud7ff/z"]
    store(state, repo, paths)
    assert under(state, repo, "a" + LAST) == ["a" + LAST, "a" + LAST + "x", "a" + LAST + LAST]
    assert under(state, repo, LAST) == [LAST, LAST + "/y"]
    assert under(state, repo, "a\ud7ff") == ["a\ud7ff/z"]
    assert under(state, repo, "") == sorted(paths)


def test_a_group_folder_probe_is_case_sensitive_and_exact(state: AppState) -> None:
    one, two = make_repo(state), make_repo(state)
    store(state, one, ["A/x", "a_b/y"])
    store(state, two, ["b%/z", "c" + LAST + "/w"])
    probe = Probe(state.db.read_engine)

    def holding(folder: str) -> set[str]:
        probed = probe([one, two], ["nothing-here"], None, folder)
        return {r.name for r in (one, two) if r.id in probed.in_folder}

    assert holding("a/") == set()
    assert holding("A/") == {one.name}
    assert holding("a_/") == set()
    assert holding("a_b/") == {one.name}
    assert holding("b%/") == {two.name}
    assert holding("b/") == set()
    assert holding("c" + LAST + "/") == {two.name}
    assert holding(LAST) == set()  # a prefix with no upper bound


def test_the_prefix_range_is_searched_in_the_repository_and_path_index(state: AppState) -> None:
    """EXPLAIN of a listing's condition over 20,000 paths in 4 repositories (never committed)."""
    dialect = state.db.engine.dialect.name
    with Session(state.db.engine) as session:
        ids = [make_repo(state).id for _ in range(4)]
        queries.upsert(
            session, Blob, {"sha256": SHA, "size": 0, "md5": "", "sha1": "", "sha512": ""}, ["sha256"], []
        )
        rows = [{"repository_id": ids[n % 4], "path": f"p/{n}/f", "blob_sha256": SHA} for n in range(20_000)]
        session.execute(insert(Asset), rows)
        session.execute(text("ANALYZE"))
        statement = (
            select(Asset.id)
            .where(Asset.repository_id == ids[1], queries.starts_with(Asset.path, "p/12"))
            .order_by(queries.bytewise(Asset.path))
        )
        compiled = statement.compile(
            dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
        explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
        found = "\n".join(str(row[-1]) for row in session.execute(text(explain + str(compiled))))
        collation = None
        if dialect == "postgresql":
            collation = session.scalar(
                text(
                    "SELECT collation_name FROM information_schema.columns WHERE table_name = 'asset'"
                    " AND column_name = 'path' AND table_schema = current_schema()"
                )
            )
    if dialect == "sqlite":
        # The unique constraint's index (SQLite names it sqlite_autoindex_asset_N) scans the range.
        assert "INDEX sqlite_autoindex_asset_" in found, found
        assert "(repository_id=? AND path>? AND path<?)" in found, found
    else:
        # Migration 0008 puts the column in "C" whatever the database's collation, so the index
        # scans the range itself rather than every path of the repository.
        assert collation == "C", collation
        assert "uq_asset_repository_path" in found, found
        assert "Index Cond: ((repository_id = " in found and "(path)::text >= 'p/12'" in found, found


# Text that PostgreSQL can store: no NUL, no surrogates (no encoding holds them).
characters = st.one_of(
    st.sampled_from(AWKWARD), st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
)
texts = st.text(characters, max_size=6)


def test_starts_with_agrees_with_python_on_random_paths_and_prefixes(state: AppState) -> None:
    repo = make_repo(state)
    store(state, repo, [])  # the blob

    @settings(max_examples=150)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        paths = data.draw(st.lists(texts.filter(bool), min_size=1, max_size=12, unique=True), label="paths")
        # A prefix of a stored path half the time (else a random text): the interesting boundaries.
        of_a_path = st.sampled_from(paths).flatmap(lambda p: st.integers(0, len(p)).map(lambda n: p[:n]))
        prefix = data.draw(st.one_of(texts, of_a_path), label="prefix")
        with Session(state.db.engine) as session:  # never committed
            rows = [
                {"repository_id": repo.id, "path": p, "blob_sha256": SHA, "created_at": utcnow()}
                for p in paths
            ]
            session.execute(insert(Asset), rows)
            found = [row.path for row in queries.assets_under(session, repo.id, prefix)]
        assert found == sorted(p for p in paths if p.startswith(prefix))

    check()


def test_the_folder_probe_agrees_with_python_on_random_paths_and_prefixes(state: AppState) -> None:
    """The probe's "anything under this folder?" (the read a raw 404 and an empty listing make), on
    committed rows."""
    probe = Probe(state.db.read_engine)

    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        repo = make_repo(state)
        paths = data.draw(st.lists(texts.filter(bool), min_size=1, max_size=8, unique=True), label="paths")
        of_a_path = st.sampled_from(paths).flatmap(lambda p: st.integers(0, len(p)).map(lambda n: p[:n]))
        prefix = data.draw(st.one_of(texts, of_a_path).filter(bool), label="prefix")
        store(state, repo, paths)
        expected = any(p.startswith(prefix) for p in paths)
        assert bool(probe([repo], [prefix], None, prefix).in_folder) is expected

    check()
