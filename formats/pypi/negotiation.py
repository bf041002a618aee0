"""PEP 691 content negotiation: JSON or HTML by `Accept`, with `?format=` as a fallback."""

from __future__ import annotations

from artifactory_formats.pypi.metadata import HTML_TYPE, JSON_TYPE

TEXT_HTML = "text/html"
_KNOWN = {
    JSON_TYPE: JSON_TYPE,
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    HTML_TYPE: HTML_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_TYPE,
    TEXT_HTML: TEXT_HTML,
}
_WILDCARDS = {"*/*": TEXT_HTML, "text/*": TEXT_HTML, "application/*": JSON_TYPE}
# When two types have the same quality, the richer one wins.
_PREFERENCE = (JSON_TYPE, HTML_TYPE, TEXT_HTML)


def _parse(header: str) -> list[tuple[str, float]]:
    found: list[tuple[str, float]] = []
    for item in header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        found.append((media.lower(), quality))
    return found


def choose(accept: str | None, format_query: str | None) -> str | None:
    """The media type to answer with, or None when the client accepts none of ours (406)."""
    if format_query:
        # A "+" in a query string arrives as a space when the client did not escape it.
        accept = format_query.replace(" ", "+")
    if not accept or not accept.strip():
        return TEXT_HTML
    best: dict[str, float] = {}
    for media, quality in _parse(accept):
        chosen = _KNOWN.get(media) or _WILDCARDS.get(media)
        if chosen is not None and quality > 0:
            best[chosen] = max(best.get(chosen, 0.0), quality)
    if not best:
        return None
    return max(best, key=lambda media: (best[media], -_PREFERENCE.index(media)))
