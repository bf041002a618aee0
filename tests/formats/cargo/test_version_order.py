"""Crate versions in SemVer 2.0 order and prereleases recognised, as cleanup weighs them (no server)."""

from __future__ import annotations

import pytest
import semver
from artifactory_formats.cargo.format import CargoFormat
from artifactory_formats.cargo.metadata import InvalidCrate, check_version
from hypothesis import given
from hypothesis import strategies as st

CARGO = CargoFormat()
NUMBER = st.one_of(st.integers(0, 12), st.integers(0, 2**70)).map(str)
# Identifiers that collide often (shared prefixes, numeric against alphanumeric, -- and leading 0s).
ALNUM = st.from_regex(r"[0-9]*[A-Za-z-][0-9A-Za-z-]{0,3}", fullmatch=True)
PRE = st.lists(
    st.one_of(NUMBER, ALNUM, st.sampled_from(["alpha", "beta", "rc", "0", "1", "2", "10"])), max_size=4
)
BUILD = st.lists(st.from_regex(r"[0-9A-Za-z-]{1,6}", fullmatch=True), max_size=2)
VERSIONS = st.builds(
    lambda major, minor, patch, pre, build: (
        f"{major}.{minor}.{patch}"
        + (f"-{'.'.join(pre)}" if pre else "")
        + (f"+{'.'.join(build)}" if build else "")
    ),
    st.sampled_from(["0", "1", "2", "10"]),
    st.sampled_from(["0", "1", "9", "10"]),
    NUMBER,
    PRE,
    BUILD,
)


def sign(a: object, b: object) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


@given(VERSIONS, VERSIONS)
def test_version_key_agrees_with_semver_precedence(a: str, b: str) -> None:
    assert sign(CARGO.version_key(a), CARGO.version_key(b)) == semver.Version.parse(a).compare(b)


@given(VERSIONS)
def test_a_prerelease_is_a_version_with_prerelease_identifiers(version: str) -> None:
    assert CARGO.is_prerelease(version) == bool(semver.Version.parse(version).prerelease)
    assert check_version(version) == version


def test_crate_versions_sort_by_precedence_not_by_text() -> None:
    ordered = ["0.9.0", "1.0.0-alpha.2", "1.0.0-alpha.10", "1.0.0-rc.1", "1.0.0+build.5", "1.9.0", "1.10.0"]
    assert sorted(reversed(ordered), key=CARGO.version_key) == ordered
    assert CARGO.version_key("1.0.0+a") == CARGO.version_key("1.0.0+b")  # build metadata: one version
    assert [v for v in ordered if CARGO.is_prerelease(v)] == ["1.0.0-alpha.2", "1.0.0-alpha.10", "1.0.0-rc.1"]
    assert not CARGO.is_prerelease("1.0.0+build-5")


@pytest.mark.parametrize("version", ["1.0.0\n", "1.1\u0663.0", "1.0.0-a\n", " 1.0.0", "1.0.0-01"])
def test_a_version_the_semver_grammar_refuses_is_invalid(version: str) -> None:
    with pytest.raises(InvalidCrate, match="not a semantic version"):
        check_version(version)
