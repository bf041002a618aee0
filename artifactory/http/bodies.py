"""Request bodies read with a size limit and JSON parsed without letting the input choose the stack depth.

Every JSON body the core reads goes through `read_json`: a body over the limit answers 413 before it
is buffered (by Content-Length when the client sends one, else while it streams), and input nested
deeper than MAX_DEPTH answers 400 rather than exhausting the interpreter's recursion limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from artifactory.http.errors import BadRequest, PayloadTooLarge

ADMIN_BODY_BYTES = 1024 * 1024
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(r"[\[\]{}]")
MAX_DEPTH = 64


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("malformed Content-Length")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    return bytes(body)


def nesting_depth_exceeds(raw: bytes | str, depth: int = MAX_DEPTH) -> bool:
    """Whether JSON text opens more than `depth` arrays/objects at once (brackets in strings do not count)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    level = 0
    for match in _BRACKETS.finditer(_STRINGS.sub("", text)):
        if match.group() in "[{":
            level += 1
            if level > depth:
                return True
        else:
            level -= 1
    return False


def loads(raw: bytes | str, depth: int = MAX_DEPTH) -> Any:
    """json.loads that refuses deep nesting and non-finite numbers with BadRequest."""
    if nesting_depth_exceeds(raw, depth):
        raise BadRequest(f"malformed JSON: nested deeper than {depth} levels")
    if (b"\\u0000" in raw) if isinstance(raw, bytes) else ("\\u0000" in raw):
        raise BadRequest("malformed JSON: NUL characters are not allowed in strings")
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request, limit: int = ADMIN_BODY_BYTES) -> Any:
    raw = await read_body(request, limit)
    return loads(raw or b"null")
