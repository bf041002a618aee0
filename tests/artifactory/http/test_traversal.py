"""Path traversal in every spelling is refused with 400 and never touches files outside the store."""

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artifactory.http.errors import BadRequest
from artifactory.http.paths import decode_path

SPELLINGS = [
    "../etc/passwd",
    "a/../../etc/passwd",
    "%2e%2e/etc/passwd",
    "%2E%2E/%2E%2E/etc/passwd",
    "a%2f..%2fb",
    "..%2fetc",
    "a/%2e%2e%2fb",
    "..%5c..%5cwindows",
    "a\\..\\b",
    "a/%5c/b",
    "file%00.txt",
    "a/%252e%252e/b",
    "./a",
    "a//b",
    "C:/windows",
]


def raw_request(port: int, path: str) -> int:
    """Send the path byte for byte (HTTP clients would normalise it first)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_traversal_spellings_answer_400_over_http(server, spelling):
    name = server.create_repo("raw", name=f"trav-{abs(hash(spelling)) % 10**8}")
    for method_path in (f"/repository/{name}/{spelling}", f"/repository/{name}/sub/{spelling}"):
        assert raw_request(server.port, method_path) == 400, method_path


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_traversal_spellings_are_refused_by_the_path_check(spelling):
    with pytest.raises(BadRequest):
        decode_path(spelling)


def test_encoded_slash_is_kept_only_where_the_format_allows_it():
    assert decode_path("@scope%2fname", frozenset("/")) == "@scope%2Fname"
    with pytest.raises(BadRequest):
        decode_path("@scope%2fname")


segment = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=0, max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(segment, st.sampled_from(["..", ".", "%2e%2e", "%2f", "%5c", "\\", "%25", "/", "%00"])),
        max_size=8,
    )
)
def test_accepted_paths_always_stay_inside_the_root(parts):
    raw = "/".join(parts)
    try:
        path = decode_path(raw)
    except BadRequest:
        return
    import posixpath

    assert not path.startswith("/")
    assert "\\" not in path and "\x00" not in path
    segments = path.rstrip("/").split("/") if path.rstrip("/") else []
    assert all(s not in ("", ".", "..") for s in segments)
    resolved = posixpath.normpath(posixpath.join("/root", path or "."))
    assert resolved == "/root" or resolved.startswith("/root/")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abcXYZ019-_.~ ", min_size=1, max_size=10).filter(lambda s: s not in (".", "..")),
        min_size=1,
        max_size=5,
    )
)
def test_ordinary_paths_round_trip_through_percent_encoding(parts):
    from urllib.parse import quote

    path = "/".join(parts)
    assert decode_path("/".join(quote(p, safe="") for p in parts)) == path
