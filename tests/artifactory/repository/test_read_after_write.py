"""Read after write across worker processes: once a write is acknowledged, the next request sees it,
whichever process answers it, even though each process caches documents and repository snapshots.

The server runs two workers with a 30 s config cache, so a test cannot pass by a snapshot expiring.
Every document is read before the write on several fresh connections (so both workers have it
cached), then again on several fresh connections right after the write is acknowledged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from lxml import etree

from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import LiveServer, client_tls
from tests.formats.maven.support import jar_bytes, pom_xml
from tests.formats.npm.helpers import escaped, publish_document
from tests.formats.oci.images import image, push
from tests.formats.pypi.conftest import post_upload
from tests.formats.pypi.dists import wheel_bytes

# Fresh connections per check: with two workers taking turns at accept(), both answer some of them.
READS = 8


@pytest.fixture(scope="module", params=DATABASES)
def live(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    env = {"ARTIFACTORY_CONFIG_CACHE_SECONDS": "30"}
    with live_server(request, "read-after-write", workers=2, env=env) as server:
        yield server


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client


def every_read(url: str, check: Callable[[httpx.Response], bool], **headers: str) -> list[str]:
    """What READS separate connections got from `url` that fails `check` (empty: all passed)."""
    failures = []
    for _ in range(READS):
        # A client of its own (a new connection) with the shared TLS context: not ~40 ms of CPU to build one.
        response = httpx.get(url, headers=headers, timeout=30, verify=client_tls())
        if not check(response):
            failures.append(f"{response.status_code} {response.text[:200]}")
    return failures


def warm(url: str, **headers: str) -> None:
    every_read(url, lambda response: True, **headers)


def name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def test_an_npm_publish_and_unpublish_are_in_the_next_packument_on_every_worker(live, admin):
    repo = live.create_repo("npm", name=name("npm-"))
    package = "@team/fresh"
    url = live.repo_url(repo) + escaped(package)
    abbreviated = {"Accept": "application/vnd.npm.install-v1+json"}
    for round_ in range(3):
        version = f"1.{round_}.0"
        warm(url), warm(url, **abbreviated)
        assert (
            admin.put(
                f"/repository/{repo}/{escaped(package)}", json=publish_document(package, version)
            ).status_code
            == 201
        )
        assert every_read(url, lambda r: r.status_code == 200 and version in r.json()["versions"]) == []
        assert (
            every_read(url, lambda r: r.status_code == 200 and version in r.json()["versions"], **abbreviated)
            == []
        )
    rev = admin.get(f"/repository/{repo}/{escaped(package)}?write=true").json()["_rev"]
    assert admin.delete(f"/repository/{repo}/{escaped(package)}/-rev/{rev}").status_code == 200
    assert every_read(url, lambda r: r.status_code == 404) == []


def test_a_pypi_upload_and_delete_are_in_the_next_simple_page_on_every_worker(live, admin):
    repo = live.create_repo("pypi", name=name("pypi-"))
    url = f"{live.repo_url(repo)}simple/fresh-pkg/"
    files = []
    for round_ in range(3):
        filename = f"fresh_pkg-1.{round_}-py3-none-any.whl"
        warm(url)
        response = post_upload(live, repo, filename, wheel_bytes("fresh-pkg", f"1.{round_}"))
        assert response.status_code == 200, response.text
        files.append(filename)
        assert every_read(url, lambda r: r.status_code == 200 and filename in r.text) == []
    assert admin.delete(f"{live.repo_url(repo)}packages/fresh-pkg/{files[0]}").status_code == 204
    assert (
        every_read(url, lambda r: r.status_code == 200 and files[0] not in r.text and files[1] in r.text)
        == []
    )


def test_a_maven_deploy_and_delete_are_in_the_next_maven_metadata_on_every_worker(live, admin):
    repo = live.create_repo("maven", name=name("mvn-"))
    folder = "org/example/fresh"
    url = f"{live.repo_url(repo)}{folder}/maven-metadata.xml"

    def versions(response: httpx.Response) -> list[str]:
        if response.status_code != 200:
            return []
        return [
            v.text or "" for v in etree.fromstring(response.content).findall("versioning/versions/version")
        ]

    for round_ in range(3):
        version = f"1.{round_}"
        warm(url)
        base = f"/repository/{repo}/{folder}/{version}/fresh-{version}"
        assert admin.put(f"{base}.jar", content=jar_bytes({"v": version.encode()})).status_code == 201
        assert admin.put(f"{base}.pom", content=pom_xml("org.example", "fresh", version)).status_code == 201
        assert every_read(url, lambda r: version in versions(r)) == []
    assert admin.delete(f"/repository/{repo}/{folder}/1.0/").status_code == 204
    assert every_read(url, lambda r: versions(r) == ["1.1", "1.2"]) == []


def test_an_oci_push_and_tag_delete_are_in_the_next_tag_list_on_every_worker(live, admin):
    repo = live.create_repo("oci", name=name("oci-"))
    image_name = f"{repo}/team/app"
    url = f"{live.url}/v2/{image_name}/tags/list"
    for round_ in range(3):
        tag = f"v{round_}"
        warm(url)
        assert push(admin, image_name, tag, image(f"{tag}-{uuid.uuid4()}")).status_code == 201
        assert every_read(url, lambda r: r.status_code == 200 and tag in r.json()["tags"]) == []
    assert admin.delete(f"/v2/{image_name}/manifests/v0").status_code == 202
    assert every_read(url, lambda r: r.status_code == 200 and r.json()["tags"] == ["v1", "v2"]) == []
