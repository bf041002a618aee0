"""npm on the engine's index protocol: what the engine now does for npm, proven over HTTP.

Proxied tarballs are verified against what the upstream packument declares even when a client asks
for the tarball first and through a group; a malformed upstream packument never replaces the cached
one; a packument is rebuilt only when its own package changes; unpublished versions are tombstoned."""

from __future__ import annotations

import hashlib
import json
import time

import httpx

from tests.formats.npm.helpers import TinyRegistry, escaped, integrity, publish_document, tarball


def publish(client: httpx.Client, repo: str, name: str, version: str) -> httpx.Response:
    return client.put(f"/repository/{repo}/{escaped(name)}", json=publish_document(name, version))


def serve_packument(tiny: TinyRegistry, name: str, data: bytes, path: str) -> None:
    dist = {
        "tarball": tiny.url + path[1:],
        "integrity": integrity(data),
        "shasum": hashlib.sha1(data).hexdigest(),
    }
    manifest = {"name": name, "version": "1.0.0", "dist": dist}
    tiny.serve("/" + name, {"name": name, "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": manifest}})


def test_a_tarball_asked_for_first_through_a_group_is_checked_against_the_upstream_packument(
    any_server, admin, tiny
):
    """No packument read before: the engine fetches the one that declares the tarball, and a tarball
    whose bytes differ is a 502 in npm's error shape, never cached; the next request asks again."""
    good = tarball("first-ask", "1.0.0")
    bad = tarball("first-ask", "1.0.0", files={"index.js": b"stealSecrets();\n"})
    path = "/first-ask/-/first-ask-1.0.0.tgz"
    serve_packument(tiny, "first-ask", good, path)
    tiny.serve(path, bad, "application/octet-stream")
    proxy = any_server.create_repo("npm", "proxy", url=tiny.url)
    group = any_server.create_repo("npm", "group", members=[any_server.create_repo("npm"), proxy])
    url = any_server.repo_url(group) + path[1:]
    for attempt in (1, 2):
        try:
            response = httpx.get(url)
        except httpx.TransportError:  # headers already sent: the transfer is cut short
            pass
        else:
            assert response.status_code == 502, response.status_code
            assert set(response.json()) == {"error"}
        assert tiny.count(path) == attempt
    assert tiny.count("/first-ask") == 1  # the packument was fetched once, for its declared digests
    stored = admin.get("/api/v1/search", params={"repository": proxy, "sha1": hashlib.sha1(bad).hexdigest()})
    assert stored.status_code == 200 and stored.json()["items"] == []
    tiny.serve(path, good, "application/octet-stream")
    served = httpx.get(url)
    assert served.status_code == 200 and served.content == good
    assert httpx.get(url).content == good and tiny.count(path) == 3  # cached now


def test_a_malformed_upstream_packument_never_replaces_the_cached_one(any_server, tiny):
    data = tarball("steady", "1.0.0")
    serve_packument(tiny, "steady", data, "/steady/-/steady-1.0.0.tgz")
    proxy = any_server.create_repo("npm", "proxy", url=tiny.url, metadata_ttl_seconds=0)
    url = any_server.repo_url(proxy) + "steady"
    assert set(httpx.get(url).json()["versions"]) == {"1.0.0"}
    tiny.serve("/steady", b"<html>maintenance</html>", "text/html")
    # A request that arrives while the first fetch's row is still being recorded (just after its
    # answer) shares that fetch; the next one revalidates. Every answer is the cached packument.
    deadline = time.monotonic() + 10
    while True:
        again = httpx.get(url)
        assert again.status_code == 200 and set(again.json()["versions"]) == {"1.0.0"}
        if tiny.count("/steady") >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert tiny.count("/steady") == 2  # revalidated, and the answer refused
    assert again.json()["versions"]["1.0.0"]["dist"]["tarball"] == any_server.repo_url(proxy) + (
        "steady/-/steady-1.0.0.tgz"
    )


