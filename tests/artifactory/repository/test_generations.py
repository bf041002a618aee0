"""Name generations (what a hosted document built for a name is cached by) move only in formats that
build documents: a raw upload or deletion writes no generation row, yet its file is still its own
component; a Maven deploy moves its artifact's generation. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, text

from artifactory.testing.server import LiveServer
from artifactory.testing.stored import database_url


@pytest.fixture
def admin(any_server: LiveServer) -> Iterator[httpx.Client]:
    with any_server.client() as client:
        yield client


def rows(server: LiveServer, sql: str, repository: str) -> list[tuple]:
    engine = create_engine(database_url(server))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), {"name": repository})]
    finally:
        engine.dispose()


def generations(server: LiveServer, repository: str) -> list[tuple]:
    return rows(
        server,
        "SELECT g.namespace, g.name, g.generation FROM name_generation g"
        " JOIN repository r ON r.id = g.repository_id WHERE r.name = :name ORDER BY g.name",
        repository,
    )


def test_raw_files_move_no_generation_and_are_still_their_own_components(any_server, admin):
    raw = any_server.create_repo("raw")
    for path in ("a/one.txt", "a/two.txt", "a/one.txt"):
        assert admin.put(f"/repository/{raw}/{path}", content=path.encode()).status_code == 201
    assert admin.delete(f"/repository/{raw}/a/two.txt").status_code == 204

    assert generations(any_server, raw) == []
    named = rows(
        any_server,
        "SELECT a.path, c.name FROM asset a JOIN component c ON c.id = a.component_id"
        " JOIN repository r ON r.id = a.repository_id WHERE r.name = :name",
        raw,
    )
    assert named == [("a/one.txt", "a/one.txt")]


def test_a_maven_deploy_moves_its_artifacts_generation(any_server, admin):
    maven = any_server.create_repo("maven")
    base = f"/repository/{maven}/org/example/lib/1.0/lib-1.0"
    assert admin.put(f"{base}.jar", content=b"jar bytes").status_code == 201
    first = generations(any_server, maven)
    assert first and all(generation >= 1 for _ns, _name, generation in first)
    assert admin.put(f"{base}-sources.jar", content=b"source bytes").status_code == 201
    assert sum(g for *_key, g in generations(any_server, maven)) > sum(g for *_key, g in first)
