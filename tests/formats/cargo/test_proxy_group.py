"""Cargo proxies and groups over HTTP: an upstream that is a static sparse registry (files in a raw
repository of ours: config.json, index files, crates at a `dl` template with markers), a proxied
crate that does not match its index line, the group's merge and its dependency-confusion guard."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.formats.cargo.conftest import Registry
from tests.formats.cargo.helpers import crate, index_lines, publish_body


def line(name: str, version: str, data: bytes) -> dict[str, object]:
    return {
        "name": name, "vers": version, "deps": [], "cksum": hashlib.sha256(data).hexdigest(),
        "features": {}, "yanked": False, "links": None, "v": 1,
    }  # fmt: skip


@pytest.fixture(scope="module")
def static(registry: Registry) -> str:
    """A raw repository laid out as a static sparse registry whose `dl` uses markers."""
    raw = registry.server.create_repo("raw", name="static-registry")
    with registry.server.client() as admin:
        dl = registry.url(raw) + "files/{lowerprefix}/{crate}/{version}/{sha256-checksum}"
        assert admin.put(f"/repository/{raw}/config.json", json={"dl": dl}).status_code == 201
    return raw


def serve(registry: Registry, raw: str, name: str, version: str, declared: bytes, served: bytes) -> str:
    """Put an index file declaring `declared` and the file `served` at its download URL."""
    path = f"{name[:2]}/{name[2:4]}/{name}"
    sha = hashlib.sha256(declared).hexdigest()
    with registry.server.client() as admin:
        assert admin.put(
            f"/repository/{raw}/{path}", content=json.dumps(line(name, version, declared))
        ).is_success
        put = admin.put(f"/repository/{raw}/files/{path[:5]}/{name}/{version}/{sha}", content=served)
        assert put.is_success
    return path


@pytest.fixture(scope="module")
def proxy(registry: Registry, static: str) -> str:
    return registry.server.create_repo("cargo", "proxy", name="static-proxy", url=registry.url(static))


def test_a_proxied_crate_is_located_by_the_upstream_dl_and_verified_by_its_cksum(registry, static, proxy):
    good = crate("goodie", "1.0.0")
    path = serve(registry, static, "goodie", "1.0.0", good, good)
    assert index_lines(httpx.get(registry.url(proxy) + path)) == [line("goodie", "1.0.0", good)]
    download = httpx.get(registry.url(proxy) + "api/v1/crates/goodie/1.0.0/download")
    assert download.status_code == 200 and download.content == good


def test_a_proxied_crate_that_does_not_match_its_index_line_is_502_uncached_and_retried(
    registry, static, proxy
):
    declared, tampered = crate("tamper", "1.0.0"), crate("tamper", "1.0.0", {"tamper-1.0.0/evil.rs": b"x"})
    serve(registry, static, "tamper", "1.0.0", declared, tampered)
    url = registry.url(proxy) + "api/v1/crates/tamper/1.0.0/download"
    for _ in range(2):  # the second request tries the upstream again: nothing was cached
        refused = httpx.get(url)
        assert refused.status_code == 502
        assert "sha256" in refused.json()["errors"][0]["detail"]
    serve(registry, static, "tamper", "1.0.0", declared, declared)  # the upstream repairs the file
    assert httpx.get(url).content == declared


def test_a_malformed_upstream_index_file_is_a_502_in_cargo_shape(registry, static, proxy):
    with registry.server.client() as admin:
        admin.put(f"/repository/{static}/ga/rb/garbage", content=b'{"name": "garbage", "vers": "1"}\n')
    response = httpx.get(registry.url(proxy) + "ga/rb/garbage")
    assert response.status_code == 502 and response.json()["errors"][0]["detail"]


def test_an_upstream_index_line_that_cannot_be_used_hides_only_its_own_version(registry, static, proxy):
    good, unverifiable = crate("mixed", "1.0.0"), crate("mixed", "1.1.0")
    usable = [line("mixed", "1.0.0", good), line("mixed", "2.0.0", b"2")]
    unusable = [
        {k: v for k, v in line("mixed", "1.1.0", unverifiable).items() if k != "cksum"},
        {**line("mixed", "1.2.0", good), "cksum": "not-a-sha256"},
        line("mixed", "1.3", good),  # not SemVer
        line("other", "1.4.0", good),  # another crate's line
        "{not json",
        "[" * 100_000,  # deeper than the JSON parser recurses
    ]
    body = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in (usable[0], *unusable, usable[1]))
    with registry.server.client() as admin:
        assert admin.put(f"/repository/{static}/mi/xe/mixed", content=body).is_success
        for version, data in (("1.0.0", good), ("1.1.0", unverifiable)):  # both at the upstream's dl
            at = f"/repository/{static}/files/mi/xe/mixed/{version}/{hashlib.sha256(data).hexdigest()}"
            assert admin.put(at, content=data).is_success
    assert index_lines(httpx.get(registry.url(proxy) + "mi/xe/mixed")) == usable
    download = registry.url(proxy) + "api/v1/crates/mixed/{}/download"
    assert httpx.get(download.format("1.0.0")).content == good
    assert httpx.get(download.format("1.1.0")).status_code == 404  # no cksum: never served unverified


def test_a_crate_the_upstream_lacks_is_404(registry, proxy):
    assert httpx.get(registry.url(proxy) + "ab/se/absent").status_code == 404
    assert httpx.get(registry.url(proxy) + "api/v1/crates/absent/1.0.0/download").status_code == 404


@pytest.fixture(scope="module")
def group(registry: Registry, proxy: str) -> tuple[str, str, str]:
    server = registry.server
    first, second = server.create_repo("cargo", name="first"), server.create_repo("cargo", name="second")
    members = [first, second, proxy]
    return first, second, server.create_repo("cargo", "group", name="merged", members=members)


def put(registry: Registry, repo: str, name: str, version: str, data: bytes) -> None:
    body = publish_body(name, version, data)
    response = httpx.put(
        registry.url(repo) + "api/v1/crates/new", content=body, headers={"Authorization": registry.token}
    )
    assert response.status_code == 200, response.text


def test_a_group_lists_every_version_once_and_the_first_member_wins(registry, group):
    first, second, merged = group
    mine, theirs = crate("both", "1.0.0"), crate("both", "1.0.0", {"both-1.0.0/other.rs": b""})
    put(registry, first, "both", "1.0.0", mine)
    put(registry, second, "both", "1.0.0", theirs)
    put(registry, second, "both", "1.1.0", crate("both", "1.1.0"))
    lines = index_lines(httpx.get(registry.url(merged) + "bo/th/both"))
    assert [(x["vers"], x["cksum"]) for x in lines] == [
        ("1.0.0", hashlib.sha256(mine).hexdigest()),
        ("1.1.0", hashlib.sha256(crate("both", "1.1.0")).hexdigest()),
    ]
    assert httpx.get(registry.url(merged) + "api/v1/crates/both/1.0.0/download").content == mine


def test_a_name_held_by_a_hosted_member_is_never_served_from_a_proxy_member(registry, static, group):
    first, _second, merged = group
    ours, upstream = crate("shared", "1.0.0"), crate("shared", "2.0.0")
    serve(registry, static, "shared", "2.0.0", upstream, upstream)
    assert [x["vers"] for x in index_lines(httpx.get(registry.url(merged) + "sh/ar/shared"))] == ["2.0.0"]
    put(registry, first, "shared", "1.0.0", ours)
    assert [x["vers"] for x in index_lines(httpx.get(registry.url(merged) + "sh/ar/shared"))] == ["1.0.0"]
    assert httpx.get(registry.url(merged) + "api/v1/crates/shared/2.0.0/download").status_code == 404


@pytest.mark.parametrize("path", ["xx/yy/abcdef", "AB/CD/ABCDEF", "3/b/abc", "1/ab", "ab/cd/abcdef/x"])
def test_only_canonical_index_paths_are_index_files(registry, group, path):
    response = httpx.get(registry.url(group[2]) + path)
    assert response.status_code == 404 and response.json()["errors"][0]["detail"]


def test_config_points_cargo_back_here_and_says_when_reads_need_a_token(registry, group):
    put(registry, group[0], "cfgread", "1.0.0", crate("cfgread", "1.0.0"))  # independent of other tests
    url = registry.url(group[2])
    assert httpx.get(url + "config.json").json() == {
        "dl": url + "api/v1/crates",
        "api": url.rstrip("/"),
        "auth-required": False,
    }
    with registry.server.client() as admin:
        assert admin.put("/api/v1/settings", json={"anonymous_read": False}).is_success
        try:
            config = httpx.get(
                url + "config.json", headers={"Authorization": f"Bearer {registry.reader_token}"}
            )
            assert config.json()["auth-required"] is True
            assert httpx.get(url + "cf/gr/cfgread").status_code == 401
            authed = httpx.get(
                url + "cf/gr/cfgread", headers={"Authorization": f"Bearer {registry.reader_token}"}
            )
            assert authed.status_code == 200
        finally:
            assert admin.put("/api/v1/settings", json={"anonymous_read": True}).is_success


def test_owners_list_publishers_and_refuse_changes_with_what_to_do(registry, group):
    first = group[0]
    put(registry, first, "owned", "1.0.0", crate("owned", "1.0.0"))  # independent of other tests
    url = registry.url(first) + "api/v1/crates/owned/owners"
    bearer = {"Authorization": f"Bearer {registry.token}"}
    users = httpx.get(url, headers=bearer).json()["users"]
    assert [u["login"] for u in users] and all(u["login"].startswith("user-") for u in users)
    added = httpx.put(url, json={"users": ["alice"]}, headers={"Authorization": registry.token})
    assert added.status_code == 400
    assert "write privilege on repository first" in added.json()["errors"][0]["detail"]
    assert httpx.get(registry.url(first) + "api/v1/crates/nobody/owners", headers=bearer).status_code == 404
