"""JSON from outside (request bodies, upstream documents), parsed within bounds.

Python's parser recurses once per nesting level, so a body of 100k `[` would end in RecursionError
(a 500), and a document nested a little less deeply than that parses but cannot be written back out.
`loads` refuses both with 400: anything nested deeper than `max_depth`, and (for client documents)
more than `max_values` values, which keeps a 64 MiB body of `[{},{},...]` from becoming gigabytes
of Python objects.
"""

from __future__ import annotations

import json
from typing import Any

from artifactory.plugin import BadRequest

# npm documents nest a handful of levels (document, versions, manifest, a field such as exports);
# 64 leaves plenty of room for the most baroque `exports` map.
MAX_DEPTH = 64
# Values outside strings in a client document (a publish holds a few hundred).
MAX_VALUES = 1_000_000


class DocumentTooComplex(BadRequest):
    pass


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
    body: bytes | str,
    what: str = "the request body",
    max_depth: int = MAX_DEPTH,
    max_values: int | None = MAX_VALUES,
) -> Any:
    """Parse `body`; BadRequest (400) naming `what` when it is not JSON, too deep or too big."""
    if max_values is not None:
        raw = body.encode() if isinstance(body, str) else body
        # A quick upper bound first (it counts separators inside strings too), the exact count only
        # when that bound is over the limit.
        rough = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
        if rough > max_values and _values_outside_strings(raw) > max_values:
            raise DocumentTooComplex(f"{what} holds more than {max_values} JSON values")
    try:
        value = json.loads(body)
    except RecursionError:
        raise DocumentTooComplex(f"{what} is nested more than {max_depth} levels deep") from None
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(f"{what} is not valid JSON") from None
    if nested_deeper_than(value, max_depth):
        raise DocumentTooComplex(f"{what} is nested more than {max_depth} levels deep")
    return value
