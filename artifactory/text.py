"""Numbers in text that comes from outside: headers, query strings, paths, documents.

`str.isdigit()` says yes to far more than 0-9: to "²" and "①", on which `int()` fails (a 500
where a 400 belongs), and to "٣" or "३", which `int()` reads as 3. HTTP, URLs and every version
scheme we serve write numbers in ASCII digits only, so `ascii_digits` is the one test the code asks
of text before `int()`; a test keeps `isdigit()` out of the rest of the tree.
"""

from __future__ import annotations


def ascii_digits(text: str) -> bool:
    """Whether `text` is one or more of the ASCII digits 0-9."""
    return text.isascii() and text.isdigit()


__all__ = ["ascii_digits"]
