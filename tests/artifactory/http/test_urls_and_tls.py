"""URLs handed to clients are absolute and honour the external URL or a trusted reverse proxy; TLS."""

import http.client
import subprocess
import time

import httpx
import pytest

from artifactory.testing.server import ADMIN_PASSWORD, LiveServer


def location_of(server, name, headers=None):
    response = httpx.put(
        f"{server.repo_url(name)}f.txt", content=b"x", auth=("admin", ADMIN_PASSWORD), headers=headers or {}
    )
    assert response.status_code == 201
    return response.headers["location"]


def test_location_is_built_from_the_request_by_default(server):
    name = server.create_repo("raw")
    assert location_of(server, name) == f"{server.url}/repository/{name}/f.txt"


def test_forwarded_headers_are_ignored_from_untrusted_peers(server):
    name = server.create_repo("raw")
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "X-Forwarded-Prefix": "/x"}
    assert location_of(server, name, headers).startswith(server.url)


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory):
    live = LiveServer(
        tmp_path_factory.mktemp("proxied") / "data", env={"ARTIFACTORY_TRUSTED_PROXIES": "127.0.0.1"}
    ).start()
    yield live
    live.stop()


def test_forwarded_proto_host_and_prefix_from_a_trusted_proxy(behind_proxy):
    name = behind_proxy.create_repo("raw")
    headers = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "repo.example.com",
        "X-Forwarded-Prefix": "/artifacts",
    }
    assert (
        location_of(behind_proxy, name, headers)
        == f"https://repo.example.com/artifacts/repository/{name}/f.txt"
    )


def test_configured_external_url_wins(tmp_path):
    live = LiveServer(
        tmp_path / "data", env={"ARTIFACTORY_EXTERNAL_URL": "https://packages.example.org/base/"}
    ).start()
    try:
        name = live.create_repo("raw")
        assert location_of(live, name) == f"https://packages.example.org/base/repository/{name}/f.txt"
    finally:
        live.stop()


def test_serve_over_tls_with_certificate_flags(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    live = LiveServer(tmp_path / "data", tls=(cert, key)).start()
    try:
        assert live.url.startswith("https://")
        name = live.create_repo("raw")
        with live.client() as client:
            assert (
                client.put(f"/repository/{name}/f.txt", content=b"x")
                .headers["location"]
                .startswith("https://")
            )
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{live.port}/api/v1/status", timeout=2)
    finally:
        live.stop()


def test_an_idle_keep_alive_connection_outlives_five_seconds(server):
    """Clients pool idle connections (pip's never expire): the server must not close one under them
    after uvicorn's default 5 s, or a request sent as it closes fails with "server disconnected"."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for pause in (6, 0):
        connection.request("GET", "/api/v1/status")
        response = connection.getresponse()
        assert response.status == 200 and response.read()
        time.sleep(pause)  # the second request raises RemoteDisconnected if the server closed it
    connection.close()
