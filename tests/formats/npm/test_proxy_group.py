"""npm proxy and group repositories: an upstream the test starts itself (a second server, or a
scripted registry on loopback), packuments through the proxy, merges, routing of writes, audit."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from artifactory.testing.server import LiveServer
from tests.formats.npm.helpers import Npm, escaped, integrity, publish_document, tarball

INSTALL_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("upstream") / "data").start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def upstream_repo(upstream) -> str:
    name = upstream.create_repo("npm", name="public")
    with upstream.client() as admin:
        for package, version, manifest in [
            ("up-lib", "1.0.0", {"description": "a library from upstream"}),
            ("up-lib", "1.1.0", {"description": "a library from upstream"}),
            ("@up/app", "3.0.0", {"dependencies": {"up-lib": "^1.0.0"}}),
        ]:
            data = tarball(package, version, manifest)
            doc = publish_document(package, version, data=data, manifest=manifest)
            assert admin.put(f"/repository/{name}/{escaped(package)}", json=doc).status_code == 201
    return name


@pytest.fixture(scope="module")
def proxy(any_server, upstream, upstream_repo) -> str:
    return any_server.create_repo("npm", "proxy", url=upstream.repo_url(upstream_repo))


@pytest.fixture(scope="module")
def cli_proxy(server, upstream, upstream_repo) -> str:
    """The proxy the real-npm tests use: those run on SQLite only (they are slow)."""
    return server.create_repo("npm", "proxy", url=upstream.repo_url(upstream_repo))


def put(client: httpx.Client, repo: str, name: str, version: str, **kwargs) -> httpx.Response:
    return client.put(f"/repository/{repo}/{escaped(name)}", json=publish_document(name, version, **kwargs))


# -- proxy -----------------------------------------------------------------------------------
def test_proxy_serves_packuments_with_tarball_urls_through_itself(any_server, proxy):
    base = any_server.repo_url(proxy)
    doc = httpx.get(base + "up-lib").json()
    assert set(doc["versions"]) == {"1.0.0", "1.1.0"} and doc["dist-tags"]["latest"] == "1.1.0"
    for version in ("1.0.0", "1.1.0"):
        dist = doc["versions"][version]["dist"]
        assert dist["tarball"] == base + f"up-lib/-/up-lib-{version}.tgz"
        got = httpx.get(dist["tarball"])
        assert got.status_code == 200 and integrity(got.content) == dist["integrity"]
    scoped = httpx.get(base + "@up%2fapp", headers={"Accept": INSTALL_ACCEPT})
    assert scoped.headers["content-type"].startswith("application/vnd.npm.install-v1+json")
    assert scoped.json()["versions"]["3.0.0"]["dist"]["tarball"] == base + "@up/app/-/app-3.0.0.tgz"


def test_npm_install_through_a_proxy_with_a_clean_cache(server, cli_proxy, tmp_path):
    proxy = cli_proxy
    consumer = Npm(tmp_path / "npm", server.repo_url(proxy))
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(
        json.dumps({"name": "consumer", "version": "1.0.0", "private": True})
    )
    consumer.run("install", "@up/app", cwd=project)
    lock = json.loads((project / "package-lock.json").read_text())["packages"]
    assert lock["node_modules/up-lib"]["version"] == "1.1.0"
    assert lock["node_modules/up-lib"]["resolved"].startswith(server.repo_url(proxy))
    assert (project / "node_modules" / "@up" / "app" / "package.json").exists()


def test_proxy_fetches_each_tarball_from_the_upstream_url_its_packument_named(any_server, tiny):
    """Tarballs may live on another host or path than the packument: the proxy remembers where."""
    data = tarball("cdn-hosted", "1.0.0")
    doc = {
        "name": "cdn-hosted",
        "dist-tags": {"latest": "1.0.0"},
        "versions": {
            "1.0.0": {
                "name": "cdn-hosted",
                "version": "1.0.0",
                "dist": {
                    "tarball": tiny.url + "files/by-hash/abc123.tgz",
                    "integrity": integrity(data),
                    "shasum": hashlib.sha1(data).hexdigest(),
                },
            }
        },
    }
    tiny.serve("/cdn-hosted", doc)
    tiny.serve("/files/by-hash/abc123.tgz", data, "application/octet-stream")
    name = any_server.create_repo("npm", "proxy", url=tiny.url)
    served = httpx.get(any_server.repo_url(name) + "cdn-hosted").json()
    tarball_url = served["versions"]["1.0.0"]["dist"]["tarball"]
    assert tarball_url == any_server.repo_url(name) + "cdn-hosted/-/abc123.tgz"
    assert httpx.get(tarball_url).content == data
    assert tiny.count("/files/by-hash/abc123.tgz") == 1
    assert httpx.get(tarball_url).content == data  # served from the cache now
    assert tiny.count("/files/by-hash/abc123.tgz") == 1


def test_proxy_answers_both_forms_from_one_cached_document_and_keeps_serving_when_upstream_is_down(
    any_server, admin, tiny
):
    data = tarball("sturdy", "1.0.0")
    doc = json.loads(json.dumps(publish_document("sturdy", "1.0.0", data=data)))
    del doc["_attachments"]
    doc["versions"]["1.0.0"]["dist"]["tarball"] = tiny.url + "sturdy/-/sturdy-1.0.0.tgz"
    tiny.serve("/sturdy", doc)
    tiny.serve("/sturdy/-/sturdy-1.0.0.tgz", data, "application/octet-stream")
    name = any_server.create_repo("npm", "proxy", url=tiny.url, metadata_ttl_seconds=0)
    base = any_server.repo_url(name)
    short = httpx.get(base + "sturdy", headers={"Accept": INSTALL_ACCEPT}).json()
    assert set(short) == {"name", "modified", "dist-tags", "versions"}
    assert httpx.get(base + "sturdy").json()["versions"]["1.0.0"]["name"] == "sturdy"
    assert httpx.get(base + "sturdy/-/sturdy-1.0.0.tgz").content == data
    tiny.down = True
    again = httpx.get(base + "sturdy", headers={"Accept": INSTALL_ACCEPT})
    assert again.status_code == 200 and again.json()["versions"]["1.0.0"]["dist"]["tarball"].startswith(base)
    assert httpx.get(base + "sturdy/-/sturdy-1.0.0.tgz").content == data


@pytest.mark.parametrize("declared", ["integrity", "shasum"])
def test_a_proxied_tarball_that_does_not_match_its_packument_is_never_served_or_cached(
    any_server, admin, tiny, declared
):
    """Issue 10, item 5: the packument's dist.integrity (or, without it, dist.shasum) is checked while
    the tarball streams; a mismatch reaches the client as an error, and the next request tries again."""
    good = tarball("tampered", "1.0.0")
    bad = tarball("tampered", "1.0.0", files={"index.js": b"stealSecrets();\n"})
    dist = {"integrity": integrity(good), "shasum": hashlib.sha1(good).hexdigest()}
    del dist["shasum" if declared == "integrity" else "integrity"]
    path = "/tampered/-/tampered-1.0.0.tgz"
    manifest = {"name": "tampered", "version": "1.0.0", "dist": {**dist, "tarball": tiny.url + path[1:]}}
    tiny.serve(
        "/tampered", {"name": "tampered", "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": manifest}}
    )
    tiny.serve(path, bad, "application/octet-stream")
    name = any_server.create_repo("npm", "proxy", url=tiny.url)
    url = any_server.repo_url(name) + path[1:]
    assert httpx.get(any_server.repo_url(name) + "tampered").status_code == 200
    for attempt in (1, 2):
        try:
            response = httpx.get(url)
        except httpx.TransportError:  # headers already sent: the transfer is aborted
            pass
        else:
            assert response.status_code == 502, response.status_code
            assert "error" in response.json()
        assert tiny.count(path) == attempt  # nothing was cached: each request asks the upstream
    stored = admin.get("/api/v1/search", params={"repository": name, "sha1": hashlib.sha1(bad).hexdigest()})
    assert stored.status_code == 200 and stored.json()["items"] == []
    tiny.serve(path, good, "application/octet-stream")
    served = httpx.get(url)
    assert served.status_code == 200 and served.content == good
    assert tiny.count(path) == 3


def test_a_package_missing_upstream_is_a_404(any_server, proxy):
    response = httpx.get(any_server.repo_url(proxy) + "nothing-like-this")
    assert response.status_code == 404 and "error" in response.json()


def test_search_through_a_proxy_asks_the_upstream(any_server, proxy):
    found = httpx.get(any_server.repo_url(proxy) + "-/v1/search", params={"text": "up-lib"}).json()
    assert [o["package"]["name"] for o in found["objects"]][:1] == ["up-lib"]


# -- group -----------------------------------------------------------------------------------
def test_group_merges_versions_and_tags_across_members(any_server, admin):
    first, second = any_server.create_repo("npm"), any_server.create_repo("npm")
    first_bytes = tarball("merged", "1.0.0", files={"from.txt": b"first"})
    put(admin, first, "merged", "1.0.0", data=first_bytes)
    put(admin, first, "merged", "1.5.0-beta.1", tags={"beta": "1.5.0-beta.1"})
    put(admin, second, "merged", "1.0.0", data=tarball("merged", "1.0.0", files={"from.txt": b"second"}))
    put(admin, second, "merged", "2.0.0")
    put(admin, second, "merged", "2.1.0-beta.1", tags={"beta": "2.1.0-beta.1"})
    put(admin, second, "merged", "2.1.0-rc.1", tags={"rc": "2.1.0-rc.1"})
    group = any_server.create_repo("npm", "group", members=[first, second])
    base = any_server.repo_url(group)
    doc = httpx.get(base + "merged").json()
    assert set(doc["versions"]) == {"1.0.0", "1.5.0-beta.1", "2.0.0", "2.1.0-beta.1", "2.1.0-rc.1"}
    # latest: the highest of the members' latest; other tags from the first member that has them.
    assert doc["dist-tags"] == {"latest": "2.0.0", "beta": "1.5.0-beta.1", "rc": "2.1.0-rc.1"}
    # A version both members hold comes from the first member, its tarball too.
    one = doc["versions"]["1.0.0"]["dist"]
    assert one["integrity"] == integrity(first_bytes) and one["tarball"] == base + "merged/-/merged-1.0.0.tgz"
    assert httpx.get(one["tarball"]).content == first_bytes
    short = httpx.get(base + "merged", headers={"Accept": INSTALL_ACCEPT}).json()
    assert short["dist-tags"] == doc["dist-tags"] and set(short["versions"]) == set(doc["versions"])
    assert httpx.get(base + "-/package/merged/dist-tags").json() == doc["dist-tags"]


def test_group_packument_follows_a_member_publish(any_server, admin):
    member = any_server.create_repo("npm")
    put(admin, member, "moving", "1.0.0")
    group = any_server.create_repo("npm", "group", members=[member])
    url = any_server.repo_url(group) + "moving"
    first = httpx.get(url, headers={"Accept": INSTALL_ACCEPT})
    put(admin, member, "moving", "1.1.0")
    second = httpx.get(url, headers={"Accept": INSTALL_ACCEPT, "If-None-Match": first.headers["etag"]})
    assert second.status_code == 200 and second.json()["dist-tags"]["latest"] == "1.1.0"


def test_group_never_mixes_proxied_versions_into_a_package_a_hosted_member_holds(any_server, admin, proxy):
    hosted = any_server.create_repo("npm")
    put(admin, hosted, "up-lib", "0.0.1")  # a private package whose name also exists upstream
    group = any_server.create_repo("npm", "group", members=[hosted, proxy])
    doc = httpx.get(any_server.repo_url(group) + "up-lib").json()
    assert set(doc["versions"]) == {"0.0.1"} and doc["dist-tags"] == {"latest": "0.0.1"}
    assert httpx.get(any_server.repo_url(group) + "up-lib/-/up-lib-1.1.0.tgz").status_code == 404
    # Packages only the proxy has still come through.
    assert "3.0.0" in httpx.get(any_server.repo_url(group) + "@up%2fapp").json()["versions"]


def test_npm_installs_through_a_group_of_hosted_and_proxy(server, cli_proxy, tmp_path):
    hosted, proxy = server.create_repo("npm"), cli_proxy
    manifest = {"dependencies": {"@up/app": "^3.0.0"}}
    with server.client() as admin:
        data = tarball("@corp/internal", "1.0.0", manifest)
        put(admin, hosted, "@corp/internal", "1.0.0", data=data, manifest=manifest)
    group = server.create_repo("npm", "group", members=[hosted, proxy])
    consumer = Npm(tmp_path / "npm", server.repo_url(group))
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(
        json.dumps({"name": "consumer", "version": "1.0.0", "private": True})
    )
    consumer.run("install", "@corp/internal", cwd=project)
    lock = json.loads((project / "package-lock.json").read_text())["packages"]
    assert set(lock) >= {"node_modules/@corp/internal", "node_modules/@up/app", "node_modules/up-lib"}
    assert all(entry["resolved"].startswith(server.repo_url(group)) for key, entry in lock.items() if key)


def test_publish_through_a_group_goes_to_its_write_member(any_server, admin):
    member, other = any_server.create_repo("npm"), any_server.create_repo("npm")
    group = any_server.create_repo("npm", "group", members=[other, member], write_member=member)
    assert put(admin, group, "via-group", "1.0.0").status_code == 201
    assert httpx.get(any_server.repo_url(member) + "via-group").status_code == 200
    assert httpx.get(any_server.repo_url(other) + "via-group").status_code == 404
    tarball_url = httpx.get(any_server.repo_url(group) + "via-group").json()["versions"]["1.0.0"]["dist"][
        "tarball"
    ]
    assert tarball_url.startswith(any_server.repo_url(group)) and httpx.get(tarball_url).status_code == 200
    tag = admin.put(f"/repository/{group}/-/package/via-group/dist-tags/stable", json="1.0.0")
    assert tag.status_code == 201
    assert (
        httpx.get(any_server.repo_url(member) + "-/package/via-group/dist-tags").json()["stable"] == "1.0.0"
    )


def test_publish_through_a_group_without_a_write_member_is_refused_with_a_clear_message(any_server, admin):
    member = any_server.create_repo("npm")
    group = any_server.create_repo("npm", "group", members=[member])
    response = put(admin, group, "nowhere", "1.0.0")
    assert response.status_code == 405
    assert "group" in response.json()["error"] and "hosted members" in response.json()["error"]
    assert httpx.get(any_server.repo_url(member) + "nowhere").status_code == 404


def test_search_through_a_group_combines_hosted_and_proxied_results(any_server, admin, proxy):
    hosted = any_server.create_repo("npm")
    put(admin, hosted, "up-lib-extras", "1.0.0")
    group = any_server.create_repo("npm", "group", members=[hosted, proxy])
    found = httpx.get(any_server.repo_url(group) + "-/v1/search", params={"text": "up-lib"}).json()
    names = [o["package"]["name"] for o in found["objects"]]
    assert "up-lib-extras" in names and "up-lib" in names


# -- audit -----------------------------------------------------------------------------------
AUDIT_PATHS = ["-/npm/v1/security/advisories/bulk", "-/npm/v1/security/audits/quick"]


@pytest.mark.parametrize("path", AUDIT_PATHS)
def test_audit_through_a_group_holding_a_proxy_is_answered_by_the_upstream(any_server, admin, tiny, path):
    report = {"up-lib": [{"id": 1, "severity": "high", "title": "demo", "vulnerable_versions": "<2"}]}
    tiny.serve("/" + path, report)
    proxy = any_server.create_repo("npm", "proxy", url=tiny.url)
    group = any_server.create_repo("npm", "group", members=[any_server.create_repo("npm"), proxy])
    response = admin.post(f"/repository/{group}/{path}", json={"up-lib": ["1.0.0"]})
    assert response.status_code == 200 and response.json() == report
    assert tiny.count("/" + path, "POST") == 1 and json.loads(tiny.bodies[-1]) == {"up-lib": ["1.0.0"]}


@pytest.mark.parametrize("path", AUDIT_PATHS)
def test_audit_without_a_proxy_answers_an_empty_report_and_a_failing_upstream_a_502(
    any_server, admin, tiny, path
):
    hosted = any_server.create_repo("npm")
    response = httpx.post(any_server.repo_url(hosted) + path, json={"left-pad": ["1.0.0"]})
    assert response.status_code == 200
    body = response.json()
    assert body == {} if path.endswith("bulk") else body["advisories"] == {}
    tiny.down = True
    failing = any_server.create_repo("npm", "proxy", url=tiny.url)
    response = admin.post(f"/repository/{failing}/{path}", json={"left-pad": ["1.0.0"]})
    assert response.status_code == 502 and "answered 503" in response.json()["error"]


def test_npm_audit_through_a_proxy_reports_the_upstream_advisories(server, cli_proxy, tiny, tmp_path):
    proxy = cli_proxy
    with server.client() as admin:
        token = admin.post("/api/v1/tokens", json={"name": "audit"}).json()["token"]
    consumer = Npm(tmp_path / "npm", server.repo_url(proxy))
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(
        json.dumps({"name": "consumer", "version": "1.0.0", "private": True})
    )
    consumer.run("install", "up-lib@1.0.0", "--no-audit", cwd=project)
    advisory = {
        "id": 4242,
        "url": "http://advisories.invalid/4242",
        "title": "demo advisory",
        "severity": "high",
        "vulnerable_versions": "<1.1.0",
        "cwe": [],
        "cvss": {"score": 7, "vectorString": None},
    }
    tiny.serve("/-/npm/v1/security/advisories/bulk", {"up-lib": [advisory]})
    audited = server.create_repo("npm", "proxy", url=tiny.url)
    group = server.create_repo("npm", "group", members=[audited, proxy])
    auditor = Npm(tmp_path / "auditor", server.repo_url(group), token)  # audits need a logged-in user
    result = subprocess.run(
        ["npm", "audit", "--json", "--registry", server.repo_url(group)],
        cwd=project,
        env=auditor.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert report["metadata"]["vulnerabilities"]["high"] == 1
    assert "up-lib" in report["vulnerabilities"]


def test_npm_deprecate_and_unpublish_through_a_group_change_its_write_member(server, tmp_path):
    other, member = server.create_repo("npm"), server.create_repo("npm")
    group = server.create_repo("npm", "group", members=[other, member], write_member=member)
    with server.client() as admin:
        put(admin, other, "shared-pkg", "0.9.0")
        for version in ("1.0.0", "1.1.0"):
            put(admin, member, "shared-pkg", version)
        token = admin.post("/api/v1/tokens", json={}).json()["token"]
    npm = Npm(tmp_path, server.repo_url(group), token)
    npm.run("deprecate", "shared-pkg@1.0.0", "superseded")
    npm.run("unpublish", "shared-pkg@1.1.0")
    stored = httpx.get(server.repo_url(member) + "shared-pkg").json()
    assert set(stored["versions"]) == {"1.0.0"} and stored["versions"]["1.0.0"]["deprecated"] == "superseded"
    merged = httpx.get(server.repo_url(group) + "shared-pkg").json()
    assert set(merged["versions"]) == {"0.9.0", "1.0.0"} and merged["dist-tags"]["latest"] == "1.0.0"
    assert set(httpx.get(server.repo_url(other) + "shared-pkg").json()["versions"]) == {"0.9.0"}
