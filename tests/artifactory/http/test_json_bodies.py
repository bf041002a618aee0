"""The engine's `loads`: JSON from outside, parsed within bounds, for the core and every format."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from artifactory.plugin import BadRequest, loads

# JSON values PostgreSQL can store (no NUL) and that compare equal after a round trip (no NaN).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=30,
)


def depth_of(value):
    if isinstance(value, dict | list):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((depth_of(c) for c in children), default=0)
    return 0


@given(VALUES)
def test_any_json_value_within_the_bounds_round_trips(value):
    assert depth_of(value) <= 64
    assert loads(json.dumps(value)) == value
    assert loads(json.dumps(value).encode(), allow_nul=True) == value


@given(st.integers(min_value=65, max_value=200_000), st.sampled_from(["[]", "{}"]))
def test_json_nested_deeper_than_the_limit_is_a_400_however_deep(depth, brackets):
    opening, closing = brackets
    body = (opening + ('"k":' if opening == "{" else "")) * depth + "1" + closing * depth
    with pytest.raises(BadRequest, match="nested more than 64 levels"):
        loads(body.encode(), "the document")


def test_the_depth_limit_counts_containers_not_brackets_in_strings():
    assert loads(b"[" * 64 + b"]" * 64) is not None
    text = "[[[[" * 100 + '\\"{{{'
    assert loads(json.dumps({"text": text}).encode())["text"] == text
    assert loads(b"[[1]]", depth=2) == [[1]]
    with pytest.raises(BadRequest, match="nested more than 1 levels"):
        loads(b"[[1]]", depth=1)


def test_json_with_more_values_than_the_limit_is_a_400_but_commas_in_strings_do_not_count():
    with pytest.raises(BadRequest, match="more than 1000 JSON values"):
        loads(json.dumps(list(range(1001))).encode(), max_values=1000)
    readme = {"readme": "a, b, [c], {d}, " * 1000 + '\\\\", '}
    assert loads(json.dumps(readme).encode(), max_values=1000) == readme
    assert len(loads(json.dumps(list(range(1001))), max_values=None)) == 1001


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant):
    with pytest.raises(BadRequest, match="not valid JSON"):
        loads(f'{{"x": {constant}}}'.encode(), "the body")
    assert math.isnan(json.loads("NaN"))  # what json.loads alone would have taken


def test_a_nul_in_a_string_is_refused_unless_the_caller_stores_no_json_values():
    body = json.dumps({"readme": "a\x00b"}).encode()
    with pytest.raises(BadRequest, match="NUL"):
        loads(body, "the body")
    assert loads(body, allow_nul=True) == {"readme": "a\x00b"}


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[1,]", b'{"a":1}{', b"\xc3"])
def test_what_is_not_json_is_a_400_naming_what_was_read(body):
    with pytest.raises(BadRequest, match="^the package document is not valid JSON"):
        loads(body, "the package document")
