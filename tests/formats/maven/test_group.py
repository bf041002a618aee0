"""Maven group repositories, on SQLite and PostgreSQL: merged maven-metadata.xml under the
dependency-confusion guard, files from the first member that has them."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from artifactory_formats.maven.coordinates import compare_versions, version_key
from lxml import etree

from artifactory.testing.server import LiveServer
from tests.formats.maven.support import StaticServer, jar_bytes, plugin_jar, pom_xml

UPSTREAM_META = b"""<metadata><groupId>org.example</groupId><artifactId>lib</artifactId><versioning>
<latest>1.5</latest><release>1.5</release><versions><version>1.5</version></versions>
<lastUpdated>20990101000000</lastUpdated></versioning></metadata>"""


@pytest.fixture(scope="module")
def admin(any_server: LiveServer):
    with any_server.client() as client:
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
    any_server, upstream, admin
):
    first = any_server.create_repo("maven", name=name("a"), version_policy="mixed")
    second = any_server.create_repo("maven", name=name("b"))
    remote = any_server.create_repo("maven", "proxy", name=name("p"), url=upstream.url)
    # Shadowing allowed: else the guard keeps the proxy's versions of org.example:lib out (below).
    group = any_server.create_repo(
        "maven", "group", name=name("g"), members=[first, second, remote], allow_proxy_shadowing=True
    )
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


def test_group_snapshot_metadata_takes_the_newest_build_across_members(any_server, admin):
    old = any_server.create_repo("maven", name=name("s1"), version_policy="snapshot")
    new = any_server.create_repo("maven", name=name("s2"), version_policy="snapshot")
    group = any_server.create_repo("maven", "group", name=name("g"), members=[old, new])
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


def test_group_plugin_prefixes_are_merged(any_server, admin):
    one = any_server.create_repo("maven", name=name("p1"))
    two = any_server.create_repo("maven", name=name("p2"))
    group = any_server.create_repo("maven", "group", name=name("g"), members=[one, two])
    put(admin, one, "org/plug/a-maven-plugin/1.0/a-maven-plugin-1.0.jar", plugin_jar("a"))
    put(admin, two, "org/plug/b-maven-plugin/1.0/b-maven-plugin-1.0.jar", plugin_jar("b"))
    doc = etree.fromstring(admin.get(f"/repository/{group}/org/plug/maven-metadata.xml").content)
    assert [p.findtext("prefix") for p in doc.findall("plugins/plugin")] == ["a", "b"]


def test_files_come_from_the_first_member_that_has_them(any_server, admin):
    first = any_server.create_repo("maven", name=name("f1"))
    second = any_server.create_repo("maven", name=name("f2"))
    group = any_server.create_repo("maven", "group", name=name("g"), members=[first, second])
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


def test_a_group_listing_shows_every_members_folders(any_server, admin):
    first = any_server.create_repo("maven", name=name("l1"))
    second = any_server.create_repo("maven", name=name("l2"))
    group = any_server.create_repo("maven", "group", name=name("g"), members=[first, second])
    release(admin, first, "1.0")
    release(admin, second, "2.0")
    listing = admin.get(f"/repository/{group}/org/example/lib/").text
    assert (
        'href="./1.0/"' in listing and 'href="./2.0/"' in listing and 'href="./maven-metadata.xml"' in listing
    )


# -- the dependency-confusion guard in merged documents --------------------------------------------
CONFUSED = "org/conf/lib"


def sha1_beside(root: Path, path: str, data: bytes) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)
    (root / f"{path}.sha1").write_text(hashlib.sha1(data).hexdigest())


@pytest.fixture(scope="module")
def lookalike(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    """A public upstream that offers org.conf:lib 99.0 (the internal name) and maps plugin prefix
    "conf" to its own plugin."""
    root: Path = tmp_path_factory.mktemp("lookalike")
    (root / CONFUSED).mkdir(parents=True)
    (root / CONFUSED / "maven-metadata.xml").write_bytes(
        b"<metadata><groupId>org.conf</groupId><artifactId>lib</artifactId><versioning>"
        b"<latest>99.0</latest><release>99.0</release><versions><version>99.0</version></versions>"
        b"<lastUpdated>20990101000000</lastUpdated></versioning></metadata>"
    )
    sha1_beside(root, f"{CONFUSED}/99.0/lib-99.0.jar", jar_bytes({"evil": b"1"}))
    sha1_beside(root, f"{CONFUSED}/99.0/lib-99.0.pom", pom_xml("org.conf", "lib", "99.0"))
    snapshot = f"{CONFUSED}/1.0-SNAPSHOT"
    (root / snapshot).mkdir(parents=True)
    (root / snapshot / "maven-metadata.xml").write_bytes(
        b"<metadata><groupId>org.conf</groupId><artifactId>lib</artifactId><version>1.0-SNAPSHOT</version>"
        b"<versioning><snapshot><timestamp>20990101.000000</timestamp><buildNumber>99</buildNumber></snapshot>"
        b"<snapshotVersions><snapshotVersion><extension>jar</extension><value>1.0-20990101.000000-99</value>"
        b"<updated>20990101000000</updated></snapshotVersion></snapshotVersions></versioning></metadata>"
    )
    (root / "org/plug").mkdir(parents=True)
    (root / "org/plug/maven-metadata.xml").write_bytes(
        b"<metadata><plugins><plugin><prefix>conf</prefix><artifactId>evil-maven-plugin</artifactId>"
        b"</plugin></plugins></metadata>"
    )
    with StaticServer(root) as static:
        yield static


def confused_group(any_server: LiveServer, admin, lookalike: StaticServer, **config) -> tuple[str, str, str]:
    """hosted holds org.conf:lib 1.0; the proxy (listed first) offers 99.0."""
    hosted = any_server.create_repo("maven", name=name("internal"), version_policy="mixed")
    remote = any_server.create_repo("maven", "proxy", name=name("public"), url=lookalike.url)
    group = any_server.create_repo("maven", "group", name=name("g"), members=[remote, hosted], **config)
    put(admin, hosted, f"{CONFUSED}/1.0/lib-1.0.jar", jar_bytes({"internal": b"1"}))
    put(admin, hosted, f"{CONFUSED}/1.0/lib-1.0.pom", pom_xml("org.conf", "lib", "1.0"))
    return hosted, remote, group


def versions(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [v.text for v in etree.fromstring(response.content).findall("versioning/versions/version")]


def test_group_metadata_leaves_out_a_proxys_versions_of_an_artifact_a_hosted_member_holds(
    any_server, admin, lookalike
):
    hosted, remote, group = confused_group(any_server, admin, lookalike)
    # The proxy on its own does offer 99.0: the guard is the group's, not a missing upstream.
    assert versions(admin.get(f"/repository/{remote}/{CONFUSED}/maven-metadata.xml")) == ["99.0"]
    response = admin.get(f"/repository/{group}/{CONFUSED}/maven-metadata.xml")
    assert versions(response) == ["1.0"]
    doc = etree.fromstring(response.content)
    assert doc.findtext("versioning/release") == "1.0" and doc.findtext("versioning/latest") == "1.0"
    sha1 = admin.get(f"/repository/{group}/{CONFUSED}/maven-metadata.xml.sha1")
    assert sha1.text == hashlib.sha1(response.content).hexdigest()
    assert admin.get(f"/repository/{group}/{CONFUSED}/99.0/lib-99.0.jar").status_code == 404
    # The snapshot level is guarded too: no build of the lookalike's.
    snapshot = admin.get(f"/repository/{group}/{CONFUSED}/1.0-SNAPSHOT/maven-metadata.xml")
    assert snapshot.status_code == 404
    # Once the hosted member no longer holds the name, the proxy may speak for it again.
    for path in (f"{CONFUSED}/1.0/lib-1.0.jar", f"{CONFUSED}/1.0/lib-1.0.pom"):
        assert admin.delete(f"/repository/{hosted}/{path}").status_code == 204
    assert versions(admin.get(f"/repository/{group}/{CONFUSED}/maven-metadata.xml")) == ["99.0"]


def test_a_range_resolves_as_mvn_would_to_a_version_the_group_serves(any_server, admin, lookalike):
    _hosted, _remote, group = confused_group(any_server, admin, lookalike)
    # What Maven does for [1.0,): the newest listed version in range, then its POM and jar.
    listed = versions(admin.get(f"/repository/{group}/{CONFUSED}/maven-metadata.xml"))
    chosen = max((v for v in listed if compare_versions(v, "1.0") >= 0), key=version_key)
    assert chosen == "1.0"
    for extension in ("pom", "jar"):
        response = admin.get(f"/repository/{group}/{CONFUSED}/{chosen}/lib-{chosen}.{extension}")
        assert response.status_code == 200, extension


@pytest.fixture
def private(admin) -> Iterator[None]:
    """Anonymous read off, so that a user reads only what its roles grant."""
    assert admin.put("/api/v1/settings", json={"anonymous_read": False}).status_code == 200
    time.sleep(0.3)  # the server caches settings for 0.2 s
    try:
        yield
    finally:
        admin.put("/api/v1/settings", json={"anonymous_read": True})
        time.sleep(0.3)


def test_the_guard_holds_for_a_caller_who_may_not_read_the_hosted_member(
    any_server, admin, lookalike, private
):
    hosted, remote, group = confused_group(any_server, admin, lookalike)
    reader = user_reading(admin, group, remote)
    with any_server.client(auth=reader) as client:
        assert client.get(f"/repository/{hosted}/{CONFUSED}/maven-metadata.xml").status_code == 403
        assert client.get(f"/repository/{remote}/{CONFUSED}/maven-metadata.xml").status_code == 200
        response = client.get(f"/repository/{group}/{CONFUSED}/maven-metadata.xml")
        assert response.status_code == 404 and b"99.0" not in response.content


def test_a_group_that_allows_proxy_shadowing_merges_the_proxys_versions(any_server, admin, lookalike):
    _hosted, _remote, group = confused_group(any_server, admin, lookalike, allow_proxy_shadowing=True)
    assert versions(admin.get(f"/repository/{group}/{CONFUSED}/maven-metadata.xml")) == ["1.0", "99.0"]


def test_a_group_listing_leaves_out_a_proxys_cache_of_a_guarded_artifact(any_server, admin, lookalike):
    _hosted, remote, group = confused_group(any_server, admin, lookalike)
    assert admin.get(f"/repository/{remote}/{CONFUSED}/99.0/lib-99.0.jar").status_code == 200
    assert 'href="./99.0/"' in admin.get(f"/repository/{remote}/{CONFUSED}/").text
    listing = admin.get(f"/repository/{group}/{CONFUSED}/")
    assert listing.status_code == 200
    assert 'href="./1.0/"' in listing.text and "99.0" not in listing.text
    assert admin.get(f"/repository/{group}/{CONFUSED}/99.0/").status_code == 404
    # A hosted repository inside a nested group guards a proxy of the outer group just the same.
    outer = any_server.create_repo("maven", "group", name=name("outer"), members=[remote, group])
    listing = admin.get(f"/repository/{outer}/{CONFUSED}/")
    assert 'href="./1.0/"' in listing.text and "99.0" not in listing.text
    assert admin.get(f"/repository/{outer}/{CONFUSED}/99.0/").status_code == 404
    assert admin.get(f"/repository/{outer}/{CONFUSED}/99.0/lib-99.0.jar").status_code == 404


def test_a_hosted_members_plugin_prefix_wins_over_a_proxy_listed_before_it(any_server, admin, lookalike):
    hosted = any_server.create_repo("maven", name=name("plugins"))
    remote = any_server.create_repo("maven", "proxy", name=name("public"), url=lookalike.url)
    group = any_server.create_repo("maven", "group", name=name("g"), members=[remote, hosted])
    put(admin, hosted, "org/plug/conf-maven-plugin/1.0/conf-maven-plugin-1.0.jar", plugin_jar("conf"))
    doc = etree.fromstring(admin.get(f"/repository/{group}/org/plug/maven-metadata.xml").content)
    assert [(p.findtext("prefix"), p.findtext("artifactId")) for p in doc.findall("plugins/plugin")] == [
        ("conf", "conf-maven-plugin")
    ]


def user_reading(admin, *repositories: str) -> tuple[str, str]:
    role = name("role")
    privileges = [{"repositories": r, "actions": ["read"]} for r in repositories]
    assert admin.post("/api/v1/roles", json={"name": role, "privileges": privileges}).status_code == 201
    username, password = name("user"), "user-password"
    response = admin.post("/api/v1/users", json={"username": username, "password": password, "roles": [role]})
    assert response.status_code == 201, response.text
    time.sleep(0.3)  # the server caches roles for 0.2 s
    return username, password
