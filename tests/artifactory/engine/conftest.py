"""An in-process AppState on SQLite and on PostgreSQL, for tests of the engine's own calls."""

import pytest

from artifactory.cli import prepare
from artifactory.settings import Settings
from artifactory.state import AppState


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", admin_password="x")
    if request.param == "postgresql":
        settings.database_url = request.getfixturevalue("pg_url")
    prepare(settings, announce=False)
    app_state = AppState.build(settings)
    yield app_state
    app_state.db.dispose()
