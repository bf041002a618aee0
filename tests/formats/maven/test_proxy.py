"""Maven proxy repositories, on SQLite and PostgreSQL, against an upstream served over loopback."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from artifactory.testing.server import LiveServer
from artifactory.testing.stored import stored
from tests.formats.maven.support import StaticServer, jar_bytes

GOOD = "org/up/good/1.0/good-1.0.jar"
BAD = "org/up/bad/1.0/bad-1.0.jar"
NOSUM = "org/up/nosum/1.0/nosum-1.0.jar"
META = "org/up/meta/maven-metadata.xml"
SNAP = "org/up/snap/1.0-SNAPSHOT/snap-1.0-SNAPSHOT.jar"


def metadata_xml(*versions: str) -> bytes:
    listed = "".join(f"<version>{v}</version>" for v in versions)
    return (
        f"<metadata><groupId>org.up</groupId><artifactId>meta</artifactId><versioning>"
        f"<latest>{versions[-1]}</latest><release>{versions[-1]}</release><versions>{listed}</versions>"
        f"<lastUpdated>20240101000000</lastUpdated></versioning></metadata>"
    ).encode()


def write(root: Path, path: str, data: bytes, future: int = 0) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    if future:  # the static server answers 304 unless the mtime moved past If-Modified-Since
        moment = time.time() + future
        os.utime(target, (moment, moment))


@pytest.fixture(scope="module")
def upstream_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("upstream")
    for path in (GOOD, BAD, NOSUM, SNAP):
        write(root, path, jar_bytes({"name": path.encode()}))
    write(root, GOOD + ".sha1", hashlib.sha1((root / GOOD).read_bytes()).hexdigest().encode())
    write(root, BAD + ".sha1", b"0123456789012345678901234567890123456789  bad-1.0.jar\n")
    write(root, META, metadata_xml("1.0"))
    write(root, "org/up/good/maven-metadata.xml", metadata_xml("1.0"))
    return root


@pytest.fixture(scope="module")
def upstream(upstream_root: Path) -> Iterator[StaticServer]:
    with StaticServer(upstream_root) as static:
        yield static


@pytest.fixture(scope="module")
def admin(any_server: LiveServer):
    with any_server.client() as client:
        yield client


def proxy(any_server: LiveServer, url: str, **config: Any) -> str:
    return any_server.create_repo("maven", "proxy", name=f"mvnp-{uuid.uuid4().hex[:8]}", url=url, **config)


def test_a_file_whose_upstream_sha1_matches_is_served_and_cached(any_server, upstream, upstream_root, admin):
    repo = proxy(any_server, upstream.url)
    response = admin.get(f"/repository/{repo}/{GOOD}")
    assert response.status_code == 200 and response.content == (upstream_root / GOOD).read_bytes()
    assert 'href="./good-1.0.jar"' in admin.get(f"/repository/{repo}/org/up/good/1.0/").text


def test_a_file_whose_upstream_sha1_mismatches_is_refused_and_not_cached_under_strict(
    any_server, upstream, admin
):
    repo = proxy(any_server, upstream.url)
    assert admin.get(f"/api/v1/repositories/{repo}").json()["checksum_policy"] == "strict"
    response = admin.get(f"/repository/{repo}/{BAD}")
    assert response.status_code == 502
    assert "does not match the upstream's SHA-1" in response.json()["error"]
    assert admin.get(f"/repository/{repo}/org/up/bad/1.0/").status_code == 404
    assert admin.get(f"/repository/{repo}/{BAD}").status_code == 502


def test_a_mismatch_is_served_under_warn_and_not_checked_under_off(
    any_server, upstream, upstream_root, admin
):
    for policy in ("warn", "off"):
        repo = proxy(any_server, upstream.url, checksum_policy=policy)
        response = admin.get(f"/repository/{repo}/{BAD}")
        assert response.status_code == 200, policy
        assert response.content == (upstream_root / BAD).read_bytes()


def test_a_missing_upstream_checksum_is_not_a_failure(any_server, upstream, admin):
    repo = proxy(any_server, upstream.url)
    assert admin.get(f"/repository/{repo}/{NOSUM}").status_code == 200


def test_checksums_of_proxied_files_come_from_the_cached_blob(any_server, upstream, upstream_root, admin):
    repo = proxy(any_server, upstream.url, checksum_policy="off")
    data = (upstream_root / BAD).read_bytes()
    for algorithm in ("sha1", "sha256", "sha512", "md5"):
        response = admin.get(f"/repository/{repo}/{BAD}.{algorithm}")
        assert response.status_code == 200
        assert response.text == hashlib.new(algorithm, data).hexdigest()


def test_release_files_are_cached_for_good_while_metadata_and_snapshots_follow_the_ttl(
    any_server, tmp_path, admin
):
    root = tmp_path / "changing"
    for path in (GOOD, SNAP):
        write(root, path, b"first " + path.encode())
    write(root, META, metadata_xml("1.0"))
    with StaticServer(root) as changing:
        repo = proxy(any_server, changing.url, metadata_ttl_seconds=0)
        for path in (GOOD, SNAP, META):
            assert admin.get(f"/repository/{repo}/{path}").status_code == 200
        write(root, GOOD, b"second release bytes", future=10)
        write(root, SNAP, b"second snapshot bytes", future=10)
        write(root, META, metadata_xml("1.0", "1.1"), future=10)
        assert admin.get(f"/repository/{repo}/{GOOD}").content == b"first " + GOOD.encode()
        # A request that arrives while the first fetch's row is still being recorded (just after its
        # answer, the commit waiting a moment for others to join it) shares that fetch; a later one
        # revalidates and sees the new bytes and versions.
        deadline = time.monotonic() + 10
        while (snapshot := admin.get(f"/repository/{repo}/{SNAP}").content) != b"second snapshot bytes":
            assert snapshot == b"first " + SNAP.encode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        while True:
            doc = etree.fromstring(admin.get(f"/repository/{repo}/{META}").content)
            versions = [v.text for v in doc.findall("versioning/versions/version")]
            assert versions in (["1.0"], ["1.0", "1.1"])
            if versions == ["1.0", "1.1"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert versions == ["1.0", "1.1"]
        body = admin.get(f"/repository/{repo}/{META}").content
        assert admin.get(f"/repository/{repo}/{META}.sha1").text == hashlib.sha1(body).hexdigest()


def test_missing_paths_are_negative_cached(any_server, tmp_path, admin):
    root = tmp_path / "late"
    root.mkdir()
    with StaticServer(root) as late:
        repo = proxy(any_server, late.url)
        assert admin.get(f"/repository/{repo}/{GOOD}").status_code == 404
        write(root, GOOD, jar_bytes())
        assert admin.get(f"/repository/{repo}/{GOOD}").status_code == 404


def test_cached_files_and_metadata_are_served_while_the_upstream_is_down(any_server, tmp_path, admin):
    root = tmp_path / "down"
    write(root, GOOD, b"cached bytes")
    write(root, META, metadata_xml("1.0"))
    with StaticServer(root) as going:
        repo = proxy(any_server, going.url, metadata_ttl_seconds=0)
        assert admin.get(f"/repository/{repo}/{GOOD}").status_code == 200
        assert admin.get(f"/repository/{repo}/{META}").status_code == 200
    assert admin.get(f"/repository/{repo}/{GOOD}").content == b"cached bytes"
    assert admin.get(f"/repository/{repo}/{META}").status_code == 200
    assert admin.get(f"/repository/{repo}/{GOOD}.sha1").text == hashlib.sha1(b"cached bytes").hexdigest()


def test_a_proxy_refuses_uploads(any_server, upstream, admin):
    repo = proxy(any_server, upstream.url)
    assert admin.put(f"/repository/{repo}/org/x/y/1.0/y-1.0.jar", content=b"x").status_code == 405


def test_a_group_applies_its_proxy_members_checksum_policy(any_server, upstream, admin):
    strict = proxy(any_server, upstream.url)
    group = any_server.create_repo("maven", "group", name=f"mvng-{uuid.uuid4().hex[:8]}", members=[strict])
    assert admin.get(f"/repository/{group}/{BAD}").status_code == 502
    assert admin.get(f"/repository/{group}/{GOOD}").status_code == 200
    # Through a nested group too: the whole file is checked before the client reads any of it.
    outer = any_server.create_repo("maven", "group", name=f"mvng-{uuid.uuid4().hex[:8]}", members=[group])
    assert admin.get(f"/repository/{outer}/{BAD}").status_code == 502
    assert admin.get(f"/repository/{outer}/{GOOD}").status_code == 200


def test_a_proxy_folder_listing_shows_what_is_cached_and_never_asks_the_upstream(any_server, upstream, admin):
    repo = proxy(any_server, upstream.url)
    assert admin.get(f"/repository/{repo}/{GOOD}").status_code == 200
    listing = admin.get(f"/repository/{repo}/org/up/good/").text
    assert 'href="./1.0/"' in listing and "maven-metadata.xml" not in listing
    # The upstream's document is the engine's cache, not a file: reading it lists nothing new.
    assert admin.get(f"/repository/{repo}/org/up/good/maven-metadata.xml").status_code == 200
    assert "maven-metadata.xml" not in admin.get(f"/repository/{repo}/org/up/good/").text
    assert 'href="./org/"' in (root := admin.get(f"/repository/{repo}/").text) and "index" not in root


def stored_blob(any_server: LiveServer, data: bytes) -> bool:
    return stored(any_server, data)


@pytest.mark.parametrize("size", [200, 3 * 1024 * 1024], ids=["small", "large"])
def test_a_mismatch_is_never_served_or_cached_whatever_the_request(
    any_server, upstream, upstream_root, admin, size
):
    repo = proxy(any_server, upstream.url)
    group = any_server.create_repo("maven", "group", name=f"mvng-{uuid.uuid4().hex[:8]}", members=[repo])
    artifact = f"tamper{uuid.uuid4().hex[:8]}"
    path = f"org/up/{artifact}/1.0/{artifact}-1.0.jar"
    data = os.urandom(size)  # a large one is well under way to a client before its last byte arrives
    write(upstream_root, path, data)
    write(upstream_root, path + ".sha1", hashlib.sha1(b"other bytes").hexdigest().encode())
    # A streaming GET, several at once (one fetches, the others follow it), a HEAD, a checksum,
    # and the same through a group: every one is a 502, none carries the upstream's bytes.
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: admin.get(f"/repository/{repo}/{path}"), range(6)))
    answers += [
        admin.head(f"/repository/{repo}/{path}"),
        admin.get(f"/repository/{repo}/{path}.sha256"),
        admin.get(f"/repository/{group}/{path}"),
        admin.get(f"/repository/{repo}/{path}"),
    ]
    for response in answers:
        assert response.status_code == 502, (response.status_code, response.request.method)
        assert data not in response.content
    # The fetcher says why; requests that waited for it say that the fetch failed.
    assert any("does not match the upstream's SHA-1" in r.json()["error"] for r in answers if r.content)
    folder = path.rsplit("/", 1)[0] + "/"
    assert admin.get(f"/repository/{repo}/{folder}").status_code == 404
    assert not stored_blob(any_server, data)


def test_a_snapshot_that_changes_upstream_to_mismatching_bytes_keeps_its_verified_copy(
    any_server, tmp_path, admin
):
    root = tmp_path / "turning"
    first = jar_bytes({"build": b"1"})
    write(root, SNAP, first)
    write(root, SNAP + ".sha1", hashlib.sha1(first).hexdigest().encode())
    with StaticServer(root) as turning:
        repo = proxy(any_server, turning.url, metadata_ttl_seconds=0)
        assert admin.get(f"/repository/{repo}/{SNAP}").content == first
        tampered = jar_bytes({"build": b"tampered"})
        write(root, SNAP, tampered, future=10)  # the published .sha1 still names the first build
        for _ in range(2):
            response = admin.get(f"/repository/{repo}/{SNAP}")
            assert response.status_code == 200 and response.content == first
        assert admin.get(f"/repository/{repo}/{SNAP}.sha1").text == hashlib.sha1(first).hexdigest()
    assert not stored_blob(any_server, tampered)


def test_an_oversized_upstream_metadata_document_is_a_502_not_a_server_error(any_server, tmp_path, admin):
    root = tmp_path / "huge"
    padding = b"<!-- " + b"x" * (17 * 1024 * 1024) + b" -->"
    write(root, META, metadata_xml("1.0").replace(b"</metadata>", padding + b"</metadata>"))
    with StaticServer(root) as huge:
        repo = proxy(any_server, huge.url)
        hosted = any_server.create_repo("maven", name=f"mvnh-{uuid.uuid4().hex[:8]}")
        group = any_server.create_repo(
            "maven", "group", name=f"mvng-{uuid.uuid4().hex[:8]}", members=[repo, hosted]
        )
        for path in (META, META + ".sha1"):
            response = admin.get(f"/repository/{repo}/{path}")
            assert response.status_code == 502, (path, response.status_code)
            assert "larger than" in response.json()["error"]
        # In a group the member is left out and the others answer; while none has the document,
        # the failure is the answer (a 404 would claim the upstream has none).
        assert admin.get(f"/repository/{group}/{META}").status_code == 502
        jar = "org/up/meta/2.0/meta-2.0.jar"
        assert admin.put(f"/repository/{hosted}/{jar}", content=jar_bytes()).status_code == 201
        doc = etree.fromstring(admin.get(f"/repository/{group}/{META}").content)
        assert [v.text for v in doc.findall("versioning/versions/version")] == ["2.0"]


def test_a_file_that_mismatches_the_upstreams_sha1_is_a_502_and_the_next_request_tries_again(
    any_server, tmp_path, admin
):
    root = tmp_path / "retry"
    data = jar_bytes({"retry": b"1"})
    write(root, GOOD, data)
    write(root, GOOD + ".sha1", hashlib.sha1(b"other bytes").hexdigest().encode())
    with StaticServer(root) as upstream:
        repo = proxy(any_server, upstream.url)
        group = any_server.create_repo("maven", "group", name=f"mvng-{uuid.uuid4().hex[:8]}", members=[repo])
        for where in (repo, group):
            response = admin.get(f"/repository/{where}/{GOOD}")
            assert response.status_code == 502
            assert response.headers["content-type"].startswith("application/json")
            assert "does not match the upstream's SHA-1" in response.json()["error"]
        assert admin.get(f"/repository/{repo}/org/up/good/1.0/").status_code == 404
        assert not stored_blob(any_server, data)
        # Nothing was remembered of the failure: once the upstream is consistent, it is served.
        write(root, GOOD + ".sha1", hashlib.sha1(data).hexdigest().encode())
        response = admin.get(f"/repository/{group}/{GOOD}")
        assert response.status_code == 200 and response.content == data
        assert admin.get(f"/repository/{repo}/{GOOD}.sha1").text == hashlib.sha1(data).hexdigest()


def test_upstream_metadata_is_served_with_etag_and_checksums_of_the_very_document(
    any_server, upstream, admin
):
    repo = proxy(any_server, upstream.url)
    response = admin.get(f"/repository/{repo}/{META}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
    doc = etree.fromstring(response.content)
    assert [v.text for v in doc.findall("versioning/versions/version")] == ["1.0"]
    etag = response.headers["etag"]
    assert admin.get(f"/repository/{repo}/{META}", headers={"If-None-Match": etag}).status_code == 304
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        checksum = admin.get(f"/repository/{repo}/{META}.{algorithm}")
        assert checksum.status_code == 200 and checksum.headers["content-type"].startswith("text/plain")
        assert checksum.text == hashlib.new(algorithm, response.content).hexdigest()
    # A client's Accept never turns the document into a checksum.
    for accept in ("application/*", "text/*", "text/plain", "*/*"):
        other = admin.get(f"/repository/{repo}/{META}", headers={"Accept": accept})
        assert other.content == response.content, accept
    assert admin.get(f"/repository/{repo}/org/up/none/maven-metadata.xml").status_code == 404
    assert admin.get(f"/repository/{repo}/org/up/none/maven-metadata.xml.sha1").status_code == 404


@pytest.mark.parametrize(
    "bad",
    [
        b"<metadata><versioning><versions><version>1.",
        b'<!DOCTYPE m [<!ENTITY e SYSTEM "file:///etc/passwd">]><metadata><version>&e;</version></metadata>',
    ],
    ids=["truncated", "entity"],
)
def test_a_malformed_upstream_document_never_replaces_the_cached_one(any_server, tmp_path, admin, bad):
    root = tmp_path / "malformed"
    write(root, META, metadata_xml("1.0"))
    with StaticServer(root) as upstream:
        repo = proxy(any_server, upstream.url, metadata_ttl_seconds=0)
        first = admin.get(f"/repository/{repo}/{META}")
        assert first.status_code == 200
        write(root, META, bad, future=10)
        again = admin.get(f"/repository/{repo}/{META}")
        assert again.status_code == 200 and again.content == first.content
        assert b"passwd" not in again.content
        fresh = proxy(any_server, upstream.url)
        refused = admin.get(f"/repository/{fresh}/{META}")
        assert refused.status_code == 502 and "error" in refused.json()


def test_the_upstream_sha1_is_asked_for_while_the_file_itself_still_arrives(any_server, admin):
    """The .sha1 a proxied jar is checked against is fetched beside the jar, not after it (a cold
    build waits for one round trip per file, not two)."""
    from tests.artifactory.repository.upstream import running

    path = "org/up/slow/1.0/slow-1.0.jar"
    data = os.urandom(5 * 64 * 1024)
    with running() as up:
        up.put(path, data)
        up.put(path + ".sha1", hashlib.sha1(data).hexdigest().encode())  # noqa: S324 - Maven's own
        up.trickle[path] = 0.6  # five chunks: the jar takes about 3 s to arrive
        repo = proxy(any_server, up.url)
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(admin.get, f"/repository/{repo}/{path}")
            deadline = time.monotonic() + 10
            while up.count(path) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            asked = time.monotonic()
            while up.count(path + ".sha1") == 0 and time.monotonic() - asked < 1.5:
                time.sleep(0.01)
            assert up.count(path + ".sha1") == 1
            response = answer.result(30)
    assert response.status_code == 200 and response.content == data
    assert up.count(path + ".sha1") == 1  # read once, for the check
