import pytest

from artifactory.db.engine import Database
from artifactory.db.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """A migrated database of this test's own, on SQLite and on PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'g.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()
