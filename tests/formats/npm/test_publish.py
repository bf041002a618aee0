"""Hosted npm over HTTP: publish documents as npm sends them, packuments, and every bad input."""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
import json
import tarfile

import httpx
import pytest

from tests.formats.npm.helpers import escaped, integrity, publish_document, tarball

ABBREVIATED = "application/vnd.npm.install-v1+json"
INSTALL_ACCEPT = f"{ABBREVIATED}; q=1.0, application/json; q=0.8, */*"


@pytest.fixture(scope="module")
def repo(any_server):
    return any_server.create_repo("npm")


@pytest.fixture
def fresh(any_server):
    """A repository of its own, for tests that check that nothing was stored."""
    return any_server.create_repo("npm")


def publish(client: httpx.Client, repo: str, name: str, version: str, **kwargs) -> httpx.Response:
    return client.put(f"/repository/{repo}/{escaped(name)}", json=publish_document(name, version, **kwargs))


def revision(client: httpx.Client, repo: str) -> int:
    return int(client.get(f"/api/v1/repositories/{repo}").json()["revision"])


def assert_refused(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert fragment.lower() in response.json()["error"].lower()


def assert_nothing_stored(client: httpx.Client, repo: str, before: int, name: str = "") -> None:
    assert revision(client, repo) == before
    if name:
        assert client.get(f"/repository/{repo}/{escaped(name)}").status_code == 404
    assert client.get("/api/v1/search", params={"repository": repo}).json()["items"] == []


# -- publish and read back -------------------------------------------------------------------
def test_publish_serves_full_and_abbreviated_packuments_with_absolute_tarball_urls(any_server, admin, repo):
    data = tarball("left-pad", "1.0.0", {"description": "pads", "scripts": {"install": "node x.js"}})
    response = publish(admin, repo, "left-pad", "1.0.0", data=data, manifest={"description": "pads"})
    assert response.status_code == 201, response.text
    full = httpx.get(any_server.repo_url(repo) + "left-pad")
    assert full.status_code == 200 and full.headers["content-type"].startswith("application/json")
    doc = full.json()
    assert doc["name"] == "left-pad" and doc["dist-tags"] == {"latest": "1.0.0"}
    assert doc["description"] == "pads" and doc["_rev"].startswith("1-")
    dist = doc["versions"]["1.0.0"]["dist"]
    assert dist["tarball"] == any_server.repo_url(repo) + "left-pad/-/left-pad-1.0.0.tgz"
    assert dist["integrity"] == integrity(data) and dist["shasum"] == hashlib.sha1(data).hexdigest()
    assert "1.0.0" in doc["time"]
    short = httpx.get(any_server.repo_url(repo) + "left-pad", headers={"Accept": INSTALL_ACCEPT})
    assert short.headers["content-type"].startswith(ABBREVIATED)
    abbreviated = short.json()
    assert set(abbreviated) == {"name", "modified", "dist-tags", "versions"}
    version = abbreviated["versions"]["1.0.0"]
    assert version["dist"] == dist and "description" not in version
    assert version["hasInstallScript"] is True and version["_hasShrinkwrap"] is False
    got = httpx.get(dist["tarball"])
    assert got.status_code == 200 and got.content == data


def test_scoped_package_answers_at_encoded_slash_in_either_case_and_at_a_literal_slash(
    any_server, admin, repo
):
    assert publish(admin, repo, "@acme/widget", "0.1.0").status_code == 201
    base = any_server.repo_url(repo)
    bodies = [httpx.get(base + path).json() for path in ("@acme%2fwidget", "@acme%2Fwidget", "@acme/widget")]
    assert all(body == bodies[0] for body in bodies)
    tarball_url = bodies[0]["versions"]["0.1.0"]["dist"]["tarball"]
    assert tarball_url == base + "@acme/widget/-/widget-0.1.0.tgz"
    assert httpx.get(tarball_url).status_code == 200
    assert httpx.get(base + "@acme%2fwidget/-/widget-0.1.0.tgz").status_code == 200
    assert httpx.get(base + "@acme%2fwidget/0.1.0").json()["version"] == "0.1.0"
    assert httpx.get(base + "@acme%2fwidget/latest").json()["version"] == "0.1.0"


def test_packument_etag_answers_304_until_the_next_publish(any_server, admin, repo):
    publish(admin, repo, "etagged", "1.0.0")
    url = any_server.repo_url(repo) + "etagged"
    first = httpx.get(url, headers={"Accept": INSTALL_ACCEPT})
    etag = first.headers["etag"]
    assert httpx.get(url, headers={"Accept": INSTALL_ACCEPT, "If-None-Match": etag}).status_code == 304
    full = httpx.get(url)
    assert full.headers["etag"] != etag  # the full and abbreviated forms are different documents
    publish(admin, repo, "etagged", "1.1.0")
    changed = httpx.get(url, headers={"Accept": INSTALL_ACCEPT, "If-None-Match": etag})
    assert changed.status_code == 200 and "1.1.0" in changed.json()["versions"]


def test_large_packuments_are_served_gzipped_when_asked(any_server, admin, repo):
    publish(admin, repo, "zipped", "1.0.0", manifest={"description": "x" * 5000})
    response = httpx.get(any_server.repo_url(repo) + "zipped", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["versions"]["1.0.0"]["description"] == "x" * 5000


def test_republishing_a_version_is_refused_even_when_the_write_policy_allows_updates(any_server, admin, repo):
    assert publish(admin, repo, "immutable", "1.0.0").status_code == 201
    other = tarball("immutable", "1.0.0", files={"extra.js": b"changed"})
    again = publish(admin, repo, "immutable", "1.0.0", data=other)
    assert_refused(again, 403, "previously published")
    served = httpx.get(any_server.repo_url(repo) + "immutable/-/immutable-1.0.0.tgz").content
    assert served == tarball("immutable", "1.0.0")


def test_an_unpublished_version_number_cannot_be_reused(any_server, admin, repo):
    publish(admin, repo, "reuse", "1.0.0")
    publish(admin, repo, "reuse", "1.1.0")
    doc = admin.get(f"/repository/{repo}/reuse?write=true").json()
    del doc["versions"]["1.1.0"]
    assert admin.put(f"/repository/{repo}/reuse/-rev/{doc['_rev']}", json=doc).status_code == 201
    assert_refused(publish(admin, repo, "reuse", "1.1.0"), 403, "cannot be reused")


def test_publish_with_tag_next_never_moves_latest(any_server, admin, repo):
    publish(admin, repo, "tagged", "1.0.0")
    assert publish(admin, repo, "tagged", "2.0.0-rc.1", tags={"next": "2.0.0-rc.1"}).status_code == 201
    tags = httpx.get(any_server.repo_url(repo) + "-/package/tagged/dist-tags").json()
    assert tags == {"latest": "1.0.0", "next": "2.0.0-rc.1"}


def test_first_publish_under_another_tag_also_sets_latest(any_server, admin, repo):
    publish(admin, repo, "beta-first", "0.1.0-beta", tags={"beta": "0.1.0-beta"})
    tags = httpx.get(any_server.repo_url(repo) + "-/package/beta-first/dist-tags").json()
    assert tags == {"beta": "0.1.0-beta", "latest": "0.1.0-beta"}


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("POST", "left-pad", "GET, HEAD, PUT, DELETE"),
        ("PATCH", "-/ping", "GET, HEAD"),
        ("OPTIONS", "-/whoami", "GET, HEAD"),
        ("PUT", "left-pad/-/left-pad-1.0.0.tgz", "GET, HEAD, DELETE"),
        ("DELETE", "left-pad/1.0.0", "GET, HEAD"),
    ],
)
def test_unsupported_methods_are_a_405_in_npm_error_shape_naming_what_is_allowed(
    any_server, admin, repo, method, path, allow
):
    response = admin.request(method, any_server.repo_url(repo) + path)
    assert response.status_code == 405 and "not supported" in response.json()["error"]
    assert response.headers["Allow"] == allow


