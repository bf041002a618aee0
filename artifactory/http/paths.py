"""Path checks, done once on the raw request path after a single percent-decode.

Refused everywhere: `..` and `.` segments in any spelling, backslashes, NUL and other control
characters, absolute or empty segments, and encoded `/` or `\\` (except the encodings a format's
protocol defines) or a `%` still present after one decode (double encoding).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from artifactory.db.models import MAX_PATH
from artifactory.http.errors import BadRequest

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENCODED = re.compile(r"%([0-9A-Fa-f]{2})")


def decode_path(raw: str, allowed_encoded: frozenset[str] = frozenset()) -> str:
    """Decode a raw (still percent-encoded) repository-relative path and check it.

    `allowed_encoded` holds characters (such as "/") that may appear percent-encoded because the
    protocol gives that encoding a meaning; they come back encoded (upper-case) in the result.
    """
    if len(raw) > MAX_PATH * 3:
        raise BadRequest("path too long")
    keep: dict[str, str] = {}
    for match in _ENCODED.finditer(raw):
        char = chr(int(match.group(1), 16))
        if char in "/\\" and char not in allowed_encoded:
            raise BadRequest(f"encoded {'slash' if char == '/' else 'backslash'} in path")
    for char in allowed_encoded:
        keep[char] = f"%{ord(char):02X}"
    placeholder = raw
    for char, encoded in keep.items():
        placeholder = re.sub(
            re.escape(encoded), "\x00KEEP" + str(ord(char)) + "\x00", placeholder, flags=re.I
        )
    try:
        decoded = unquote(placeholder, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("path is not valid UTF-8") from None
    for char, encoded in keep.items():
        decoded = decoded.replace("\x00KEEP" + str(ord(char)) + "\x00", encoded)
    return check_path(decoded, allowed_encoded)


def check_path(path: str, allowed_encoded: frozenset[str] = frozenset()) -> str:
    """Check an already decoded repository-relative path; returns it unchanged when it is safe."""
    allowed = {f"%{ord(char):02X}" for char in allowed_encoded}
    leftover = _ENCODED.sub(lambda m: "" if m.group(0).upper() in allowed else "%", path)
    if "%" in leftover:
        raise BadRequest("percent sign left in path after decoding (double encoding?)")
    if _CONTROL.search(path):
        raise BadRequest("control character in path")
    if "\\" in path:
        raise BadRequest("backslash in path")
    if path.startswith("/"):
        raise BadRequest("absolute path")
    stripped = path
    if len(stripped) > MAX_PATH:
        raise BadRequest(f"path longer than {MAX_PATH} characters")
    body = stripped[:-1] if stripped.endswith("/") else stripped
    if not body:
        return ""
    for segment in body.split("/"):
        if segment in ("", ".", ".."):
            raise BadRequest("empty, '.' or '..' segment in path")
        if len(segment) == 2 and segment[1] == ":" and segment[0].isalpha():
            raise BadRequest("drive letter in path")
    return stripped
