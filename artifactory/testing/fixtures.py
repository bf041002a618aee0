"""pytest plugin (loaded with `-p artifactory.testing.fixtures`): live servers and databases.

- `server`: one real server per test module (uvicorn, SQLite, temp data dir, free loopback port).
- `pg_url`: a PostgreSQL URL whose search_path is a schema of this test run's own (dropped at the end),
  on the server named by ARTIFACTORY_TEST_DATABASE_URL (default: the local server, database `test`).
- `pg_server`: a real server on that schema.
- `s3_endpoint`: "127.0.0.1:PORT" of an S3 API served on loopback by moto (credentials testing/testing).
- `state`: an in-process AppState (no server) on SQLite and on PostgreSQL, for tests of the engine's
  own calls.
- `database_url`: a migrated database of the test's own, SQLite and PostgreSQL; `writer`: a Database
  on it with engines of its own (another process, as far as the code under test can tell).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from artifactory.testing.server import LiveServer, free_port, spawn

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def test_database_url() -> str:
    return os.environ.get("ARTIFACTORY_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    url = test_database_url()
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {url} is not reachable ({exc}); .ci/run starts one")
    finally:
        engine.dispose()
    return url


def new_schema(base_url: str) -> tuple[str, str]:
    schema = f"art_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in base_url else "?"
    return schema, f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"


def drop_schema(base_url: str, schema: str) -> None:
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    schema, url = new_schema(pg_base_url)
    try:
        yield url
    finally:
        drop_schema(pg_base_url, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    from artifactory.db.migrate import upgrade

    found = (
        f"sqlite:///{tmp_path / 'test.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    upgrade(found)
    return str(found)


@pytest.fixture
def writer(database_url: str) -> Iterator[Any]:
    from artifactory.db.engine import Database

    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    from artifactory.cli import prepare
    from artifactory.settings import Settings
    from artifactory.state import AppState

    settings = Settings(data_dir=tmp_path / "data", admin_password="x")
    if request.param == "postgresql":
        settings.database_url = request.getfixturevalue("pg_url")
    prepare(settings, announce=False)
    app_state = AppState.build(settings)
    yield app_state
    app_state.db.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("server") / "data").start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory, pg_base_url: str) -> Iterator[LiveServer]:
    schema, url = new_schema(pg_base_url)
    live = LiveServer(tmp_path_factory.mktemp("pgserver") / "data", database_url=url).start()
    try:
        yield live
    finally:
        live.stop()
        drop_schema(pg_base_url, schema)


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def any_server(request: pytest.FixtureRequest) -> LiveServer:
    """The same tests against both metadata backends."""
    name = "server" if request.param == "sqlite" else "pg_server"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


DATABASES = ("sqlite", "postgresql")


@contextlib.contextmanager
def live_server(request: pytest.FixtureRequest, name: str, **kwargs: Any) -> Iterator[LiveServer]:
    """A started server on `request.param` ("sqlite", or "postgresql" in a schema of its own),
    stopped and its schema dropped on exit. For module fixtures parametrized over DATABASES:

        @pytest.fixture(scope="module", params=DATABASES)
        def live(request):
            with live_server(request, "proxy", workers=2) as server:
                yield server
    """
    tmp: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    schema = url = ""
    if request.param == "postgresql":
        base = request.getfixturevalue("pg_base_url")
        schema, url = new_schema(base)
    server = LiveServer(tmp.mktemp(name) / "data", database_url=url, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
        if schema:
            drop_schema(base, schema)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    process = spawn(  # gone with the test run, even a killed one
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto server exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("moto server did not start listening within 30 s")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
