"""`cargo publish` bodies that must be refused, each with nothing stored, and who may publish."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from artifactory_formats.cargo.metadata import index_path

from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import LiveServer
from tests.formats.cargo.conftest import Registry
from tests.formats.cargo.helpers import crate, index_lines, publish_body

NEW = "api/v1/crates/new"


@pytest.fixture(scope="module")
def hosted(registry: Registry) -> str:
    return registry.server.create_repo("cargo", name="rules", max_crate_bytes=64 * 1024)


def publish(registry: Registry, repo: str, body: bytes, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": token if token is not None else registry.token}
    return httpx.put(registry.url(repo) + NEW, content=body, headers=headers, timeout=60)


def assert_refused(registry: Registry, repo: str, response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["errors"][0]["detail"]


def assert_nothing_stored(registry: Registry, repo: str, name: str, version: str) -> None:
    path = name.lower()
    prefix = f"{path[:2]}/{path[2:4]}" if len(path) > 3 else f"3/{path[0]}"
    assert httpx.get(registry.url(repo) + f"{prefix}/{path}").status_code == 404
    download = registry.url(repo) + f"api/v1/crates/{name}/{version}/download"
    assert httpx.get(download).status_code == 404


def tar_with(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as archive:
            for info, data in entries:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def manifest(name: str, version: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(
        f"{name}-{version}/Cargo.toml"
    ), f'[package]\nname = "{name}"\nversion = "{version}"\n'.encode()


BAD_CRATES = {
    "manifest-name-differs": (crate("wanted", "1.0.0", manifest_name="other"), 400, "is for other@1.0.0"),
    "manifest-version-differs": (
        crate("wanted", "1.0.0", manifest_version="2.0.0"),
        400,
        "is for wanted@2.0.0",
    ),
    "absolute-path": (
        tar_with([manifest("wanted", "1.0.0"), (entry("/etc/cron.d/evil"), b"x")]),
        400,
        "absolute path",
    ),
    "dot-dot": (
        tar_with([manifest("wanted", "1.0.0"), (entry("wanted-1.0.0/../../evil"), b"x")]),
        400,
        "'..'",
    ),
    "outside-the-crate-folder": (
        tar_with([manifest("wanted", "1.0.0"), (entry("elsewhere/file.rs"), b"x")]),
        400,
        "outside its folder",
    ),
    "symlink": (
        tar_with([manifest("wanted", "1.0.0"), (entry("wanted-1.0.0/link", tarfile.SYMTYPE, "/etc"), b"")]),
        400,
        "neither a file nor a folder",
    ),
    "no-manifest": (tar_with([(entry("wanted-1.0.0/src/lib.rs"), b"")]), 400, "no wanted-1.0.0/Cargo.toml"),
    "not-gzip": (b"PK\x03\x04 this is a zip, not a .crate", 400, "not a gzip-compressed tar"),
    "compression-bomb": (
        tar_with([manifest("wanted", "1.0.0"), (entry("wanted-1.0.0/zeros"), bytes(40 * 1024 * 1024))]),
        400,
        "expands beyond",
    ),
    "oversize": (crate("wanted", "1.0.0", files={"wanted-1.0.0/big": os.urandom(70_000)}), 413, "more than"),
}


@pytest.mark.parametrize("case", list(BAD_CRATES))
def test_a_bad_crate_is_refused_and_nothing_is_stored(registry, hosted, case):
    data, status, words = BAD_CRATES[case]
    response = publish(registry, hosted, publish_body("wanted", "1.0.0", data))
    assert_refused(registry, hosted, response, status, words)
    assert_nothing_stored(registry, hosted, "wanted", "1.0.0")


@pytest.mark.parametrize("version", ["1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0+", "latest"])
def test_a_version_that_is_not_semver_is_refused(registry, hosted, version):
    response = publish(registry, hosted, publish_body("semverless", version, crate("semverless", version)))
    assert_refused(registry, hosted, response, 400, "not a semantic version")
    assert_nothing_stored(registry, hosted, "semverless", version)


@pytest.mark.parametrize(
    "body, words",
    [
        (struct.pack("<I", 9) + b"not json!" + struct.pack("<I", 0), "not JSON"),
        (struct.pack("<I", 2) + b"[]" + struct.pack("<I", 0), "JSON object"),
        (publish_body("9lives", "1.0.0"), "invalid crate name"),
        (publish_body("framed", "1.0.0")[:-10], "ends before"),
        (publish_body("framed", "1.0.0") + b"extra", "bytes after"),
        (publish_body("framed", "1.0.0", deps=[{"name": "x", "version_req": "1", "kind": "evil"}]), "kind"),
        (publish_body("framed", "1.0.0", features={"f": "not-a-list"}), "list of strings"),
        (struct.pack("<I", 2 * 1024 * 1024), "publish metadata"),
    ],
)
def test_a_malformed_publish_request_is_refused(registry, hosted, body, words):
    response = publish(registry, hosted, body)
    assert response.status_code in (400, 413) and words in response.json()["errors"][0]["detail"]
    assert_nothing_stored(registry, hosted, "framed", "1.0.0")


def test_publish_metadata_nested_deeper_than_the_parser_recurses_is_a_400_in_cargo_shape(registry, hosted):
    deep = b"[" * 200_000
    response = publish(registry, hosted, struct.pack("<I", len(deep)) + deep + struct.pack("<I", 0))
    assert_refused(registry, hosted, response, 400, "not JSON")


@pytest.mark.parametrize("name", ["nul", "CON", "Aux", "prn", "com1", "COM9", "lpt1", "Lpt9"])
def test_a_name_windows_keeps_for_a_device_is_refused(registry, hosted, name):
    response = publish(registry, hosted, publish_body(name, "1.0.0"))
    assert_refused(registry, hosted, response, 400, "reserved")
    assert_nothing_stored(registry, hosted, name, "1.0.0")


def test_a_name_that_only_begins_like_a_windows_device_is_accepted(registry, hosted):
    for name in ("console", "com10", "nul-x", "lpt"):
        assert publish(registry, hosted, publish_body(name, "1.0.0")).status_code == 200, name


def dependency(req: str) -> dict[str, object]:
    return {"name": "dep", "version_req": req, "kind": "normal"}


@pytest.mark.parametrize("req", ["latest", "1.0.0.0", ">>1", "=> 1", "^01.2", "1.2-rc.1", "1,", "v1", "1 2"])
def test_a_dependency_version_req_that_is_no_cargo_requirement_is_refused(registry, hosted, req):
    response = publish(registry, hosted, publish_body("reqbad", "1.0.0", deps=[dependency(req)]))
    assert_refused(registry, hosted, response, 400, "not a version requirement")
    assert_nothing_stored(registry, hosted, "reqbad", "1.0.0")


def test_cargo_version_requirements_are_accepted_as_written(registry, hosted):
    reqs = ["^1", "=1.2.3", ">=1.0, <2.0", "~1.2", "*", "1.x", "1.2.*", "<= 0.3.1-alpha.1+b", "> 0.0.0-0"]
    body = publish_body("reqgood", "1.0.0", deps=[dependency(req) for req in reqs])
    assert publish(registry, hosted, body).status_code == 200
    (line,) = index_lines(httpx.get(registry.url(hosted) + index_path("reqgood")))
    assert [dep["req"] for dep in line["deps"]] == reqs


def test_checksum_and_index_line_are_computed_by_the_server(registry, hosted):
    data = crate("Lined", "1.2.3-rc.1+build.5")
    deps = [
        {
            "name": "serde",
            "version_req": "^1",
            "features": ["derive"],
            "optional": True,
            "default_features": False,
            "target": None,
            "kind": "normal",
            "registry": None,
            "explicit_name_in_toml": "serde1",
        },
    ]
    features = {"default": ["std"], "std": [], "json": ["dep:serde1"]}
    body = publish_body(
        "Lined", "1.2.3-rc.1+build.5", data, deps=deps, features=features, rust_version="1.70", cksum="0" * 64
    )
    assert publish(registry, hosted, body).status_code == 200
    (line,) = index_lines(httpx.get(registry.url(hosted) + "li/ne/lined"))
    assert line["cksum"] == hashlib.sha256(data).hexdigest()
    assert line["name"] == "Lined" and line["vers"] == "1.2.3-rc.1+build.5" and line["yanked"] is False
    assert line["deps"] == [
        {
            "name": "serde1",
            "package": "serde",
            "req": "^1",
            "features": ["derive"],
            "optional": True,
            "default_features": False,
            "target": None,
            "kind": "normal",
            "registry": None,
        }
    ]
    assert line["features"] == {"default": ["std"], "std": []}
    assert line["features2"] == {"json": ["dep:serde1"]} and line["v"] == 2 and line["rust_version"] == "1.70"
    download = httpx.get(registry.url(hosted) + "api/v1/crates/Lined/1.2.3-rc.1+build.5/download")
    assert download.content == data


def test_a_published_version_cannot_be_replaced_nor_published_again_with_other_build_metadata(
    registry, hosted
):
    first = crate("stable", "1.0.0")
    assert publish(registry, hosted, publish_body("stable", "1.0.0", first)).status_code == 200
    again = publish(
        registry, hosted, publish_body("stable", "1.0.0", crate("stable", "1.0.0", {"stable-1.0.0/x": b"1"}))
    )
    assert_refused(registry, hosted, again, 400, "already published")
    build = publish(registry, hosted, publish_body("stable", "1.0.0+other", crate("stable", "1.0.0+other")))
    assert_refused(registry, hosted, build, 400, "already published")
    lines = index_lines(httpx.get(registry.url(hosted) + "st/ab/stable"))
    assert [line["vers"] for line in lines] == ["1.0.0"]
    assert httpx.get(registry.url(hosted) + "api/v1/crates/stable/1.0.0/download").content == first


@pytest.mark.parametrize(
    "first, other",
    [
        ("casey", "CASEY"),
        ("dash-name", "dash_name"),
        ("under_name", "Under-Name"),
        ("Mixed_Case", "mixed-case"),
    ],
)
def test_another_spelling_of_a_crate_in_case_or_in_hyphens_and_underscores_is_refused(
    registry, hosted, first, other
):
    url = registry.url(hosted)
    assert publish(registry, hosted, publish_body(first, "1.0.0")).status_code == 200
    response = publish(registry, hosted, publish_body(other, "2.0.0"))
    assert_refused(registry, hosted, response, 400, f"published here as {first!r}")
    assert publish(registry, hosted, publish_body(first, "1.1.0")).status_code == 200  # its own spelling may
    lines = index_lines(httpx.get(url + index_path(first)))
    assert [(line["name"], line["vers"]) for line in lines] == [(first, "1.0.0"), (first, "1.1.0")]
    if other.lower() != first.lower():
        assert httpx.get(url + index_path(other)).status_code == 404
    assert httpx.get(url + f"api/v1/crates/{other}/2.0.0/download").status_code == 404


def test_two_spellings_published_at_once_never_both_succeed(registry, hosted):
    """Each round publishes `Racer<i>` 1.0.0 and `racer<i>` 1.0.1 (or `racer-<i>`, `racer_<i>`) at the
    same moment: exactly one spelling is accepted and its index file lists only that spelling."""
    rounds = [(f"Racer{i}", f"racer{i}") for i in range(6)] + [(f"racer-{i}", f"racer_{i}") for i in range(6)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for names in rounds:
            bodies = [publish_body(name, f"1.0.{i}") for i, name in enumerate(names)]
            statuses = list(pool.map(lambda body: publish(registry, hosted, body).status_code, bodies))
            assert sorted(statuses) == [200, 400], (names, statuses)
            accepted = names[statuses.index(200)]
            lines = index_lines(httpx.get(registry.url(hosted) + index_path(accepted)))
            assert {line["name"] for line in lines} == {accepted}, names
            refused = names[statuses.index(400)]
            if refused.lower() != accepted.lower():
                assert httpx.get(registry.url(hosted) + index_path(refused)).status_code == 404


@pytest.mark.parametrize(
    "which, status", [("none", 401), ("garbage", 401), ("reader", 403), ("bearer", 200), ("bare", 200)]
)
def test_publishing_needs_a_token_with_write(registry, hosted, which, status):
    token = {
        "none": "",
        "garbage": "art_nope_nope",
        "reader": registry.reader_token,
        "bearer": f"Bearer {registry.token}",
        "bare": registry.token,
    }[which]
    headers = {"Authorization": token} if token else {}
    body = publish_body(f"auth-{which}", "1.0.0")
    response = httpx.put(registry.url(hosted) + NEW, content=body, headers=headers)
    assert response.status_code == status, response.text
    if status != 200:
        assert response.json()["errors"][0]["detail"]
        assert_nothing_stored(registry, hosted, f"auth-{which}", "1.0.0")


def test_yank_needs_write_and_a_known_version(registry, hosted):
    assert publish(registry, hosted, publish_body("yanky", "1.0.0")).status_code == 200
    url = registry.url(hosted) + "api/v1/crates/yanky/"
    assert (
        httpx.delete(url + "1.0.0/yank", headers={"Authorization": registry.reader_token}).status_code == 403
    )
    assert httpx.delete(url + "9.9.9/yank", headers={"Authorization": registry.token}).status_code == 404
    assert httpx.delete(url + "1.0.0/yank", headers={"Authorization": registry.token}).json() == {"ok": True}
    assert index_lines(httpx.get(registry.url(hosted) + "ya/nk/yanky"))[0]["yanked"] is True
    assert httpx.put(url + "1.0.0/unyank", headers={"Authorization": registry.token}).json() == {"ok": True}
    assert index_lines(httpx.get(registry.url(hosted) + "ya/nk/yanky"))[0]["yanked"] is False


def test_a_read_only_registry_refuses_a_publish_as_read_only_and_claims_no_name(registry: Registry) -> None:
    """Write policy deny: 400 naming it (was 'already published'), no index line, no crate, and the
    name's spelling not claimed: once writes are allowed, another spelling of it may be published."""
    repo = registry.server.create_repo("cargo", write_policy="deny")
    assert_refused(
        registry, repo, publish(registry, repo, publish_body("deny-me", "1.0.0")), 400, "read-only"
    )
    assert_nothing_stored(registry, repo, "deny-me", "1.0.0")
    with registry.server.client() as admin:
        config = admin.get(f"/api/v1/repositories/{repo}").json()
        changed = admin.put(f"/api/v1/repositories/{repo}", json={**config, "write_policy": "allow_once"})
        assert changed.status_code == 200, changed.text
    assert publish(registry, repo, publish_body("deny_me", "1.0.0")).status_code == 200


@pytest.fixture(scope="module", params=DATABASES)
def refusing(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """A server whose upload_policy plugin refuses the crate `refused-crate` (its commit, after the
    publish has claimed the name)."""
    env = {
        "ARTIFACTORY_PLUGINS": "artifactory_plugins.upload_policy.plugin",
        "ARTIFACTORY_UPLOAD_POLICY_DENY": "crates/refused-crate/*",
    }
    with live_server(request, "cargo-refusing", env=env) as server:
        yield server


def test_a_crate_refused_at_its_commit_leaves_its_name_unclaimed(refusing: LiveServer) -> None:
    """The first publish of a name claims its spelling before its commit, which the plugin then
    refuses: the claim is given back, so the name's other spelling may still be published."""
    repo = refusing.create_repo("cargo")
    with refusing.client() as admin:
        refused = admin.put(f"/repository/{repo}/{NEW}", content=publish_body("refused-crate", "1.0.0"))
        assert refused.status_code in (400, 403) and "refused" in refused.text, refused.text
        assert (
            admin.put(f"/repository/{repo}/{NEW}", content=publish_body("refused_crate", "1.0.0")).status_code
            == 200
        )
