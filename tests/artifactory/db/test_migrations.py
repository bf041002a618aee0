"""One alembic history creates the schema on SQLite and PostgreSQL alike."""

import os
import subprocess
import sys

from sqlalchemy import create_engine, inspect, text

from artifactory.db.migrate import upgrade
from artifactory.db.models import Base

EXPECTED = {
    "blob",
    "repository",
    "component",
    "asset",
    "user_account",
    "role",
    "api_token",
    "upload_session",
    "audit_event",
    "setting",
    "proxy_lease",
    "proxy_miss",
    "name_generation",
    "tombstone",
    "proxy_health",
    "webhook_delivery",
}


def tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migration_creates_every_model_table_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    upgrade(url)  # idempotent
    assert EXPECTED <= tables(url)
    assert set(Base.metadata.tables) <= tables(url)


def test_migration_creates_every_model_table_on_postgresql(pg_url):
    upgrade(pg_url)
    assert EXPECTED <= tables(pg_url)


def test_head_is_the_newest_migration_and_a_database_at_it_is_upgraded_without_alembic(tmp_path, pg_url):
    from alembic.script import ScriptDirectory

    from artifactory.db.migrate import HEAD, alembic_config, current_revision

    sqlite_url = f"sqlite:///{tmp_path / 'h.db'}"
    assert ScriptDirectory.from_config(alembic_config(sqlite_url)).get_current_head() == HEAD
    for url in (sqlite_url, pg_url):
        assert current_revision(url) is None
        upgrade(url)
        assert current_revision(url) == HEAD
        again = (
            "import sys; from artifactory.db.migrate import upgrade; upgrade(sys.argv[1]);"
            "print(sorted(m for m in sys.modules if m.startswith('alembic')))"
        )
        done = subprocess.run([sys.executable, "-c", again, url], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"


def test_db_upgrade_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "artifactory", "db", "upgrade", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "admin.password").stat().st_mode & 0o777 == 0o600
    assert EXPECTED <= tables(f"sqlite:///{tmp_path / 'd' / 'artifactory.db'}")


def _start_together(data_dirs, database_url=""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
    if database_url:
        env["ARTIFACTORY_DATABASE_URL"] = database_url
    env["ARTIFACTORY_ADMIN_PASSWORD"] = "same-for-all"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "artifactory", "db", "upgrade", "--data-dir", str(d)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in data_dirs
    ]
    return [(p.wait(timeout=120), p.stderr.read()) for p in processes]


def test_processes_started_together_on_an_empty_postgresql_database_all_succeed(tmp_path, pg_url):
    results = _start_together([tmp_path / f"n{i}" for i in range(3)], pg_url)
    assert [code for code, _ in results] == [0, 0, 0], [err[-2000:] for _, err in results]
    engine = create_engine(pg_url)
    try:
        with engine.connect() as connection:
            admins = connection.execute(text("SELECT count(*) FROM user_account WHERE username = 'admin'"))
            assert admins.scalar() == 1
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


def test_processes_started_together_on_one_sqlite_data_dir_all_succeed(tmp_path):
    results = _start_together([tmp_path / "d"] * 2)
    assert [code for code, _ in results] == [0, 0], [err[-2000:] for _, err in results]


def test_data_dir_database_and_blobs_are_private_whatever_the_umask(tmp_path):
    from artifactory.testing.server import ADMIN_PASSWORD, LiveServer

    data = tmp_path / "data"
    server = LiveServer(data)
    old = os.umask(0)
    try:
        server.start()
    finally:
        os.umask(old)
    try:
        name = server.create_repo("raw")
        with server.client() as admin:
            assert admin.put(f"/repository/{name}/secret.txt", content=b"private").status_code == 201
    finally:
        server.stop()
    assert ADMIN_PASSWORD
    assert data.stat().st_mode & 0o777 == 0o700
    for path in data.rglob("*"):
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            assert mode & 0o077 == 0, (path, oct(mode))
        else:
            assert mode & 0o077 == 0, (path, oct(mode))
