"""The pure parts of the npm format: names, paths, versions, tags, and packument transforms."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import pytest
import semver
from artifactory_formats.npm import metadata, upload
from artifactory_formats.npm.coordinates import (
    PackageName,
    name_problem,
    parse_name,
    parse_path,
    tag_problem,
    tarball_coordinates,
    version_problem,
)
from artifactory_formats.npm.format import NpmFormat
from artifactory_formats.npm.upload import parse_publish
from hypothesis import given, settings
from hypothesis import strategies as st

from artifactory.plugin import (
    BadRequest,
    CachePolicy,
    Conflict,
    Forbidden,
    IndexKey,
    PayloadTooLarge,
    RenderContext,
)
from tests.formats.npm.helpers import publish_document, tarball

PART = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,40}", fullmatch=True).filter(
    lambda p: p not in ("node_modules", "favicon.ico") and p not in metadata_core()
)


def metadata_core() -> frozenset[str]:
    from artifactory_formats.npm.coordinates import CORE_MODULES

    return CORE_MODULES


PACKAGES = st.builds(PackageName, st.one_of(st.just(""), PART.map(lambda s: "@" + s)), PART)
VERSIONS = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-{pre}" if pre else ""),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
    st.one_of(st.just(""), st.from_regex(r"(alpha|beta|rc)\.[1-9]", fullmatch=True)),
)


# -- names and paths -------------------------------------------------------------------------
@given(PACKAGES)
def test_valid_names_are_accepted_and_round_trip_through_every_path_spelling(package):
    assert name_problem(package.full) is None
    assert parse_name(package.full) == package
    assert parse_name(package.path) == package
    assert parse_name(package.path.replace("%2F", "%2f")) == package
    parsed = parse_path(package.path)
    assert parsed is not None and parsed.kind == "packument" and parsed.package == package
    if package.scope:
        literal = parse_path(package.full)
        assert literal is not None and literal.kind == "packument" and literal.storage_path == package.path


@given(PACKAGES, VERSIONS)
def test_tarball_paths_name_their_component(package, version):
    path = package.tarball_path(version)
    parsed = parse_path(path)
    assert parsed is not None and parsed.kind == "tarball" and parsed.storage_path == path
    coordinates = tarball_coordinates(path)
    assert coordinates is not None
    assert (coordinates.namespace, coordinates.name, coordinates.version) == (
        package.scope,
        package.bare,
        version,
    )
    if package.scope:
        encoded = parse_path(f"{package.path}/-/{package.tarball_file(version)}")
        assert encoded is not None and encoded.storage_path == path
    version_path = parse_path(f"{package.path}/{version}")
    assert version_path is not None and version_path.kind == "version" and version_path.rest == version


@given(PACKAGES, st.sampled_from("ABCXYZ"))
def test_any_capital_letter_makes_a_name_invalid(package, letter):
    name = package.full + letter
    assert "capital" in (name_problem(name) or "")


@given(PACKAGES, st.characters(blacklist_categories=("Cs",)))
def test_names_with_characters_outside_the_url_safe_set_are_invalid(package, char):
    if char.isascii() and (char.isalnum() or char in "-._"):
        return
    assert name_problem(package.full + char) is not None


@pytest.mark.parametrize(
    "name",
    [
        ".start",
        "_start",
        "..",
        "@scope/.x",
        "@scope/_x",
        "@.scope/x",
        "a" * 215,
        " lead",
        "trail ",
        "@scope/",
        "@/x",
        "a/b",
    ],
)
def test_names_npm_refuses_are_refused(name):
    assert name_problem(name) is not None


def test_a_name_of_214_characters_is_the_longest_allowed():
    assert name_problem("a" * 214) is None and name_problem("a" * 215) is not None


@given(st.text(max_size=30))
def test_versions_are_accepted_exactly_when_they_are_semver(text):
    assert (version_problem(text) is None) == semver.Version.is_valid(text)


@given(VERSIONS)
def test_generated_versions_are_valid(version):
    assert version_problem(version) is None


@pytest.mark.parametrize("tag", ["1.x", "1", "v1", "^1.0.0", "~2", ">=3", "*", "x", "", "a b", "tag/slash"])
def test_tags_that_read_as_ranges_or_are_not_url_safe_are_refused(tag):
    assert tag_problem(tag) is not None


@pytest.mark.parametrize("tag", ["latest", "next", "beta", "rc-1", "legacy_v2", "x-compat"])
def test_ordinary_tags_are_accepted(tag):
    assert tag_problem(tag) is None


def test_api_paths_are_not_packages():
    for path in ("-/ping", "-/v1/search", "name/-", "name/-/", "name/a/b", "@scope"):
        parsed = parse_path(path)
        assert parsed is None or parsed.kind != "tarball"
    assert parse_path("-/ping") is None


def test_format_policies_by_path():
    fmt = NpmFormat()
    assert fmt.cache_policy("left-pad/-/left-pad-1.0.0.tgz") is CachePolicy.IMMUTABLE
    packument = fmt.coordinates("@a%2Fb")
    assert packument is not None
    assert (packument.namespace, packument.name, packument.version) == ("@a", "b", "")
    assert fmt.coordinates("-/v1/search") is None
    assert fmt.encoded_path_characters == frozenset("/")


def test_a_tarball_is_declared_by_its_packument_and_leaves_a_name_at_version_tombstone():
    fmt = NpmFormat()
    assert fmt.declared_by("@a/b/-/b-1.0.0.tgz") == IndexKey("packument", name="b", namespace="@a")
    assert fmt.declared_by("left-pad/-/left-pad-1.0.0.tgz") == IndexKey("packument", name="left-pad")
    assert fmt.declared_by("left-pad") is None and fmt.declared_by("-/v1/search") is None
    assert fmt.tombstone("@a/b/-/b-1.0.0.tgz") == "@a/b@1.0.0"
    assert fmt.tombstone("left-pad/-/left-pad-1.0.0.tgz") == "left-pad@1.0.0"
    assert fmt.tombstone("left-pad") is None
    assert fmt.upstream_document(IndexKey("packument", name="b", namespace="@a")).path == "@a%2Fb"


# -- publish documents -----------------------------------------------------------------------
def test_a_publish_document_parses_into_its_parts():
    publication = parse_publish(publish_document("@a/b", "1.2.3"), PackageName("@a", "b"), 10_000)
    assert publication.version == "1.2.3" and publication.tags == {"latest": "1.2.3"}
    assert set(publication.expected) == {"sha1", "sha512"}


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda d: d.update(versions={}), BadRequest),
        (lambda d: d["versions"].update({"2.0.0": {}}), BadRequest),
        (lambda d: d.update({"dist-tags": {"latest": "9.9.9"}}), BadRequest),
        (lambda d: d.pop("_attachments"), BadRequest),
        (lambda d: d["_attachments"].update({"extra.tgz": {"data": ""}}), BadRequest),
        (lambda d: d["versions"]["1.0.0"].update(name="other"), BadRequest),
        (lambda d: d["versions"]["1.0.0"]["dist"].update(integrity="sha512-@@@", shasum=None), BadRequest),
        (lambda d: d["versions"]["1.0.0"].update(dist={}), BadRequest),
        (lambda d: d["_attachments"]["pkg-1.0.0.tgz"].update(length=1), BadRequest),
        (lambda d: d["_attachments"]["pkg-1.0.0.tgz"].update(data="QUJD" * 10_000), PayloadTooLarge),
    ],
)
def test_malformed_publish_documents_are_refused(change, error):
    doc = publish_document("pkg", "1.0.0")
    change(doc)
    with pytest.raises(error):
        parse_publish(doc, PackageName("", "pkg"), 10_000)


# -- packument transforms --------------------------------------------------------------------
PKG = PackageName("", "pkg")
PKG_KEY = IndexKey("packument", name="pkg")


def manifest(version: str) -> dict:
    return {"name": "pkg", "version": version, "dist": {"tarball": PKG.tarball_path(version), "shasum": "0"}}


def published(*versions: str, tags: dict[str, str] | None = None) -> bytes:
    body = None
    for version in versions:
        body = metadata.add_version(body, PKG, manifest(version), {}, None, "me", "2024-01-01T00:00:00.000Z")
    doc = metadata.load(body)
    if tags:
        doc["dist-tags"].update(tags)
    return metadata.dump(doc)


def test_add_version_refuses_an_existing_version_and_counts_revisions():
    body = published("1.0.0", "1.1.0")
    assert metadata.load(body)["_rev"].startswith("2-")
    with pytest.raises(Forbidden):
        metadata.add_version(body, PKG, manifest("1.0.0"), {}, None, "me", "now")


def test_deprecation_is_set_and_cleared_through_a_document_put():
    body = published("1.0.0", "1.1.0")
    doc = metadata.load(body)
    doc["versions"]["1.0.0"]["deprecated"] = "old"
    body, removed = metadata.apply_update(body, doc, None, False, "later")
    assert removed == [] and metadata.load(body)["versions"]["1.0.0"]["deprecated"] == "old"
    doc = metadata.load(body)
    doc["versions"]["1.0.0"]["deprecated"] = ""
    body, _ = metadata.apply_update(body, doc, doc["_rev"], False, "later")
    assert "deprecated" not in metadata.load(body)["versions"]["1.0.0"]


def test_removing_the_latest_version_recomputes_latest_and_drops_its_tags():
    body = published("1.0.0", "1.1.0", "2.0.0-rc.1", tags={"next": "2.0.0-rc.1", "old": "1.0.0"})
    doc = metadata.load(body)
    doc["dist-tags"]["latest"] = "1.1.0"
    body = metadata.dump(doc)
    del doc["versions"]["1.1.0"]
    new, removed = metadata.apply_update(body, doc, doc["_rev"], True, "later")
    assert removed == ["1.1.0"]
    assert metadata.load(new)["dist-tags"] == {"latest": "1.0.0", "next": "2.0.0-rc.1", "old": "1.0.0"}


def test_a_stale_revision_conflicts():
    body = published("1.0.0")
    with pytest.raises(Conflict):
        metadata.apply_update(body, metadata.load(body), "1-other", True, "later")


def test_the_latest_tag_cannot_be_removed_and_tags_need_existing_versions():
    body = published("1.0.0")
    with pytest.raises(BadRequest):
        metadata.remove_tag(body, "latest", "now")
    with pytest.raises(BadRequest):
        metadata.set_tag(body, "beta", "9.9.9", "now")
    assert metadata.load(metadata.set_tag(body, "beta", "1.0.0", "now"))["dist-tags"]["beta"] == "1.0.0"


def test_relativize_maps_upstream_urls_to_local_paths_and_avoids_collisions():
    doc = {
        "name": "pkg",
        "versions": {
            "1.0.0": {"dist": {"tarball": "https://cdn.invalid/a/pkg-1.0.0.tgz"}},
            "1.1.0": {"dist": {"tarball": "https://cdn.invalid/b/download"}},
            "1.2.0": {"dist": {"tarball": "https://cdn.invalid/c/pkg-1.0.0.tgz"}},
            "1.3.0": {"dist": {"tarball": "pkg/-/pkg-1.3.0.tgz"}},
        },
    }
    links = metadata.relativize(doc, PKG)
    tarballs = {v: m["dist"]["tarball"] for v, m in doc["versions"].items()}
    assert tarballs == {
        "1.0.0": "pkg/-/pkg-1.0.0.tgz",
        "1.1.0": "pkg/-/pkg-1.1.0.tgz",
        "1.2.0": "pkg/-/pkg-1.2.0.tgz",
        "1.3.0": "pkg/-/pkg-1.3.0.tgz",
    }
    assert links["pkg/-/pkg-1.1.0.tgz"] == "https://cdn.invalid/b/download" and len(links) == 3


def test_parse_gives_the_relativised_packument_and_declares_each_tarball_at_its_upstream_url():
    versions = {
        "1.0.0": {"dist": {"tarball": "http://cdn.invalid/pkg/-/pkg-1.0.0.tgz"}},
        "1.1.0": {"dist": {"tarball": "pkg/-/pkg-1.1.0.tgz", "shasum": "a" * 40}},
        "1.2.0": {"dist": {"tarball": "other/-/other-1.2.0.tgz"}},
    }
    body = json.dumps({"name": "pkg", "versions": versions})
    parsed = NpmFormat().parse(PKG_KEY, body.encode(), "http://up.invalid/registry/pkg")
    assert parsed is not None
    assert parsed.model["versions"]["1.0.0"]["dist"]["tarball"] == "pkg/-/pkg-1.0.0.tgz"
    # A relative tarball of this package is below the upstream registry's root; another package's
    # path is declared by nothing.
    assert {path: ref.url for path, ref in parsed.files.items()} == {
        "pkg/-/pkg-1.0.0.tgz": "http://cdn.invalid/pkg/-/pkg-1.0.0.tgz",
        "pkg/-/pkg-1.1.0.tgz": "http://up.invalid/registry/pkg/-/pkg-1.1.0.tgz",
    }
    assert parsed.files["pkg/-/pkg-1.1.0.tgz"].digests == {"sha1": "a" * 40}


def test_rendering_makes_tarball_urls_absolute_without_changing_the_cached_model():
    doc = metadata.load(published("1.0.0"))
    before = json.dumps(doc)
    base = "http://here.invalid/repository/r/"
    for media_type in ("application/json", metadata.ABBREVIATED_TYPE):
        rendered = NpmFormat().render(PKG_KEY, doc, RenderContext(media_type, base))
        assert rendered.media_type == media_type
        dist = json.loads(rendered.body)["versions"]["1.0.0"]["dist"]
        assert dist["tarball"] == base + "pkg/-/pkg-1.0.0.tgz"
    assert json.dumps(doc) == before


MEMBER = st.dictionaries(VERSIONS, st.integers(0, 3), min_size=1, max_size=6).flatmap(
    lambda versions: st.tuples(
        st.just(versions),
        st.sampled_from(sorted(versions)),
        st.dictionaries(
            st.sampled_from(["beta", "next", "old"]), st.sampled_from(sorted(versions)), max_size=2
        ),
    )
)


@settings(max_examples=60)
@given(st.lists(MEMBER, min_size=1, max_size=4))
def test_group_merge_is_a_union_with_first_member_winning_and_no_dangling_tags(members):
    bodies = []
    for index, (versions, latest, tags) in enumerate(members):
        doc = {
            "name": "pkg",
            "versions": {v: {"name": "pkg", "version": v, "member": index} for v in versions},
            "dist-tags": {**tags, "latest": latest},
        }
        bodies.append(doc)
    merged = metadata.merge(bodies)
    union = set().union(*(set(v) for v, _, _ in members))
    assert set(merged["versions"]) == union
    for version, item in merged["versions"].items():
        first = next(i for i, (v, _, _) in enumerate(members) if version in v)
        assert item["member"] == first
    latests = [latest for _, latest, _ in members]
    assert merged["dist-tags"]["latest"] == max(latests, key=semver.Version.parse)
    for tag, target in merged["dist-tags"].items():
        assert target in merged["versions"]
        if tag != "latest":
            assert target == next(t[tag] for _, _, t in members if tag in t)


@pytest.mark.parametrize("body", [b"<html>", b"[1, 2]", b"[" * 100_000])
def test_an_unreadable_upstream_packument_is_a_value_error_for_the_proxy(body):
    with pytest.raises(ValueError):
        NpmFormat().parse(PKG_KEY, body, "http://up.invalid/pkg")


def test_abbreviated_keeps_only_what_install_needs():
    doc = metadata.load(published("1.0.0"))
    doc["versions"]["1.0.0"].update(readme="long", scripts={"test": "x"}, dependencies={"a": "1"})
    short = json.loads(metadata.abbreviated(doc))
    assert set(short) == {"name", "modified", "dist-tags", "versions"}
    assert set(short["versions"]["1.0.0"]) == {"name", "version", "dist", "dependencies"}


# -- upstream digests (issue 10, item 5) -----------------------------------------------------
def test_parse_declares_each_tarball_digest_in_hex_for_the_engine_to_verify():
    sha512 = hashlib.sha512(b"tarball one").digest()
    sha1 = hashlib.sha1(b"tarball two").hexdigest()
    doc = {
        "name": "pkg",
        "versions": {
            "1.0.0": {
                "dist": {
                    "tarball": "http://up.invalid/pkg/-/pkg-1.0.0.tgz",
                    "integrity": "sha512-" + base64.b64encode(sha512).decode(),
                    "shasum": "ignored-when-integrity-is-there",
                }
            },
            "2.0.0": {"dist": {"tarball": "http://up.invalid/pkg/-/pkg-2.0.0.tgz", "shasum": sha1.upper()}},
            "3.0.0": {
                "dist": {"tarball": "http://up.invalid/pkg/-/pkg-3.0.0.tgz", "integrity": "sha512-%%%"}
            },
        },
    }
    parsed = NpmFormat().parse(PKG_KEY, json.dumps(doc).encode(), "http://up.invalid/pkg")
    assert parsed is not None
    assert {path: dict(ref.digests) for path, ref in parsed.files.items() if ref.digests} == {
        "pkg/-/pkg-1.0.0.tgz": {"sha512": sha512.hex()},
        "pkg/-/pkg-2.0.0.tgz": {"sha1": sha1},
    }


def test_the_strongest_algorithm_of_an_integrity_string_is_the_one_declared():
    sha1 = hashlib.sha1(b"x").digest()
    sha512 = hashlib.sha512(b"x").digest()
    both = f"sha1-{base64.b64encode(sha1).decode()} sha512-{base64.b64encode(sha512).decode()}"
    assert metadata.dist_digests({"integrity": both}) == {"sha512": sha512.hex()}
    assert metadata.dist_digests({"integrity": "sha384-abc", "shasum": sha1.hex()}) == {"sha1": sha1.hex()}
    assert metadata.dist_digests({"integrity": "sha512-" + base64.b64encode(b"short").decode()}) == {}


# -- tarball inflation (issue 9, item 11) ----------------------------------------------------
def zero_tarball(size: int) -> bytes:
    return tarball("zeros", "1.0.0", files={"zeros.bin": bytes(size)})


def test_a_tarball_inflating_past_the_ratio_limit_is_refused_with_413(monkeypatch):
    monkeypatch.setattr(upload, "MIN_INFLATE_BYTES", 1024 * 1024)
    data = zero_tarball(8 * 1024 * 1024)  # a few KB of gzip
    assert upload.inflate_limit(len(data)) == 1024 * 1024
    with pytest.raises(PayloadTooLarge, match="unpacks to more than 1048576 bytes"):
        upload.inspect_tarball(io.BytesIO(data))
    facts = upload.inspect_tarball(io.BytesIO(zero_tarball(512 * 1024)))
    assert facts.manifest["name"] == "zeros"


def test_inflation_limits_scale_with_the_tarball_and_stop_at_1_gib():
    assert upload.inflate_limit(1000) == upload.MIN_INFLATE_BYTES
    assert upload.inflate_limit(2 * 1024 * 1024) == 200 * 1024 * 1024  # 2 MB never becomes 2 GiB
    assert upload.inflate_limit(100 * 1024 * 1024) == upload.MAX_INFLATE_BYTES


def test_a_corrupt_gzip_stream_is_a_400():
    data = bytearray(zero_tarball(64 * 1024))
    data[len(data) // 2 : len(data) // 2 + 16] = b"\xff" * 16
    with pytest.raises(BadRequest, match="not a gzip-compressed tar"):
        upload.inspect_tarball(io.BytesIO(bytes(data)))


@pytest.mark.parametrize(
    ("package_json", "problem"),
    [(b'{"name": "x",', "is not valid JSON"), (b"[" * 100 + b"]" * 100, "is nested more than 64 levels")],
    ids=["cut-short", "deep"],
)
def test_a_package_json_that_is_not_json_is_named_as_such_not_as_a_bad_archive(package_json, problem):
    data = tarball("x", "1.0.0", files={"package.json": package_json})
    with pytest.raises(BadRequest, match=f"^package.json in the tarball {problem}"):
        upload.inspect_tarball(io.BytesIO(data))
