"""Module paths, versions and their ordering, as the go command defines them (no server)."""

from __future__ import annotations

import io

import pytest
import semver
from artifactory_formats.go import coordinates
from artifactory_formats.go.coordinates import InvalidModule
from artifactory_formats.go.upload import InvalidZip, inspect_zip, module_line
from hypothesis import given
from hypothesis import strategies as st

from tests.formats.go.conftest import module_zip


@pytest.mark.parametrize(
    ("decoded", "encoded"),
    [("github.com/Azure/azure-sdk", "github.com/!azure/azure-sdk"), ("v1.0.0-RC1", "v1.0.0-!r!c1")],
)
def test_case_encoding_round_trips(decoded: str, encoded: str) -> None:
    assert coordinates.escape(decoded) == encoded
    assert coordinates.unescape(encoded) == decoded


@pytest.mark.parametrize(
    "encoded", ["github.com/Azure/x", "example.com/!1", "example.com/x!", "example.com/!!a"]
)
def test_an_ambiguous_encoding_is_refused(encoded: str) -> None:
    with pytest.raises(InvalidModule):
        coordinates.unescape(encoded)


@pytest.mark.parametrize(
    ("module", "version"),
    [
        ("example.com/m", "v0.0.0-20240102030405-abcdefabcdef"),
        ("example.com/m", "v1.2.4-0.20240102030405-abcdefabcdef"),
        ("example.com/m", "v2.0.0+incompatible"),
        ("example.com/m/v2", "v2.3.4-beta.1"),
        ("gopkg.in/yaml.v3", "v3.0.1"),
    ],
)
def test_valid_versions_pass(module: str, version: str) -> None:
    coordinates.check_version(module, version)


def test_pseudo_versions_are_recognised() -> None:
    assert coordinates.is_pseudo("v0.0.0-20240102030405-abcdefabcdef")
    assert coordinates.is_pseudo("v1.2.4-0.20240102030405-abcdefabcdef")
    assert coordinates.is_pseudo("v1.2.4-rc.1.0.20240102030405-abcdefabcdef")
    assert not coordinates.is_pseudo("v1.2.4-rc.1")


def test_versions_sort_by_semantic_precedence() -> None:
    versions = [
        "v1.10.0",
        "v1.0.0",
        "v1.0.0-rc.1",
        "v1.0.0-alpha",
        "v1.0.0-alpha.10",
        "v1.0.0-alpha.2",
        "v1.2.0",
    ]
    assert sorted(versions, key=coordinates.version_key) == [
        "v1.0.0-alpha",
        "v1.0.0-alpha.2",
        "v1.0.0-alpha.10",
        "v1.0.0-rc.1",
        "v1.0.0",
        "v1.2.0",
        "v1.10.0",
    ]


IDENTIFIER = st.one_of(
    st.integers(0, 2**70).map(str), st.from_regex(r"[0-9]*[A-Za-z-][0-9A-Za-z-]{0,3}", fullmatch=True)
)
GO_VERSIONS = st.builds(
    lambda numbers, pre, incompatible: (
        "v"
        + ".".join(map(str, numbers))
        + (f"-{'.'.join(pre)}" if pre else "")
        + ("+incompatible" if incompatible else "")
    ),
    st.tuples(st.integers(0, 3), st.integers(0, 11), st.integers(0, 11)),
    st.lists(IDENTIFIER, max_size=3),
    st.booleans(),
)


@given(GO_VERSIONS, GO_VERSIONS)
def test_version_key_agrees_with_semver_precedence(a: str, b: str) -> None:
    ka, kb = coordinates.version_key(a), coordinates.version_key(b)
    assert (ka > kb) - (ka < kb) == semver.Version.parse(a[1:]).compare(b[1:])  # type: ignore[operator]


def test_latest_prefers_a_release_to_a_newer_prerelease_or_pseudo_version() -> None:
    candidates = ["v1.0.0", "v1.1.0-rc.1", "v1.1.1-0.20240102030405-abcdefabcdef"]
    assert max(candidates, key=coordinates.latest_key) == "v1.0.0"


