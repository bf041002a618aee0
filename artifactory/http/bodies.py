"""Request bodies read with a size limit, and JSON from outside parsed within bounds (`loads`).

Every JSON body the core reads goes through `read_json`: a body over the limit answers 413 before it
is buffered (by Content-Length when the client sends one, else while it streams), and input nested
deeper than MAX_DEPTH answers 400 rather than exhausting the interpreter's recursion limit. Formats
parse theirs with the same `loads` (on the facade).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from artifactory.http.errors import BadRequest, PayloadTooLarge
from artifactory.text import ascii_digits

ADMIN_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 64  # npm's most baroque `exports` map nests far less
MAX_VALUES = 1_000_000  # values outside strings; an npm publish holds a few hundred


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not ascii_digits(declared):
            raise BadRequest("malformed Content-Length")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    return bytes(body)


class InvalidJSON(BadRequest, ValueError):
    """JSON from outside that cannot be used: a 400 where a client sent it, and a ValueError (an
    unusable document, `Format.parse`) where it came from an upstream."""


class DocumentTooComplex(InvalidJSON):
    """JSON nested too deeply, or holding too many values, to be parsed and used safely."""


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels (an iterative walk: it never recurses)."""
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        kind = type(node)
        if kind is not dict and kind is not list:
            continue
        if depth > limit:
            return True
        for child in node.values() if kind is dict else node:
            child_kind = type(child)
            if child_kind is dict or child_kind is list:
                push((child, depth + 1))
    return False


def _values_outside_strings(body: bytes) -> int:
    """Separators and containers outside JSON strings: at least the number of values less one."""
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(plain.split(b'"')[::2])
    return sum(outside.count(c) for c in (b",", b"[", b"{"))


def loads(
    raw: bytes | str,
    what: str = "the request body",
    *,
    depth: int = MAX_DEPTH,
    max_values: int | None = MAX_VALUES,
    allow_nul: bool = False,
) -> Any:
    """json.loads for JSON from outside (request bodies, upstream documents), within bounds:
    InvalidJSON (a 400, and a ValueError) naming `what` when it is not JSON (NaN and Infinity are
    not), nests deeper than `depth` (`json` itself would recurse until RecursionError, and a
    document a little less deep parses but cannot be written out again), holds more than
    `max_values` values (None: no bound; a 64 MiB body of `[{},{},...]` would become gigabytes of
    objects), or, unless `allow_nul`, a NUL character in a string (PostgreSQL cannot store it)."""
    data = raw.encode() if isinstance(raw, str) else raw
    if max_values is not None:
        # A quick upper bound first (it counts separators inside strings too), the exact count only
        # when that bound is over the limit.
        rough = data.count(b",") + data.count(b"[") + data.count(b"{")
        if rough > max_values and _values_outside_strings(data) > max_values:
            raise DocumentTooComplex(f"{what} holds more than {max_values} JSON values")
    if not allow_nul and b"\\u0000" in data:
        raise InvalidJSON(f"{what} is not valid JSON here: it holds a NUL character in a string")
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise DocumentTooComplex(f"{what} is nested more than {depth} levels deep") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidJSON(f"{what} is not valid JSON: {exc}") from None
    if nested_deeper_than(value, depth):
        raise DocumentTooComplex(f"{what} is nested more than {depth} levels deep")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request, limit: int = ADMIN_BODY_BYTES) -> Any:
    raw = await read_body(request, limit)
    return loads(raw or b"null")
