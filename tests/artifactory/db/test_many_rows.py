"""The upload path's INSERTs of several rows in one statement (`queries.touch_blobs`,
`ensure_components`, `save_assets`): on SQLite and PostgreSQL, whatever the paths, names and
attributes, each row reads back as written and each caller gets its own row's id."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from artifactory.blobstore.store import BlobInfo
from artifactory.db import queries
from artifactory.db.models import Blob, Component
from artifactory.state import AppState
from tests.artifactory.engine.test_engine_api import make_repo

# Any text PostgreSQL stores (no NUL, no lone surrogate), short enough to make many rows.
texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=8
)
attributes = st.dictionaries(texts, st.one_of(st.integers(-5, 5), texts, st.booleans()), max_size=3)


def blob(seed: str) -> BlobInfo:
    data = seed.encode()
    return BlobInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        sha1=hashlib.sha1(data).hexdigest(),  # noqa: S324 - a stored checksum, not a security use
        md5=hashlib.md5(data).hexdigest(),  # noqa: S324 - likewise
        sha512=hashlib.sha512(data).hexdigest(),
    )


def test_rows_inserted_together_read_back_as_written(state: AppState) -> None:
    repo = make_repo(state)

    @settings(max_examples=60, deadline=None)
    @given(
        files=st.lists(
            st.tuples(texts, texts, attributes), min_size=1, max_size=20, unique_by=lambda f: f[0]
        ),
        names=st.lists(st.tuples(texts, texts), min_size=1, max_size=6),
    )
    def check(files: list[tuple[str, str, dict[str, object]]], names: list[tuple[str, str]]) -> None:
        with Session(state.db.engine) as session:  # never committed
            infos = [blob(content) for _path, content, _attrs in files]
            queries.touch_blobs(session, [*infos, *infos[:2]])  # the same blob twice is one row
            keys = [(repo.id, "ns", name, version) for name, version in names]
            components = queries.ensure_components(session, [*keys, *keys[:1]])
            assert set(components) == set(keys)
            for (rid, ns, name, version), cid in components.items():
                row = session.execute(
                    select(
                        Component.repository_id, Component.namespace, Component.name, Component.version
                    ).where(Component.id == cid)
                ).one()
                assert tuple(row) == (rid, ns, name, version)
            assert len(set(components.values())) == len(components)
            assert queries.ensure_components(session, keys) == components  # found again, not made
            cids = list(components.values())
            assets = [
                queries.NewAsset(repo.id, path, info.sha256, "text/x-test", attrs, cids[i % len(cids)])
                for i, ((path, _content, attrs), info) in enumerate(zip(files, infos, strict=True))
            ]
            ids = queries.save_assets(session, assets)()
            assert set(ids) == {(repo.id, a.path) for a in assets}
            for asset in assets:
                row = queries.find_asset(session, repo.id, asset.path)
                assert row is not None and ids[(repo.id, asset.path)] == (row.id, asset.component_id)
                assert (row.blob_sha256, row.attributes, row.component_id) == (
                    asset.sha256,
                    asset.attributes,
                    asset.component_id,
                )
            for info in infos:
                assert session.get(Blob, info.sha256).size == info.size  # type: ignore[union-attr]
            # Assets naming their components (`touch_components`) rather than giving ids: each finds
            # its own, new or not, in the statement that stores it; an asset naming none has none.
            named = [*keys, (repo.id, "new", "component", "1")]
            queries.touch_components(session, [*named, *named[:1]])
            again = [
                queries.NewAsset(
                    repo.id, "named/" + path, info.sha256, "text/x-test", attrs, None, None,
                    named[i % len(named)][1:] if i % 3 else None,
                )
                for i, ((path, _content, attrs), info) in enumerate(zip(files, infos, strict=True))
            ]  # fmt: skip
            found = queries.ensure_components(session, named)
            saved = queries.save_assets(session, again)()
            for asset in again:
                row = queries.find_asset(session, repo.id, asset.path)
                expected = found[(repo.id, *asset.component)] if asset.component is not None else None
                assert row is not None and saved[(repo.id, asset.path)] == (row.id, expected)
                assert row.component_id == expected

    check()
