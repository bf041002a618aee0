"""Pure functions: layout paths, Maven's version order, metadata build/parse/merge, hardened XML."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import pytest
from artifactory_formats.maven import metadata as md
from artifactory_formats.maven.coordinates import (
    LayoutError,
    compare_versions,
    metadata_scope,
    parse_artifact,
    split_checksum,
    version_key,
)
from artifactory_formats.maven.format import MavenFormat
from artifactory_formats.maven.safexml import UnsafeXML, parse
from artifactory_formats.maven.upload import InvalidUpload, read_checksum, read_plugin_descriptor
from hypothesis import given
from hypothesis import strategies as st

from artifactory.plugin import CachePolicy

ident = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,15}", fullmatch=True)
dotted = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True)
release_version = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}(-[a-z]{1,6}[0-9]{0,2})?", fullmatch=True)
extension = st.sampled_from(["jar", "pom", "war", "module", "tar.gz", "jar.asc", "zip"])
classifier = st.one_of(st.just(""), ident)


@given(
    group=st.lists(ident, min_size=1, max_size=4),
    artifact=dotted,
    version=release_version,
    cls=classifier,
    ext=extension,
)
def test_release_paths_parse_back_to_their_coordinates(group, artifact, version, cls, ext):
    suffix = f"-{cls}" if cls else ""
    path = f"{'/'.join(group)}/{artifact}/{version}/{artifact}-{version}{suffix}.{ext}"
    parsed = parse_artifact(path)
    assert (parsed.group_id, parsed.artifact_id, parsed.base_version, parsed.version) == (
        ".".join(group),
        artifact,
        version,
        version,
    )
    assert (parsed.classifier, parsed.extension, parsed.snapshot) == (cls, ext, False)


@given(
    artifact=ident,
    version=release_version,
    build=st.integers(1, 99999),
    cls=classifier,
    ext=extension,
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)),
)
def test_timestamped_snapshot_paths_parse_to_timestamp_and_build_number(
    artifact, version, build, cls, ext, moment
):
    stamp = moment.strftime("%Y%m%d.%H%M%S")
    suffix = f"-{cls}" if cls else ""
    path = f"org/x/{artifact}/{version}-SNAPSHOT/{artifact}-{version}-{stamp}-{build}{suffix}.{ext}"
    parsed = parse_artifact(path)
    assert parsed.snapshot and parsed.timestamped
    assert parsed.base_version == f"{version}-SNAPSHOT"
    assert parsed.version == f"{version}-{stamp}-{build}"
    assert (parsed.timestamp, parsed.build_number, parsed.classifier, parsed.extension) == (
        stamp,
        build,
        cls,
        ext,
    )


@given(st.text(max_size=80))
def test_any_text_either_parses_or_raises_a_layout_error(text):
    try:
        parse_artifact(text)
    except LayoutError as exc:
        assert str(exc)


def test_checksum_and_metadata_paths_are_recognised():
    assert split_checksum("a/b.jar.sha512") == ("a/b.jar", "sha512")
    assert split_checksum("a/b.jar") == ("a/b.jar", None)
    scope = metadata_scope("org/x/lib/1.0-SNAPSHOT/maven-metadata.xml")
    assert scope is not None and scope.snapshot == ("org.x", "lib", "1.0-SNAPSHOT")
    assert metadata_scope("org/x/lib/maven-metadata.xml").artifact == ("org.x", "lib")
    assert metadata_scope("org/x/lib/other.xml") is None


def test_versions_follow_maven_order():
    ordered = [
        "1.0-alpha-1",
        "1.0-beta-2",
        "1.0-milestone-1",
        "1.0-rc-1",
        "1.0-SNAPSHOT",
        "1.0",
        "1.0-sp1",
        "1.0.1",
        "1.1",
        "1.9",
        "1.10",
        "2.0",
    ]
    assert sorted(reversed(ordered), key=version_key) == ordered
    assert compare_versions("1.0", "1.0.0") == 0
    assert compare_versions("1.0-final", "1") == 0
    assert compare_versions("1.0-ga", "1.0-release") == 0


@given(st.lists(st.from_regex(r"[0-9a-z.-]{1,12}", fullmatch=True), min_size=2, max_size=3))
def test_version_comparison_is_antisymmetric(versions):
    a, b = versions[0], versions[1]
    assert compare_versions(a, b) == -compare_versions(b, a)
    assert compare_versions(a, a) == 0


def test_metadata_merge_unites_versions_and_recomputes_latest_release_and_last_updated():
    one = md.Metadata(group_id="g", artifact_id="a", last_updated="20200101000000")
    md.versions_of(one, ["1.0", "2.0-SNAPSHOT"], "20200101000000")
    two = md.Metadata(group_id="g", artifact_id="a")
    md.versions_of(two, ["1.5"], "20210101000000")
    merged = md.parse(md.render(md.merge([one, two])))
    assert merged.versions == ["1.0", "1.5", "2.0-SNAPSHOT"]
    assert (merged.latest, merged.release, merged.last_updated) == ("2.0-SNAPSHOT", "1.5", "20210101000000")


def test_snapshot_metadata_round_trips():
    files = [
        (parse_artifact("g/a/1.0-SNAPSHOT/a-1.0-20240101.000000-1.jar"), datetime(2024, 1, 1, tzinfo=UTC)),
        (parse_artifact("g/a/1.0-SNAPSHOT/a-1.0-20240102.000000-2.jar"), datetime(2024, 1, 2, tzinfo=UTC)),
    ]
    doc = md.Metadata(group_id="g", artifact_id="a", version="1.0-SNAPSHOT")
    md.snapshot_of(doc, files)
    back = md.parse(md.render(doc))
    assert (back.snapshot_timestamp, back.snapshot_build) == ("20240102.000000", 2)
    assert [(s.extension, s.value) for s in back.snapshot_versions] == [("jar", "1.0-20240102.000000-2")]


@pytest.mark.parametrize(
    "data",
    [
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>'.encode("utf-16"),
        b"<x>" + b"a" * 100 + b"</x>",
    ],
)
def test_hardened_parser_refuses_doctypes_entities_and_oversize(data):
    with pytest.raises(UnsafeXML):
        parse(data, limit=90 if len(data) > 100 else 10_000)


def test_checksum_files_must_hold_a_digest_of_the_right_length():
    assert read_checksum(b"ABCDEF0123456789abcdef0123456789abcdef01  x.jar\n", "sha1") == (
        "abcdef0123456789abcdef0123456789abcdef01"
    )
    for bad in (b"", b"xyz", b"ab" * 10, "é".encode()):
        with pytest.raises(InvalidUpload):
            read_checksum(bad, "sha1")


def test_plugin_descriptors_are_read_only_from_plugin_jars():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("META-INF/maven/plugin.xml", "<plugin><goalPrefix>hi</goalPrefix></plugin>")
    descriptor = read_plugin_descriptor(io.BytesIO(buffer.getvalue()))
    assert descriptor is not None and descriptor.prefix == "hi"
    assert read_plugin_descriptor(io.BytesIO(b"not a zip")) is None


def test_cache_policy_keeps_releases_and_revalidates_metadata_and_snapshots():
    fmt = MavenFormat()
    assert fmt.cache_policy("g/a/1.0/a-1.0.jar") is CachePolicy.IMMUTABLE
    assert fmt.cache_policy("g/a/1.0/a-1.0.jar.sha1") is CachePolicy.IMMUTABLE
    assert fmt.cache_policy("g/a/maven-metadata.xml") is CachePolicy.METADATA
    assert fmt.cache_policy("g/a/maven-metadata.xml.sha1") is CachePolicy.METADATA
    assert fmt.cache_policy("g/a/1.0-SNAPSHOT/a-1.0-20240101.000000-1.jar") is CachePolicy.METADATA
    assert fmt.cache_policy("archetype-catalog.xml") is CachePolicy.METADATA
    assert fmt.coordinates("g/a/1.0/a-1.0.jar").namespace == "g"
    assert fmt.coordinates("g/a/maven-metadata.xml") is None