def test_the_module_directive_is_read_with_quotes_and_comments() -> None:
    assert module_line(b'// header\nmodule "example.com/q" // the path\n') == "example.com/q"
    assert module_line(b"go 1.19\n") is None


def test_a_declared_size_beyond_the_limit_is_refused_without_extracting() -> None:
    data = module_zip("example.com/m", "v1.0.0", {"big.go": "x" * 5000})
    with pytest.raises(InvalidZip, match="expands to"):
        inspect_zip(io.BytesIO(data), "example.com/m", "v1.0.0", 4096)
    assert inspect_zip(io.BytesIO(data), "example.com/m", "v1.0.0", 10**6).startswith(b"module example.com/m")


def test_a_zip_expanding_a_thousandfold_is_refused_as_a_bomb_under_any_limit() -> None:
    data = module_zip("example.com/m", "v1.0.0", {"zeros.go": "0" * (9 * 1024 * 1024)})
    with pytest.raises(InvalidZip, match="bomb"):
        inspect_zip(io.BytesIO(data), "example.com/m", "v1.0.0", 10**9)


def test_an_entry_name_hiding_a_path_behind_a_nul_byte_is_refused() -> None:
    # zipfile cuts a name at NUL when it reads it: the check must see the name as stored.
    data = module_zip("example.com/m", "v1.0.0", {"x.go#../../evil": "package m\n"})
    crafted = data.replace(b"x.go#../../evil", b"x.go\x00../../evil")
    with pytest.raises(InvalidZip, match="second name"):
        inspect_zip(io.BytesIO(crafted), "example.com/m", "v1.0.0", 10**6)


@pytest.mark.parametrize(
    "module",
    [
        "example.com/CON",
        "example.com/con.d",
        "example.com/Lpt1",
        "example.com/nul/x",
        "example.com/foo~1",
        "example.com/foo~12.bar",
        "example.com/m\n",
    ],
)
def test_a_module_path_the_go_command_refuses_is_refused(module: str) -> None:
    # Windows reserves CON, PRN, AUX, NUL, COM1-9 and LPT1-9 before any dot, and makes names
    # such as PROGRA~1 of long ones (module.CheckPath).
    with pytest.raises(InvalidModule, match="invalid path element"):
        coordinates.check_path(module)


@pytest.mark.parametrize(
    "module",
    ["example.com/console", "example.com/x.con", "example.com/com0", "example.com/foo~", "example.com/a~1b"],
)
def test_a_module_path_merely_resembling_a_reserved_one_passes(module: str) -> None:
    coordinates.check_path(module)


@pytest.mark.parametrize("path", ["example.com/m/@v/v1.0.0\n.zip", "example.com/m/@v/v\u0661.0.0.zip"])
def test_a_version_with_a_final_newline_or_other_digits_is_refused(path: str) -> None:
    with pytest.raises(InvalidModule):
        coordinates.module_file(path)


@pytest.mark.parametrize(
    "gomod",
    [
        b'module "example.com/q\n',
        b"module `example.com/q`\n",
        b"module 'example.com/q'\n",
        b'module example.com/q"\n',
        b'module "example.com/q" extra\n',
        b"module\n",
    ],
)
def test_a_module_directive_the_go_command_cannot_parse_is_refused(gomod: bytes) -> None:
    with pytest.raises(InvalidZip, match="malformed module directive"):
        module_line(gomod)


def test_a_go_mod_with_two_module_directives_is_refused() -> None:
    with pytest.raises(InvalidZip, match="more than one module directive"):
        module_line(b"module example.com/q\nmodule example.com/q\n")


def test_prereleases_are_those_with_a_prerelease_part_pseudo_versions_included() -> None:
    is_prerelease = coordinates.is_prerelease
    assert is_prerelease("v1.0.0-rc.1")
    assert is_prerelease("v0.0.0-20240101000000-abcdefabcdef")
    assert not is_prerelease("v1.0.0")
    assert not is_prerelease("v2.0.0+incompatible")
    assert not is_prerelease("1.0.0-rc.1")  # not a Go version: no v
