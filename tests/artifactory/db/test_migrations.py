"""One alembic history creates the schema on SQLite and PostgreSQL alike."""

import subprocess
import sys

from sqlalchemy import create_engine, inspect

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
    "upstream_link",
    "proxy_health",
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
