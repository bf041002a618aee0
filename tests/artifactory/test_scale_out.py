"""Two stateless nodes on one PostgreSQL database and one S3-compatible bucket serve as one."""

import hashlib
import os
import time
import uuid

import httpx
import pytest

from artifactory.testing.fixtures import drop_schema, new_schema
from artifactory.testing.server import LiveServer


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, pg_base_url, s3_endpoint):
    schema, url = new_schema(pg_base_url)
    env = {
        "ARTIFACTORY_S3_ENDPOINT": s3_endpoint,
        "ARTIFACTORY_S3_BUCKET": f"nodes-{uuid.uuid4().hex[:8]}",
        "ARTIFACTORY_S3_ACCESS_KEY": "testing",
        "ARTIFACTORY_S3_SECRET_KEY": "testing",
        "ARTIFACTORY_S3_REGION": "us-east-1",
        "ARTIFACTORY_S3_SECURE": "false",
        "ARTIFACTORY_TOKEN_SECRET": "shared-secret-for-both-nodes",
    }
    first = LiveServer(tmp_path_factory.mktemp("node-a") / "data", database_url=url, env=env).start()
    second = LiveServer(tmp_path_factory.mktemp("node-b") / "data", database_url=url, env=env).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
        drop_schema(pg_base_url, schema)


def test_status_reports_postgresql_and_s3(nodes):
    status = httpx.get(f"{nodes[0].url}/api/v1/status").json()
    assert status["database"] == "postgresql"
    assert status["blobstore"] == "S3Driver"


def test_file_uploaded_to_one_node_is_served_by_the_other(nodes):
    first, second = nodes
    name = first.create_repo("raw")
    data = os.urandom(3 * 1024 * 1024)
    with first.client() as client:
        assert client.put(f"/repository/{name}/big.bin", content=data).status_code == 201
    deadline = time.monotonic() + 5
    while True:
        response = httpx.get(f"{second.repo_url(name)}big.bin")
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(data).hexdigest()
    ranged = httpx.get(f"{second.repo_url(name)}big.bin", headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == data[100:200]


def test_token_made_on_one_node_works_on_the_other(nodes):
    first, second = nodes
    with first.client() as client:
        token = client.post("/api/v1/tokens", json={}).json()["token"]
    response = httpx.get(f"{second.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.json()["username"] == "admin"


def test_repository_change_on_one_node_reaches_the_other(nodes):
    first, second = nodes
    name = first.create_repo("raw")
    with second.client() as client:
        assert client.put(f"/repository/{name}/x.txt", content=b"1").status_code == 201
    with first.client() as client:
        body = client.get(f"/api/v1/repositories/{name}").json()
        assert (
            client.put(f"/api/v1/repositories/{name}", json={**body, "write_policy": "deny"}).status_code
            == 200
        )
    time.sleep(0.5)  # the nodes re-read config at least every 0.2 s in tests
    with second.client() as client:
        assert client.put(f"/repository/{name}/y.txt", content=b"2").status_code == 400
