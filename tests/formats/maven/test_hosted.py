"""Hosted maven repositories over HTTP, on SQLite and PostgreSQL: layout, checksums, generated metadata,
policies, bad input."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from lxml import etree

from artifactory.testing.server import LiveServer
from tests.formats.maven.support import jar_bytes, plugin_jar, pom_xml

G = "org/example"
METADATA = "maven-metadata.xml"


@pytest.fixture(scope="module")
def admin(any_server: LiveServer):
    with any_server.client() as client:
        yield client


def new_repo(any_server: LiveServer, **config: Any) -> str:
    return any_server.create_repo("maven", name=f"mvn-{uuid.uuid4().hex[:8]}", **config)


def deploy(admin: httpx.Client, repo: str, path: str, data: bytes, status: int = 201) -> httpx.Response:
    response = admin.put(f"/repository/{repo}/{path}", content=data)
    assert response.status_code == status, response.text
    return response


def deploy_release(admin: httpx.Client, repo: str, artifact: str, version: str, jar: bytes = b"") -> None:
    base = f"{G}/{artifact}/{version}/{artifact}-{version}"
    deploy(admin, repo, f"{base}.jar", jar or jar_bytes({"v": version.encode()}))
    deploy(admin, repo, f"{base}.pom", pom_xml("org.example", artifact, version))


def stored_paths(admin: httpx.Client, repo: str, prefix: str = "") -> list[str]:
    """Every file under `prefix`, walking the HTML listings (generated maven-metadata.xml left out)."""
    response = admin.get(f"/repository/{repo}/{prefix}")
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    found: list[str] = []
    for href in re.findall(r'href="([^"]+)"', response.text):
        if href == "../" or href == "./" + METADATA:
            continue
        assert href.startswith("./"), href
        href = unquote(href[2:])
        found += stored_paths(admin, repo, prefix + href) if href.endswith("/") else [prefix + href]
    return sorted(found)


def metadata(admin: httpx.Client, repo: str, path: str) -> etree._Element:
    response = admin.get(f"/repository/{repo}/{path}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return etree.fromstring(response.content)


# -- files and checksums -------------------------------------------------------------------------
def test_every_checksum_of_a_file_is_served_from_its_blob_digests(any_server, admin):
    repo = new_repo(any_server)
    jar = jar_bytes({"a.txt": b"a"})
    deploy(admin, repo, f"{G}/lib/1.0/lib-1.0.jar", jar)
    got = admin.get(f"/repository/{repo}/{G}/lib/1.0/lib-1.0.jar")
    assert got.status_code == 200 and got.content == jar
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        response = admin.get(f"/repository/{repo}/{G}/lib/1.0/lib-1.0.jar.{algorithm}")
        assert response.status_code == 200
        assert response.text == hashlib.new(algorithm, jar).hexdigest()
    assert admin.get(f"/repository/{repo}/{G}/lib/1.0/lib-1.0.war.sha1").status_code == 404


def test_head_and_conditional_get_on_files_checksums_and_metadata(any_server, admin):
    repo = new_repo(any_server)
    deploy_release(admin, repo, "cond", "1.0")
    for path in (
        f"{G}/cond/1.0/cond-1.0.jar",
        f"{G}/cond/1.0/cond-1.0.jar.sha1",
        f"{G}/cond/maven-metadata.xml",
        f"{G}/cond/maven-metadata.xml.sha1",
    ):
        url = f"{any_server.repo_url(repo)}{path}"
        full = httpx.get(url)
        head = httpx.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == full.headers["etag"]
        assert httpx.get(url, headers={"If-None-Match": full.headers["etag"]}).status_code == 304
    jar_url = f"{any_server.repo_url(repo)}{G}/cond/1.0/cond-1.0.jar"
    modified = httpx.get(jar_url).headers["last-modified"]
    assert httpx.get(jar_url, headers={"If-Modified-Since": modified}).status_code == 304


def test_matching_uploaded_checksums_are_accepted_but_not_stored(any_server, admin):
    repo = new_repo(any_server)
    jar = jar_bytes()
    path = f"{G}/sums/1.0/sums-1.0.jar"
    deploy(admin, repo, path, jar)
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        digest = hashlib.new(algorithm, jar).hexdigest()
        deploy(admin, repo, f"{path}.{algorithm}", f"{digest.upper()}  sums-1.0.jar\n".encode())
    assert stored_paths(admin, repo) == [path]
    assert admin.get(f"/repository/{repo}/{path}.sha1").text == hashlib.sha1(jar).hexdigest()


def test_a_wrong_checksum_file_is_refused_and_nothing_is_stored(any_server, admin):
    repo = new_repo(any_server)
    path = f"{G}/bad/1.0/bad-1.0.jar"
    deploy(admin, repo, path, jar_bytes())
    response = deploy(admin, repo, f"{path}.sha1", b"0" * 40, status=400)
    assert "sha1 checksum mismatch" in response.json()["error"]
    garbage = deploy(admin, repo, f"{path}.md5", b"not a checksum", status=400)
    assert "32-digit hex digest" in garbage.json()["error"]
    assert stored_paths(admin, repo) == [path]


def test_an_oversize_checksum_file_is_refused_with_413(any_server, admin):
    repo = new_repo(any_server)
    path = f"{G}/big/1.0/big-1.0.jar"
    deploy(admin, repo, path, jar_bytes())
    response = deploy(admin, repo, f"{path}.sha1", b"0" * 40 + b" " * 8192, status=413)
    assert "larger than 4096 bytes" in response.json()["error"]
    assert stored_paths(admin, repo) == [path]


def test_a_checksum_for_a_missing_file_is_refused(any_server, admin):
    repo = new_repo(any_server)
    response = deploy(admin, repo, f"{G}/none/1.0/none-1.0.jar.sha1", b"a" * 40, status=400)
    assert "upload it first" in response.json()["error"]
    assert stored_paths(admin, repo) == []


def test_checksum_headers_on_a_put_are_verified(any_server, admin):
    repo = new_repo(any_server)
    path = f"{G}/hdr/1.0/hdr-1.0.jar"
    bad = admin.put(f"/repository/{repo}/{path}", content=b"x", headers={"X-Checksum-Sha1": "1" * 40})
    assert bad.status_code == 400
    assert stored_paths(admin, repo) == []


def test_signatures_and_gradle_module_files_are_stored_next_to_their_file(any_server, admin):
    repo = new_repo(any_server)
    base = f"{G}/signed/1.0/signed-1.0"
    deploy_release(admin, repo, "signed", "1.0")
    signature = b"-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n"
    deploy(admin, repo, f"{base}.jar.asc", signature)
    deploy(admin, repo, f"{base}.module", b'{"formatVersion": "1.1"}')
    assert admin.get(f"/repository/{repo}/{base}.jar.asc").content == signature
    assert admin.get(f"/repository/{repo}/{base}.jar.asc.sha1").text == hashlib.sha1(signature).hexdigest()
    assert admin.get(f"/repository/{repo}/{base}.module").json() == {"formatVersion": "1.1"}
    assert f"{base}.module" in stored_paths(admin, repo)


def test_folders_answer_a_browsable_listing_with_the_generated_metadata(any_server, admin):
    repo = new_repo(any_server)
    deploy_release(admin, repo, "browse", "1.0")
    root = admin.get(f"/repository/{repo}/")
    assert root.status_code == 200 and 'href="./org/"' in root.text
    folder = admin.get(f"/repository/{repo}/{G}/browse/")
    assert folder.headers["content-type"].startswith("text/html")
    assert 'href="./1.0/"' in folder.text and 'href="./maven-metadata.xml"' in folder.text
    version = admin.get(f"/repository/{repo}/{G}/browse/1.0/").text
    assert 'href="./browse-1.0.jar"' in version and 'href="./browse-1.0.pom"' in version
    redirect = admin.get(f"/repository/{repo}/{G}/browse", follow_redirects=False)
    assert redirect.status_code == 301 and redirect.headers["location"].endswith(f"{G}/browse/")
    assert admin.get(f"/repository/{repo}/{G}/nothing/").status_code == 404


# -- generated metadata --------------------------------------------------------------------------
def test_artifact_metadata_lists_versions_in_maven_order_with_latest_and_release(any_server, admin):
    repo = new_repo(any_server, version_policy="mixed")
    for version in ("1.10", "1.9", "2.0-beta-1", "1.0"):
        deploy_release(admin, repo, "ordered", version)
    stamp = "20240101.101010"
    deploy(admin, repo, f"{G}/ordered/2.0-SNAPSHOT/ordered-2.0-{stamp}-1.jar", jar_bytes())
    doc = metadata(admin, repo, f"{G}/ordered/maven-metadata.xml")
    assert doc.findtext("groupId") == "org.example" and doc.findtext("artifactId") == "ordered"
    assert [v.text for v in doc.findall("versioning/versions/version")] == [
        "1.0",
        "1.9",
        "1.10",
        "2.0-beta-1",
        "2.0-SNAPSHOT",
    ]
    assert doc.findtext("versioning/latest") == "2.0-SNAPSHOT"
    assert doc.findtext("versioning/release") == "2.0-beta-1"
    assert len(doc.findtext("versioning/lastUpdated")) == 14
    checksum = admin.get(f"/repository/{repo}/{G}/ordered/maven-metadata.xml.sha1").text
    body = admin.get(f"/repository/{repo}/{G}/ordered/maven-metadata.xml").content
    assert checksum == hashlib.sha1(body).hexdigest()
    assert admin.get(f"/repository/{repo}/{G}/unknown/maven-metadata.xml").status_code == 404


def test_snapshot_metadata_names_the_newest_build_per_classifier_and_extension(any_server, admin):
    repo = new_repo(any_server, version_policy="snapshot")
    folder = f"{G}/snap/1.0-SNAPSHOT"
    for build, stamp in ((1, "20240101.100000"), (2, "20240102.100000")):
        deploy(admin, repo, f"{folder}/snap-1.0-{stamp}-{build}.jar", jar_bytes({"b": str(build).encode()}))
        deploy(
            admin,
            repo,
            f"{folder}/snap-1.0-{stamp}-{build}.pom",
            pom_xml("org.example", "snap", "1.0-SNAPSHOT"),
        )
    deploy(admin, repo, f"{folder}/snap-1.0-20240101.100000-1-sources.jar", jar_bytes())
    doc = metadata(admin, repo, f"{folder}/maven-metadata.xml")
    assert doc.get("modelVersion") == "1.1.0"
    assert doc.findtext("version") == "1.0-SNAPSHOT"
    assert doc.findtext("versioning/snapshot/timestamp") == "20240102.100000"
    assert doc.findtext("versioning/snapshot/buildNumber") == "2"
    entries = {
        (e.findtext("classifier") or "", e.findtext("extension")): e.findtext("value")
        for e in doc.findall("versioning/snapshotVersions/snapshotVersion")
    }
    assert entries == {
        ("", "jar"): "1.0-20240102.100000-2",
        ("", "pom"): "1.0-20240102.100000-2",
        ("sources", "jar"): "1.0-20240101.100000-1",
    }
    top = metadata(admin, repo, f"{G}/snap/maven-metadata.xml")
    assert [v.text for v in top.findall("versioning/versions/version")] == ["1.0-SNAPSHOT"]


def test_metadata_is_regenerated_when_files_are_deleted(any_server, admin):
    repo = new_repo(any_server)
    deploy_release(admin, repo, "gone", "1.0")
    deploy_release(admin, repo, "gone", "2.0")
    assert metadata(admin, repo, f"{G}/gone/maven-metadata.xml").findtext("versioning/release") == "2.0"
    assert admin.delete(f"/repository/{repo}/{G}/gone/2.0/").status_code == 204
    doc = metadata(admin, repo, f"{G}/gone/maven-metadata.xml")
    assert [v.text for v in doc.findall("versioning/versions/version")] == ["1.0"]
    assert doc.findtext("versioning/latest") == "1.0"
    assert admin.delete(f"/repository/{repo}/{G}/gone/1.0/gone-1.0.jar").status_code == 204
    assert admin.delete(f"/repository/{repo}/{G}/gone/1.0/gone-1.0.pom").status_code == 204
    assert admin.get(f"/repository/{repo}/{G}/gone/maven-metadata.xml").status_code == 404


def test_uploaded_metadata_and_its_checksums_are_acknowledged_and_ignored(any_server, admin):
    repo = new_repo(any_server)  # a release repository: allow_once must not apply to metadata
    deploy_release(admin, repo, "meta", "1.0")
    forged = b"<metadata><versioning><versions><version>6.6.6</version></versions></versioning></metadata>"
    for _ in range(2):
        deploy(admin, repo, f"{G}/meta/maven-metadata.xml", forged)
        deploy(admin, repo, f"{G}/meta/maven-metadata.xml.sha1", hashlib.sha1(forged).hexdigest().encode())
        deploy(admin, repo, f"{G}/meta/maven-metadata.xml.md5", b"whatever")
    doc = metadata(admin, repo, f"{G}/meta/maven-metadata.xml")
    assert [v.text for v in doc.findall("versioning/versions/version")] == ["1.0"]
    body = admin.get(f"/repository/{repo}/{G}/meta/maven-metadata.xml").content
    assert (
        admin.get(f"/repository/{repo}/{G}/meta/maven-metadata.xml.md5").text == hashlib.md5(body).hexdigest()
    )
    found = admin.get("/api/v1/search", params={"repository": repo}).json()
    assert found and all("maven-metadata" not in str(component) for component in found)


def test_group_level_metadata_lists_plugin_prefixes_from_plugin_descriptors(any_server, admin):
    repo = new_repo(any_server)
    base = "org/example/plugins/hello-maven-plugin/1.0/hello-maven-plugin-1.0"
    deploy(admin, repo, f"{base}.jar", plugin_jar("hello", "Hello Plugin"))
    deploy(
        admin,
        repo,
        f"{base}.pom",
        pom_xml("org.example.plugins", "hello-maven-plugin", "1.0", packaging="maven-plugin"),
    )
    deploy(admin, repo, "org/example/plugins/plain/1.0/plain-1.0.jar", jar_bytes())
    doc = metadata(admin, repo, "org/example/plugins/maven-metadata.xml")
    plugins = [
        (p.findtext("prefix"), p.findtext("artifactId"), p.findtext("name"))
        for p in doc.findall("plugins/plugin")
    ]
    assert plugins == [("hello", "hello-maven-plugin", "Hello Plugin")]
    # A plugin is a component of its own: deploying (and deleting) one still changes its group's list.
    deploy(
        admin, repo, "org/example/plugins/bye-maven-plugin/1.0/bye-maven-plugin-1.0.jar", plugin_jar("bye")
    )
    doc = metadata(admin, repo, "org/example/plugins/maven-metadata.xml")
    assert [p.findtext("prefix") for p in doc.findall("plugins/plugin")] == ["bye", "hello"]
    assert admin.delete(f"/repository/{repo}/{base}.jar").status_code == 204
    doc = metadata(admin, repo, "org/example/plugins/maven-metadata.xml")
    assert [p.findtext("prefix") for p in doc.findall("plugins/plugin")] == ["bye"]


def test_metadata_checksums_match_the_document_and_follow_each_deploy(any_server, admin):
    repo = new_repo(any_server, version_policy="mixed")
    path = f"{G}/sums/{METADATA}"
    for version in ("1.0", "1.1"):
        deploy_release(admin, repo, "sums", version)
        body = admin.get(f"/repository/{repo}/{path}").content
        assert f"<version>{version}</version>".encode() in body
        for algorithm in ("md5", "sha1", "sha256", "sha512"):
            checksum = admin.get(f"/repository/{repo}/{path}.{algorithm}")
            assert checksum.status_code == 200
            assert checksum.text == hashlib.new(algorithm, body).hexdigest()
    snapshot = f"{G}/sums/2.0-SNAPSHOT"
    deploy(admin, repo, f"{snapshot}/sums-2.0-20240101.000000-1.jar", jar_bytes())
    body = admin.get(f"/repository/{repo}/{snapshot}/{METADATA}").content
    assert b"<buildNumber>1</buildNumber>" in body
    assert admin.get(f"/repository/{repo}/{snapshot}/{METADATA}.sha1").text == hashlib.sha1(body).hexdigest()
    assert b"2.0-SNAPSHOT" in admin.get(f"/repository/{repo}/{path}").content


# -- policies ------------------------------------------------------------------------------------
def test_a_release_redeploy_is_refused_under_the_default_allow_once(any_server, admin):
    repo = new_repo(any_server)
    assert admin.get(f"/api/v1/repositories/{repo}").json()["write_policy"] == "allow_once"
    deploy_release(admin, repo, "once", "1.0")
    response = deploy(admin, repo, f"{G}/once/1.0/once-1.0.jar", b"other bytes", status=400)
    assert "allow_once" in response.json()["error"]
    assert admin.get(f"/repository/{repo}/{G}/once/1.0/once-1.0.jar").content != b"other bytes"


def test_a_snapshot_into_a_release_repository_is_refused(any_server, admin):
    repo = new_repo(any_server)
    response = deploy(admin, repo, f"{G}/s/1.0-SNAPSHOT/s-1.0-20240101.100000-1.jar", jar_bytes(), status=400)
    assert "version policy release" in response.json()["error"]
    assert stored_paths(admin, repo) == []


def test_a_release_into_a_snapshot_repository_is_refused(any_server, admin):
    repo = new_repo(any_server, version_policy="snapshot")
    assert admin.get(f"/api/v1/repositories/{repo}").json()["write_policy"] == "allow"
    response = deploy(admin, repo, f"{G}/r/1.0/r-1.0.jar", jar_bytes(), status=400)
    assert "version policy snapshot" in response.json()["error"]
    assert stored_paths(admin, repo) == []


def test_a_mixed_repository_takes_both_and_lets_snapshots_be_redeployed(any_server, admin):
    repo = new_repo(any_server, version_policy="mixed")
    deploy_release(admin, repo, "both", "1.0")
    path = f"{G}/both/1.0-SNAPSHOT/both-1.0-SNAPSHOT.jar"
    deploy(admin, repo, path, b"first")
    deploy(admin, repo, path, b"second")
    assert admin.get(f"/repository/{repo}/{path}").content == b"second"
    deploy(admin, repo, f"{G}/both/1.0/both-1.0.jar", b"again", status=400)


def test_snapshot_retention_keeps_only_the_newest_builds(any_server, admin):
    repo = new_repo(any_server, version_policy="snapshot", snapshot_retention=2)
    folder = f"{G}/kept/1.0-SNAPSHOT"
    for build in range(1, 5):
        stamp = f"2024010{build}.100000"
        deploy(admin, repo, f"{folder}/kept-1.0-{stamp}-{build}.jar", jar_bytes({"b": str(build).encode()}))
        deploy(
            admin,
            repo,
            f"{folder}/kept-1.0-{stamp}-{build}.pom",
            pom_xml("org.example", "kept", "1.0-SNAPSHOT"),
        )
    builds = sorted({p.rsplit("-", 1)[1].split(".")[0] for p in stored_paths(admin, repo)})
    assert builds == ["3", "4"]
    doc = metadata(admin, repo, f"{folder}/maven-metadata.xml")
    assert doc.findtext("versioning/snapshot/buildNumber") == "4"


def test_every_snapshot_build_is_kept_by_default(any_server, admin):
    repo = new_repo(any_server, version_policy="snapshot")
    assert admin.get(f"/api/v1/repositories/{repo}").json()["snapshot_retention"] == 0
    for build in range(1, 4):
        deploy(admin, repo, f"{G}/all/1.0-SNAPSHOT/all-1.0-2024010{build}.100000-{build}.jar", jar_bytes())
    assert len(stored_paths(admin, repo)) == 3


@pytest.mark.parametrize(
    "config, message",
    [
        ({"version_policy": "nightly"}, "version_policy"),
        ({"snapshot_retention": -1}, "snapshot_retention"),
        ({"snapshot_retention": "3"}, "snapshot_retention"),
        ({"checksum_policy": "strict"}, "does not apply"),
    ],
)
def test_invalid_hosted_settings_are_refused(admin, config, message):
    body = {"name": f"bad-{uuid.uuid4().hex[:6]}", "format": "maven", "type": "hosted", **config}
    response = admin.post("/api/v1/repositories", json=body)
    assert response.status_code == 400 and message in response.json()["error"]


def test_invalid_proxy_settings_are_refused(admin):
    body = {"name": "badproxy", "format": "maven", "type": "proxy", "url": "http://127.0.0.1:9/"}
    for extra in ({"checksum_policy": "sometimes"}, {"version_policy": "release"}):
        assert admin.post("/api/v1/repositories", json={**body, **extra}).status_code == 400


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "lib-1.0.jar",
        "org/lib/lib-1.0.jar",
        f"{G}/lib/1.0/other-1.0.jar",
        f"{G}/lib/1.0/lib-2.0.jar",
        f"{G}/lib/1.0/lib-1.0",
        f"{G}/lib/1.0/lib-1.0-.jar",
        f"{G}/lib/1.0-SNAPSHOT/lib-1.0-2024-1.jar",
        f"{G}/lib/1.0/lib-1.0.jar.sha1.md5",
        f"{G}/li b/1.0/li b-1.0.jar",
        "archetype-catalog.xml",
    ],
)
def test_paths_outside_the_maven_layout_are_refused(any_server, admin, path):
    repo = new_repo(any_server, version_policy="mixed")
    response = admin.put(f"/repository/{repo}/{path}", content=b"data")
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert stored_paths(admin, repo) == []


def test_dot_dot_in_a_path_is_refused(any_server, admin):
    repo = new_repo(any_server)
    for raw in (f"{G}/%2e%2e/lib/1.0/lib-1.0.jar", f"{G}/lib/1.0/..%2flib-1.0.jar"):
        response = admin.put(httpx.URL(f"{any_server.url}/repository/{repo}/{raw}"), content=b"x")
        assert response.status_code == 400
    assert stored_paths(admin, repo) == []


def test_a_pom_whose_version_disagrees_with_its_path_is_refused(any_server, admin):
    repo = new_repo(any_server)
    path = f"{G}/lib/1.0/lib-1.0.pom"
    response = deploy(admin, repo, path, pom_xml("org.example", "lib", "1.1"), status=400)
    assert "version '1.1' disagrees" in response.json()["error"]
    other = deploy(admin, repo, path, pom_xml("org.other", "lib", "1.0"), status=400)
    assert "groupId" in other.json()["error"]
    assert stored_paths(admin, repo) == []


XXE_POM = b"""<?xml version="1.0"?>
<!DOCTYPE project [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<project><modelVersion>4.0.0</modelVersion><groupId>org.example</groupId>
<artifactId>lib</artifactId><version>1.0</version><name>&secret;</name></project>"""

LAUGHS_POM = (
    b'<?xml version="1.0"?>\n<!DOCTYPE project [<!ENTITY a "lol">'
    + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9))
    + b"]>\n<project><groupId>org.example</groupId><artifactId>lib</artifactId>"
    b"<version>1.0</version><name>&j;</name></project>"
)


@pytest.mark.parametrize("pom", [XXE_POM, LAUGHS_POM], ids=["xxe", "billion-laughs"])
def test_poms_with_entities_are_refused_never_evaluated(any_server, admin, pom):
    repo = new_repo(any_server)
    response = deploy(admin, repo, f"{G}/lib/1.0/lib-1.0.pom", pom, status=400)
    assert "DOCTYPE" in response.json()["error"]
    assert "root:" not in response.text
    assert stored_paths(admin, repo) == []


def test_a_pom_that_is_not_xml_is_refused(any_server, admin):
    repo = new_repo(any_server)
    response = deploy(admin, repo, f"{G}/lib/1.0/lib-1.0.pom", b"{not xml", status=400)
    assert "well-formed" in response.json()["error"]
    assert stored_paths(admin, repo) == []


def test_a_deploy_without_credentials_is_refused_and_stores_nothing(any_server, admin):
    repo = new_repo(any_server)
    url = f"{any_server.repo_url(repo)}{G}/anon/1.0/anon-1.0"
    for suffix, data in ((".jar", jar_bytes()), (".pom", pom_xml("org.example", "anon", "1.0"))):
        response = httpx.put(url + suffix, content=data)
        assert response.status_code == 401 and "www-authenticate" in response.headers
    assert (
        httpx.put(
            f"{any_server.repo_url(repo)}{G}/anon/maven-metadata.xml", content=b"<metadata/>"
        ).status_code
        == 401
    )
    reader, password = any_server.create_user([])
    assert httpx.put(url + ".jar", content=b"x", auth=(reader, password)).status_code == 403
    assert stored_paths(admin, repo) == []


def test_metadata_and_checksums_cannot_be_deleted_only_the_files_they_describe(any_server, admin):
    repo = new_repo(any_server)
    deploy_release(admin, repo, "keep", "1.0")
    assert admin.delete(f"/repository/{repo}/{G}/keep/maven-metadata.xml").status_code == 405
    assert admin.delete(f"/repository/{repo}/{G}/keep/1.0/keep-1.0.jar.sha1").status_code == 405
    assert admin.delete(f"/repository/{repo}/{G}/keep/1.0/missing-1.0.jar").status_code == 404
    assert len(stored_paths(admin, repo)) == 2