def test_a_packument_changes_only_when_its_own_package_does(any_server, admin):
    repo = any_server.create_repo("npm")
    publish(admin, repo, "still", "1.0.0")
    url = any_server.repo_url(repo) + "still"
    first = httpx.get(url)
    publish(admin, repo, "other", "1.0.0")
    unchanged = httpx.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert unchanged.status_code == 304
    publish(admin, repo, "still", "1.1.0")
    changed = httpx.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and set(changed.json()["versions"]) == {"1.0.0", "1.1.0"}


def test_a_repository_created_again_under_its_name_never_serves_its_predecessor_s_documents(
    any_server, admin
):
    repo = any_server.create_repo("npm")
    publish(admin, repo, "reborn", "1.0.0")
    url = any_server.repo_url(repo) + "reborn"
    old = httpx.get(url)
    assert set(old.json()["versions"]) == {"1.0.0"}
    assert admin.delete(f"/api/v1/repositories/{repo}").status_code == 204
    assert (
        admin.post("/api/v1/repositories", json={"name": repo, "format": "npm", "type": "hosted"}).status_code
        == 201
    )
    time.sleep(1.2)  # past the repository snapshot's lifetime: only the revision tells the two apart
    publish(admin, repo, "reborn", "3.0.0")  # as many changes as its predecessor had
    new = httpx.get(url)
    assert set(new.json()["versions"]) == {"3.0.0"}, new.json()["versions"]
    assert httpx.get(url, headers={"If-None-Match": old.headers["etag"]}).status_code == 200


def test_versions_of_a_wholly_unpublished_package_are_never_published_again(any_server, admin):
    repo = any_server.create_repo("npm")
    assert publish(admin, repo, "@corp/gone", "1.0.0").status_code == 201
    doc = admin.get(f"/repository/{repo}/{escaped('@corp/gone')}?write=true").json()
    deleted = admin.delete(f"/repository/{repo}/{escaped('@corp/gone')}/-rev/{doc['_rev']}")
    assert deleted.status_code == 200
    assert httpx.get(any_server.repo_url(repo) + escaped("@corp/gone")).status_code == 404
    again = publish(admin, repo, "@corp/gone", "1.0.0")
    assert again.status_code == 403 and "cannot be reused" in again.json()["error"]
    assert publish(admin, repo, "@corp/gone", "1.0.1").status_code == 201
    served = httpx.get(any_server.repo_url(repo) + escaped("@corp/gone")).json()
    assert set(served["versions"]) == {"1.0.1"} and json.dumps(served).count("1.0.0") == 0


def test_version_manifests_and_dist_tags_come_from_the_merged_packument_of_a_proxy_and_a_group(
    any_server, admin, tiny
):
    data = tarball("layered", "1.0.0")
    serve_packument(tiny, "layered", data, "/layered/-/layered-1.0.0.tgz")
    tiny.serve("/layered/-/layered-1.0.0.tgz", data, "application/octet-stream")
    proxy = any_server.create_repo("npm", "proxy", url=tiny.url)
    hosted = any_server.create_repo("npm")
    group = any_server.create_repo("npm", "group", members=[hosted, proxy], allow_proxy_shadowing=True)
    publish(admin, hosted, "layered", "2.0.0")
    for repo, versions in ((proxy, {"1.0.0"}), (group, {"1.0.0", "2.0.0"})):
        base = any_server.repo_url(repo)
        assert set(httpx.get(base + "layered").json()["versions"]) == versions
        latest = max(versions)
        assert httpx.get(base + "-/package/layered/dist-tags").json() == {"latest": latest}
        manifest = httpx.get(base + "layered/latest").json()
        assert manifest["version"] == latest
        assert manifest["dist"]["tarball"] == base + f"layered/-/layered-{latest}.tgz"
        assert httpx.get(manifest["dist"]["tarball"]).status_code == 200
    assert httpx.get(any_server.repo_url(group) + "layered/1.0.0").json()["dist"]["integrity"] == integrity(
        data
    )
