import uuid

import httpx
import pytest

from artifactory.testing.fixtures import drop_schema, new_schema
from artifactory.testing.server import LiveServer


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Every HTTP-level OCI test runs on both metadata backends (the real-client runs in test_skopeo
    keep a server of their own, on SQLite)."""
    if request.param == "sqlite":
        live = LiveServer(tmp_path_factory.mktemp("server") / "data").start()
        try:
            yield live
        finally:
            live.stop()
        return
    base_url = request.getfixturevalue("pg_base_url")
    schema, url = new_schema(base_url)
    live = LiveServer(tmp_path_factory.mktemp("pgserver") / "data", database_url=url)
    try:
        yield live.start()
    finally:
        live.stop()
        drop_schema(base_url, schema)


@pytest.fixture(scope="module")
def admin(server: LiveServer):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def anon(server: LiveServer):
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


@pytest.fixture(scope="module")
def hosted(server: LiveServer) -> str:
    return server.create_repo("oci", name=f"oci-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def name(hosted: str) -> str:
    """A fresh image name in the module's hosted repository."""
    return f"{hosted}/team/img-{uuid.uuid4().hex[:8]}"