def test_unknown_package_is_a_404_in_npm_error_shape(any_server, repo):
    response = httpx.get(any_server.repo_url(repo) + "no-such-package")
    assert response.status_code == 404 and "not found" in response.json()["error"]


def test_a_write_policy_of_deny_makes_the_repository_read_only(any_server, admin):
    name = any_server.create_repo("npm", write_policy="deny")
    before = revision(admin, name)
    assert_refused(publish(admin, name, "denied", "1.0.0"), 400, "read-only")
    assert_nothing_stored(admin, name, before, "denied")


# -- bad input: each refused in npm's {"error": ...} shape, nothing stored --------------------
@pytest.mark.parametrize(
    "name, fragment",
    [
        ("Uppercase", "capital letters"),
        ("@acme/Widget", "capital letters"),
        (".hidden", "period"),
        ("_private", "underscore"),
        ("@acme/.dot", "period"),
        ("a" * 215, "214"),
        ("has space", "url-friendly"),
        ("caf\u00e9", "url-friendly"),
        ("quote'd", "special characters"),
        ("node_modules", "blocked"),
        ("http", "core module"),
    ],
)
def test_invalid_package_names_are_refused(any_server, admin, fresh, name, fragment):
    before = revision(admin, fresh)
    response = admin.put(f"/repository/{fresh}/{escaped(name)}", json=publish_document(name, "1.0.0"))
    assert_refused(response, 400, fragment)
    assert_nothing_stored(admin, fresh, before)


