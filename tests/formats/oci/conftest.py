import uuid

import httpx
import pytest

from artifactory.testing.server import LiveServer


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
