"""Maven group repositories: merged maven-metadata.xml, files from the first member that has them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from artifactory.testing.server import LiveServer
from tests.formats.maven.support import StaticServer, jar_bytes, plugin_jar, pom_xml

UPSTREAM_META = b"""<metadata><groupId>org.example</groupId><artifactId>lib</artifactId><versioning>
<latest>1.5</latest><release>1.5</release><versions><version>1.5</version></versions>
<lastUpdated>20990101000000</lastUpdated></versioning></metadata>"""


@pytest.fixture(scope="module")
def admin(server: LiveServer):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    root: Path = tmp_path_factory.mktemp("group-upstream")
    (root / "org/example/lib").mkdir(parents=True)
    (root / "org/example/lib/maven-metadata.xml").write_bytes(UPSTREAM_META)
    with StaticServer(root) as static:
        yield static


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def put(admin, repo: str, path: str, data: bytes) -> None:
    response = admin.put(f"/repository/{repo}/{path}", content=data)
    assert response.status_code == 201, response.text


def release(admin, repo: str, version: str, content: bytes = b"") -> None:
    base = f"org/example/lib/{version}/lib-{version}"
    put(admin, repo, f"{base}.jar", content or jar_bytes({"v": version.encode()}))
    put(admin, repo, f"{base}.pom", pom_xml("org.example", "lib", version))


def test_group_metadata_unites_versions_and_recomputes_latest_release_and_last_updated(
    server, upstream, admin
):
    first = server.create_repo("maven", name=name("a"), version_policy="mixed")
    second = server.create_repo("maven", name=name("b"))
    remote = server.create_repo("maven", "proxy", name=name("p"), url=upstream.url)
    group = server.create_repo("maven", "group", name=name("g"), members=[first, second, remote])
    release(admin, first, "1.0")
    put(admin, first, "org/example/lib/3.0-SNAPSHOT/lib-3.0-20240101.000000-1.jar", jar_bytes())
    release(admin, second, "2.0")
    response = admin.get(f"/repository/{group}/org/example/lib/maven-metadata.xml")
    assert response.status_code == 200
    doc = etree.fromstring(response.content)
    assert [v.text for v in doc.findall("versioning/versions/version")] == [
        "1.0",
        "1.5",
        "2.0",
        "3.0-SNAPSHOT",
    ]
    assert doc.findtext("versioning/latest") == "3.0-SNAPSHOT"
    assert doc.findtext("versioning/release") == "2.0"
    assert doc.findtext("versioning/lastUpdated") == "20990101000000"
    checksum = admin.get(f"/repository/{group}/org/example/lib/maven-metadata.xml.sha1")
    assert checksum.text == hashlib.sha1(response.content).hexdigest()
    # A deploy to a member shows up in the group's document at once.
    release(admin, second, "2.1")
    doc = etree.fromstring(admin.get(f"/repository/{group}/org/example/lib/maven-metadata.xml").content)
    assert doc.findtext("versioning/release") == "2.1"


def test_group_snapshot_metadata_takes_the_newest_build_across_members(server, admin):
    old = server.create_repo("maven", name=name("s1"), version_policy="snapshot")
    new = server.create_repo("maven", name=name("s2"), version_policy="snapshot")
    group = server.create_repo("maven", "group", name=name("g"), members=[old, new])
    folder = "org/example/lib/1.0-SNAPSHOT"
    put(admin, old, f"{folder}/lib-1.0-20240101.000000-1.jar", jar_bytes())
    put(admin, old, f"{folder}/lib-1.0-20240101.000000-1-sources.jar", jar_bytes())
    put(admin, new, f"{folder}/lib-1.0-20240202.000000-2.jar", jar_bytes())
    doc = etree.fromstring(admin.get(f"/repository/{group}/{folder}/maven-metadata.xml").content)
    assert doc.findtext("versioning/snapshot/buildNumber") == "2"
    entries = {
        (e.findtext("classifier") or "", e.findtext("extension")): e.findtext("value")
        for e in doc.findall("versioning/snapshotVersions/snapshotVersion")
    }
    assert entries[("", "jar")] == "1.0-20240202.000000-2"
    assert entries[("sources", "jar")] == "1.0-20240101.000000-1"


def test_group_plugin_prefixes_are_merged(server, admin):
    one = server.create_repo("maven", name=name("p1"))
    two = server.create_repo("maven", name=name("p2"))
    group = server.create_repo("maven", "group", name=name("g"), members=[one, two])
    put(admin, one, "org/plug/a-maven-plugin/1.0/a-maven-plugin-1.0.jar", plugin_jar("a"))
    put(admin, two, "org/plug/b-maven-plugin/1.0/b-maven-plugin-1.0.jar", plugin_jar("b"))
    doc = etree.fromstring(admin.get(f"/repository/{group}/org/plug/maven-metadata.xml").content)
    assert [p.findtext("prefix") for p in doc.findall("plugins/plugin")] == ["a", "b"]


def test_files_come_from_the_first_member_that_has_them(server, admin):
    first = server.create_repo("maven", name=name("f1"))
    second = server.create_repo("maven", name=name("f2"))
    group = server.create_repo("maven", "group", name=name("g"), members=[first, second])
    release(admin, second, "1.0", b"from second")
    assert admin.get(f"/repository/{group}/org/example/lib/1.0/lib-1.0.jar").content == b"from second"
    release(admin, first, "1.0", b"from first")
    response = admin.get(f"/repository/{group}/org/example/lib/1.0/lib-1.0.jar")
    assert response.content == b"from first"
    assert admin.get(f"/repository/{group}/org/example/lib/1.0/lib-1.0.jar.sha1").text == (
        hashlib.sha1(b"from first").hexdigest()
    )
    assert admin.get(f"/repository/{group}/org/example/lib/9.9/lib-9.9.jar").status_code == 404
    assert admin.get(f"/repository/{group}/org/example/none/maven-metadata.xml").status_code == 404


def test_a_group_listing_shows_every_members_folders(server, admin):
    first = server.create_repo("maven", name=name("l1"))
    second = server.create_repo("maven", name=name("l2"))
    group = server.create_repo("maven", "group", name=name("g"), members=[first, second])
    release(admin, first, "1.0")
    release(admin, second, "2.0")
    listing = admin.get(f"/repository/{group}/org/example/lib/").text
    assert 'href="1.0/"' in listing and 'href="2.0/"' in listing and 'href="maven-metadata.xml"' in listing