def test_a_dot_dot_name_never_reaches_storage(any_server, admin, fresh):
    before = revision(admin, fresh)
    response = admin.put(f"/repository/{fresh}/..", json=publish_document("..", "1.0.0"))
    assert response.status_code in (400, 404) and "error" in response.json()
    assert_nothing_stored(admin, fresh, before)


def test_a_document_whose_name_differs_from_the_url_is_refused(any_server, admin, fresh):
    before = revision(admin, fresh)
    response = admin.put(f"/repository/{fresh}/expected-name", json=publish_document("other-name", "1.0.0"))
    assert_refused(response, 400, "other-name")
    assert_nothing_stored(admin, fresh, before, "expected-name")


def test_an_invalid_version_is_refused(any_server, admin, fresh):
    before = revision(admin, fresh)
    assert_refused(publish(admin, fresh, "badver", "1.0"), 400, "semver")
    assert_nothing_stored(admin, fresh, before, "badver")


@pytest.mark.parametrize("field", ["integrity", "shasum"])
def test_an_attachment_whose_digest_does_not_match_is_refused(any_server, admin, fresh, field):
    before = revision(admin, fresh)
    doc = publish_document("digested", "1.0.0")
    other = b"something else"
    doc["versions"]["1.0.0"]["dist"][field] = (
        integrity(other) if field == "integrity" else hashlib.sha1(other).hexdigest()
    )
    response = admin.put(f"/repository/{fresh}/digested", json=doc)
    assert_refused(response, 400, "mismatch")
    assert_nothing_stored(admin, fresh, before, "digested")


def test_an_attachment_that_is_not_gzip_is_refused(any_server, admin, fresh):
    before = revision(admin, fresh)
    assert_refused(publish(admin, fresh, "notgz", "1.0.0", data=b"plain text, not a tarball"), 400, "gzip")
    assert_nothing_stored(admin, fresh, before, "notgz")


def test_a_gzip_without_package_json_is_refused(any_server, admin, fresh):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("package/index.js")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"1"))
    before = revision(admin, fresh)
    assert_refused(publish(admin, fresh, "nojson", "1.0.0", data=buffer.getvalue()), 400, "package.json")
    assert_nothing_stored(admin, fresh, before, "nojson")


@pytest.mark.parametrize(
    "inside, fragment", [(("someone-else", "1.0.0"), "names"), (("disagree", "9.9.9"), "version")]
)
def test_a_tarball_whose_package_json_disagrees_with_the_document_is_refused(
    any_server, admin, fresh, inside, fragment
):
    before = revision(admin, fresh)
    response = publish(admin, fresh, "disagree", "1.0.0", data=tarball(*inside))
    assert_refused(response, 400, fragment)
    assert_nothing_stored(admin, fresh, before, "disagree")


