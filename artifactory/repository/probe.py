"""One read of what a group's leaves hold for one request: the group walk's single query.

A request through a group needs to know, for every hosted and proxy repository inside it, whether it
stores the path asked for (a file; a proxy's cached copy of an index document), whether a hosted one
holds a component of the name the path belongs to (the dependency-confusion guard, and whether a
hosted document need be built there at all) and that name's generation (what a hosted document is
cached by). Asked one repository and one question at a time, a cold miss through a group of
(hosted, proxy) cost two or three reads before the proxy's own claim and commit; `Probe` asks them
all in one indexed statement, one row per repository (two where both paths are stored), compiled
once per number of repositories and run on a pooled DBAPI connection, as `AssetLookup` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, bindparam, exists, literal, select
from sqlalchemy.orm import aliased

from artifactory.db import queries
from artifactory.db.models import Asset, Blob, Component, NameGeneration, Repository
from artifactory.repository.model import HOSTED, Repo, StoredAsset


@dataclass
class Probed:
    """What the leaves hold: by repository id, whether a hosted one holds a component of the name
    and that name's generation (0: never changed), and the stored assets by (id, path)."""

    ids: frozenset[int]
    name: tuple[str, str] | None = None
    named: dict[int, bool] = field(default_factory=dict)
    generations: dict[int, int] = field(default_factory=dict)
    assets: dict[tuple[int, str], StoredAsset] = field(default_factory=dict)
    folder: str | None = None  # a prefix asked about ("dir/"), and the leaves holding anything under it
    in_folder: set[int] = field(default_factory=set)

    def covers(self, repo: Repo) -> bool:
        return repo.id in self.ids

    def asset(self, repo: Repo, path: str) -> StoredAsset | None:
        return self.assets.get((repo.id, path))

    def shadowed(self, leaves: Sequence[Repo]) -> bool:
        """Whether a hosted one of `leaves` holds the name (all of them must be covered)."""
        return any(self.named.get(r.id, False) for r in leaves if r.type == HOSTED)


class Probe:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._compiled: dict[tuple[int, bool, bool, bool], queries.RawQuery] = {}

    def _statement(self, count: int, with_name: bool, with_folder: bool, bounded: bool) -> Any:
        ids = Repository.id.in_([bindparam(f"r{i}") for i in range(count)])
        columns: list[Any] = [Repository.id]
        query: Any
        if with_name:
            named = exists().where(
                Component.repository_id == Repository.id,
                Component.namespace == bindparam("ns"),
                Component.name == bindparam("name"),
            )
            columns += [
                NameGeneration.generation,
                and_(Repository.type == literal(HOSTED), named).label("named"),
            ]
        else:
            columns += [literal(None).label("generation"), literal(False).label("named")]
        if with_folder:  # as `queries.assets_under` matches a prefix
            under = aliased(Asset)
            end: Any = bindparam("folder_end") if bounded else None
            below = queries.starts_with(under.path, bindparam("folder"), end)
            columns.append(exists().where(under.repository_id == Repository.id, below).label("in_folder"))
        else:
            columns.append(literal(False).label("in_folder"))
        # The bytes a small blob's row keeps come with its asset: reading a document costs nothing more.
        query = select(*columns, *queries._ASSET_COLUMNS, Blob.data).select_from(Repository)
        if with_name:
            query = query.outerjoin(
                NameGeneration,
                and_(
                    NameGeneration.repository_id == Repository.id,
                    NameGeneration.namespace == bindparam("ns"),
                    NameGeneration.name == bindparam("name"),
                ),
            )
        paths = Asset.path.in_([bindparam("p0"), bindparam("p1")])
        return (
            query.outerjoin(Asset, and_(Asset.repository_id == Repository.id, paths))
            .outerjoin(Blob, Blob.sha256 == Asset.blob_sha256)
            .where(ids)
        )

    def __call__(
        self,
        leaves: Sequence[Repo],
        paths: Sequence[str],
        name: tuple[str, str] | None,
        folder: str | None = None,
    ) -> Probed:
        """`leaves` (hosted and proxy repositories), the assets at one or two `paths`, given a
        (namespace, name) the name's components and generation in each, and given a `folder`
        ("dir/") which of them store anything under it."""
        by_id = {r.id: r for r in leaves}
        found = Probed(frozenset(by_id), name, folder=folder)
        if not by_id:
            return found
        end = queries.prefix_end(folder) if folder is not None else None
        compiled_key = (len(by_id), name is not None, folder is not None, end is not None)
        query = self._compiled.get(compiled_key)
        if query is None:
            query = self._compiled[compiled_key] = queries.RawQuery(
                self.engine, self._statement(*compiled_key)
            )
        first = paths[0]
        values = {
            **{f"r{i}": rid for i, rid in enumerate(by_id)},
            "p0": first,
            "p1": paths[1] if len(paths) > 1 else first,
        }
        if name is not None:
            values["ns"], values["name"] = name
        if folder is not None:
            values["folder"], values["folder_end"] = folder, end
        rows = query.rows(values)
        for row in rows:
            rid, generation, named, in_folder = row[0], row[1], row[2], row[3]
            found.named[rid] = bool(named)
            found.generations[rid] = int(generation or 0)
            if in_folder:
                found.in_folder.add(rid)
            if row[4] is not None:
                asset = queries.asset_of_row(by_id[rid].name, row[4:])
                found.assets[(rid, asset.path)] = asset
        return found
