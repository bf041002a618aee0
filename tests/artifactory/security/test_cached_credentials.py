"""`Security.cached`: what `verify` proved, answered without I/O, never past the cache time, a
revocation or the credential's expiry (SQLite and PostgreSQL)."""

import time

import pytest

from artifactory.cli import prepare
from artifactory.security.principal import Credentials
from artifactory.settings import Settings
from artifactory.state import AppState


@pytest.fixture(params=["sqlite", "postgresql"])
def security(request, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", admin_password="x", config_cache_seconds=0.3)
    if request.param == "postgresql":
        settings.database_url = request.getfixturevalue("pg_url")
    prepare(settings, announce=False)
    state = AppState.build(settings)
    yield state.security
    state.db.dispose()


def test_a_verified_token_is_answered_from_the_cache_until_the_cache_time_passes(security):
    token = security.create_token("admin", "t")["token"]
    credentials = Credentials("bearer", "", token)
    assert security.cached(credentials) is None  # never verified: the caller must verify
    principal = security.verify(credentials)
    assert security.cached(credentials) == principal
    assert security.cached(Credentials("bearer", "", token + "x")) is None
    time.sleep(0.35)
    assert security.cached(credentials) is None


def test_a_cached_credential_is_forgotten_when_the_caches_are_invalidated(security):
    token = security.create_token("admin", "t")
    credentials = Credentials("bearer", "", token["token"])
    security.verify(credentials)
    security.revoke_token("admin", token["id"])  # invalidates this process's caches
    assert security.cached(credentials) is None


def test_an_expired_token_is_never_answered_from_the_cache(security):
    token = security.create_token("admin", "t", expires_in_seconds=1)["token"]
    credentials = Credentials("bearer", "", token)
    security.cache_seconds = 60.0
    security.verify(credentials)
    assert security.cached(credentials) is not None
    time.sleep(1.1)
    assert security.cached(credentials) is None