def test_an_attachment_over_the_size_limit_is_refused_with_413(any_server, admin):
    name = any_server.create_repo("npm", max_upload_bytes=2048)
    big = tarball(
        "biggie",
        "1.0.0",
        files={
            "noise.bin": b"".join(hashlib.sha512(bytes([i, j])).digest() for i in range(4) for j in range(64))
        },
    )
    assert len(big) > 2048
    before = revision(admin, name)
    assert_refused(publish(admin, name, "biggie", "1.0.0", data=big), 413, "limit")
    assert_nothing_stored(admin, name, before, "biggie")
    assert publish(admin, name, "small", "1.0.0").status_code == 201


def test_an_attachment_that_is_not_base64_is_refused(any_server, admin, fresh):
    doc = publish_document("nob64", "1.0.0")
    doc["_attachments"]["nob64-1.0.0.tgz"]["data"] = "not*base64!"
    before = revision(admin, fresh)
    assert_refused(admin.put(f"/repository/{fresh}/nob64", json=doc), 400, "base64")
    assert_nothing_stored(admin, fresh, before, "nob64")


def test_a_document_that_is_not_json_is_refused(any_server, admin, fresh):
    before = revision(admin, fresh)
    assert_refused(admin.put(f"/repository/{fresh}/nojsondoc", content=b"{not json"), 400, "json")
    assert_nothing_stored(admin, fresh, before, "nojsondoc")


def test_publish_without_credentials_is_refused_with_401(any_server, admin, fresh):
    before = revision(admin, fresh)
    response = httpx.put(any_server.repo_url(fresh) + "anon", json=publish_document("anon", "1.0.0"))
    assert_refused(response, 401, "authentication")
    assert_nothing_stored(admin, fresh, before, "anon")


def test_publish_by_a_user_without_write_privilege_is_refused_with_403(any_server, admin, fresh):
    user, password = any_server.create_user([])
    before = revision(admin, fresh)
    response = httpx.put(
        any_server.repo_url(fresh) + "readonly",
        json=publish_document("readonly", "1.0.0"),
        auth=(user, password),
    )
    assert_refused(response, 403, "may not write")
    assert_nothing_stored(admin, fresh, before, "readonly")


def test_a_dist_tag_that_reads_as_a_semver_range_is_refused(any_server, admin, fresh):
    before = revision(admin, fresh)
    assert_refused(publish(admin, fresh, "rangetag", "1.0.0", tags={"1.x": "1.0.0"}), 400, "semver range")
    assert_nothing_stored(admin, fresh, before, "rangetag")


def test_publish_to_a_proxy_is_refused_with_a_clear_message(any_server, admin):
    proxy = any_server.create_repo("npm", "proxy", url="http://127.0.0.1:9/")
    assert_refused(publish(admin, proxy, "to-proxy", "1.0.0"), 405, "proxy")


# -- document updates ------------------------------------------------------------------------
def test_a_stale_rev_is_a_409_conflict(any_server, admin, repo):
    publish(admin, repo, "revved", "1.0.0")
    doc = admin.get(f"/repository/{repo}/revved?write=true").json()
    doc["versions"]["1.0.0"]["deprecated"] = "gone"
    response = admin.put(f"/repository/{repo}/revved/-rev/0-stale", json=doc)
    assert_refused(response, 409, "conflict")
    assert "deprecated" not in httpx.get(any_server.repo_url(repo) + "revved").json()["versions"]["1.0.0"]


def test_a_document_put_cannot_add_versions_without_their_tarball(any_server, admin, repo):
    publish(admin, repo, "sneaky", "1.0.0")
    doc = admin.get(f"/repository/{repo}/sneaky?write=true").json()
    doc["versions"]["6.6.6"] = dict(doc["versions"]["1.0.0"], version="6.6.6")
    doc["dist-tags"]["latest"] = "6.6.6"
    assert admin.put(f"/repository/{repo}/sneaky", json=doc).status_code == 201
    stored = httpx.get(any_server.repo_url(repo) + "sneaky").json()
    assert set(stored["versions"]) == {"1.0.0"} and stored["dist-tags"] == {"latest": "1.0.0"}


