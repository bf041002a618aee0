"""Numbers in text from outside are ASCII digits, tested in one place (`artifactory.text`).

`str.isdigit()` takes "²" (on which `int()` fails: a 500 the API fuzzer found in the audit cursor)
and "٣" (which `int()` reads as 3). Every format and the engine ask `ascii_digits` instead, and the
last test keeps `isdigit()` out of the source tree so that no new parser brings the class back."""

from __future__ import annotations

import re
from pathlib import Path

from artifactory_formats.maven.coordinates import version_key as maven_version_key
from artifactory_formats.maven.metadata import parse as parse_metadata
from artifactory_formats.npm.metadata import _bump
from hypothesis import given
from hypothesis import strategies as st

from artifactory.formats import natural_key
from artifactory.text import ascii_digits

ROOT = Path(__file__).resolve().parents[2]
ODD_DIGITS = ["²", "①", "٣", "३", "１", "1²", "²1", "Ⅻ"]


@given(st.text(max_size=12))
def test_ascii_digits_is_exactly_a_run_of_0_to_9_and_int_reads_it(text):
    assert ascii_digits(text) == bool(re.fullmatch(r"[0-9]+", text, re.ASCII))
    if ascii_digits(text):
        assert str(int(text)) == text.lstrip("0") or int(text) == 0


def test_digits_of_other_scripts_are_not_numbers():
    assert not any(ascii_digits(odd) for odd in ODD_DIGITS)


@given(st.text(max_size=16))
def test_version_orderings_take_any_text(text):
    natural_key(text)
    maven_version_key(text)
    for odd in ODD_DIGITS:
        natural_key(f"1.{odd}")
        maven_version_key(f"1.{odd}")


def test_documents_with_odd_digits_are_read_as_without_a_number():
    doc = {"_rev": "²-abc"}
    _bump(doc)
    assert doc["_rev"].startswith("1-")
    xml = (
        "<metadata><groupId>g</groupId><artifactId>a</artifactId><version>1.0-SNAPSHOT</version>"
        "<versioning><snapshot><timestamp>20240101.000000</timestamp><buildNumber>²</buildNumber>"
        "</snapshot></versioning></metadata>"
    )
    assert parse_metadata(xml.encode()).snapshot_build == 0


def test_no_source_file_asks_str_isdigit():
    sources = [ROOT / "artifactory", ROOT / "formats", ROOT / "plugins"]
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in sources
        for path in folder.rglob("*.py")
        if path != ROOT / "artifactory" / "text.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ".isdigit()" in line.split("#", 1)[0]
    ]
    assert offenders == [], "ask artifactory.text.ascii_digits (the facade's ascii_digits) instead"


def test_every_pattern_with_a_digit_class_is_ascii_only():
    """Python's \\d matches every script's decimal digits ("٣" among them), which int() then reads:
    a pattern that picks numbers out of outside text is compiled with re.ASCII (on its line or on
    one of the next three, where a long pattern's flags go)."""
    offenders = []
    for folder in (ROOT / "artifactory", ROOT / "formats", ROOT / "plugins"):
        for path in folder.rglob("*.py"):
            lines = path.read_text().splitlines()
            for number, line in enumerate(lines):
                if "\\d" in line.split("#", 1)[0] and not any(
                    "re.ASCII" in near for near in lines[number : number + 4]
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{number + 1}")
    assert offenders == []