def test_removing_versions_needs_the_delete_privilege(any_server, admin, repo):
    admin.post(
        "/api/v1/roles",
        json={"name": "npm-writer", "privileges": [{"repositories": repo, "actions": ["read", "write"]}]},
    )
    user, password = any_server.create_user(["npm-writer"])
    with any_server.client(auth=(user, password)) as writer:
        assert publish(writer, repo, "keepme", "1.0.0").status_code == 201
        assert publish(writer, repo, "keepme", "1.1.0").status_code == 201
        doc = writer.get(f"/repository/{repo}/keepme?write=true").json()
        del doc["versions"]["1.1.0"]
        assert_refused(writer.put(f"/repository/{repo}/keepme/-rev/{doc['_rev']}", json=doc), 403, "delete")
        assert writer.delete(f"/repository/{repo}/keepme/-rev/{doc['_rev']}").status_code == 403
    assert set(httpx.get(any_server.repo_url(repo) + "keepme").json()["versions"]) == {"1.0.0", "1.1.0"}


def test_manifests_stay_immutable_through_document_puts(any_server, admin, repo):
    publish(admin, repo, "frozen", "1.0.0", manifest={"description": "original"})
    doc = admin.get(f"/repository/{repo}/frozen?write=true").json()
    doc["versions"]["1.0.0"]["dependencies"] = {"evil": "*"}
    doc["versions"]["1.0.0"]["dist"]["tarball"] = "http://elsewhere.invalid/x.tgz"
    assert admin.put(f"/repository/{repo}/frozen", json=doc).status_code == 201
    version = httpx.get(any_server.repo_url(repo) + "frozen").json()["versions"]["1.0.0"]
    assert "dependencies" not in version and version["dist"]["tarball"].startswith(any_server.repo_url(repo))


def test_gzip_encoded_request_bodies_are_accepted(any_server, admin, repo):
    body = gzip.compress(json.dumps(publish_document("gzipped-body", "1.0.0")).encode())
    response = admin.put(
        f"/repository/{repo}/gzipped-body",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


def test_base64_of_the_stored_tarball_round_trips(any_server, admin, repo):
    data = tarball("roundtrip", "1.0.0", files={"bin.dat": bytes(range(256))})
    publish(admin, repo, "roundtrip", "1.0.0", data=data)
    served = httpx.get(any_server.repo_url(repo) + "roundtrip/-/roundtrip-1.0.0.tgz")
    assert base64.b64encode(served.content) == base64.b64encode(data)
    assert served.headers["content-type"] == "application/octet-stream"


def test_concurrent_publishes_of_one_version_leave_exactly_one_winner_whose_bytes_are_served(
    any_server, admin, repo
):
    from concurrent.futures import ThreadPoolExecutor

    contents = [tarball("raced", "1.0.0", files={"who.txt": str(i).encode()}) for i in range(6)]

    def attempt(data: bytes) -> int:
        with any_server.client() as client:
            return publish(client, repo, "raced", "1.0.0", data=data).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(attempt, contents))
    assert sorted(statuses) == [201] + [403] * 5
    doc = httpx.get(any_server.repo_url(repo) + "raced").json()
    served = httpx.get(doc["versions"]["1.0.0"]["dist"]["tarball"]).content
    assert served in contents and integrity(served) == doc["versions"]["1.0.0"]["dist"]["integrity"]


# -- limits and hostile input (issue 9, items 11 and 12) -------------------------------------
@functools.cache
def tarball_bomb() -> bytes:
    """A valid package whose tarball (about 70 KB) unpacks to 66 MiB of zeros."""

    class Zeros:
        def read(self, n: int = -1) -> bytes:
            return b"\0" * n

    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w") as archive:
            manifest = json.dumps({"name": "bomb", "version": "1.0.0"}).encode()
            info = tarfile.TarInfo("package/package.json")
            info.size = len(manifest)
            archive.addfile(info, io.BytesIO(manifest))
            info = tarfile.TarInfo("package/zeros.bin")
            info.size = 66 * 1024 * 1024
            archive.addfile(info, Zeros())  # type: ignore[arg-type]
    return buffer.getvalue()


def test_a_document_over_the_repository_document_limit_is_refused_with_413(any_server, admin):
    name = any_server.create_repo("npm", max_document_bytes=1024 * 1024)
    noise = b"".join(hashlib.sha512(i.to_bytes(4, "big")).digest() for i in range(20_000))  # 1.25 MiB
    doc = publish_document("too-big", "1.0.0", data=tarball("too-big", "1.0.0", files={"noise.bin": noise}))
    before = revision(admin, name)
    assert_refused(admin.put(f"/repository/{name}/too-big", json=doc), 413, "larger than 1048576 bytes")
    assert_nothing_stored(admin, name, before, "too-big")
    assert publish(admin, name, "small-enough", "1.0.0").status_code == 201


def test_a_gzip_body_inflating_past_the_document_limit_is_refused_with_413(any_server, admin):
    name = any_server.create_repo("npm", max_document_bytes=1024 * 1024)
    doc = publish_document("inflated", "1.0.0")
    doc["padding"] = "0" * (8 * 1024 * 1024)  # 8 MiB of JSON in a gzip body of about 8 KiB
    body = gzip.compress(json.dumps(doc).encode(), compresslevel=9)
    assert len(body) < 1024 * 1024
    before = revision(admin, name)
    response = admin.put(
        f"/repository/{name}/inflated",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert_refused(response, 413, "larger than")
    assert_nothing_stored(admin, name, before, "inflated")


def test_the_document_limit_is_a_validated_repository_setting(any_server, admin):
    for bad in (-1, 0, True, "64MiB", 2 * 1024**3):
        created = admin.post(
            "/api/v1/repositories",
            json={
                "name": f"npm-limit-{abs(hash(str(bad)))}",
                "format": "npm",
                "type": "hosted",
                "max_document_bytes": bad,
            },
        )
        assert_refused(created, 400, "max_document_bytes")


def test_a_tarball_that_unpacks_past_its_inflation_limit_is_refused_with_413(any_server, admin, fresh):
    data = tarball_bomb()
    before = revision(admin, fresh)
    assert_refused(publish(admin, fresh, "bomb", "1.0.0", data=data), 413, "unpacks to more than")
    assert_nothing_stored(admin, fresh, before, "bomb")


def deeply_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [100_000, 65])
def test_deeply_nested_json_in_a_package_document_is_a_400(any_server, admin, fresh, depth):
    before = revision(admin, fresh)
    response = admin.put(f"/repository/{fresh}/nested", content=deeply_nested(depth))
    assert_refused(response, 400, "nested more than 64 levels")
    doc = publish_document("nested", "1.0.0")
    doc["versions"]["1.0.0"]["deep"] = "DEEP"
    body = json.dumps(doc).encode().replace(b'"DEEP"', deeply_nested(depth))
    response = admin.put(f"/repository/{fresh}/nested", content=body)
    assert_refused(response, 400, "nested more than 64 levels")
    assert_nothing_stored(admin, fresh, before, "nested")


def test_deeply_nested_json_in_a_tarball_package_json_is_a_400(any_server, admin, fresh):
    data = tarball("deep-inside", "1.0.0", {"deep": json.loads(deeply_nested(500))})
    before = revision(admin, fresh)
    assert_refused(publish(admin, fresh, "deep-inside", "1.0.0", data=data), 400, "nested more than")
    assert_nothing_stored(admin, fresh, before, "deep-inside")


def test_a_document_with_millions_of_values_is_refused_with_400(any_server, admin, fresh):
    doc = publish_document("many-values", "1.0.0")
    doc["versions"]["1.0.0"]["values"] = [0] * 1_100_000
    before = revision(admin, fresh)
    response = admin.put(f"/repository/{fresh}/many-values", content=json.dumps(doc).encode())
    assert_refused(response, 400, "more than 1000000 json values")
    assert_nothing_stored(admin, fresh, before, "many-values")


def test_a_deeply_nested_dist_tag_body_is_a_400(any_server, admin, repo):
    publish(admin, repo, "tagged-deep", "1.0.0")
    response = admin.put(
        f"/repository/{repo}/-/package/tagged-deep/dist-tags/next", content=deeply_nested(2000)
    )
    assert response.status_code == 400, response.text
    assert "next" not in httpx.get(any_server.repo_url(repo) + "-/package/tagged-deep/dist-tags").json()
