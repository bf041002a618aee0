"""Absolute URLs handed to clients: links, tarball URLs, upload Locations, token realms.

Built from the configured external URL when there is one; else from X-Forwarded-Proto/-Host/-Prefix
when the peer is a trusted reverse proxy; else from the request itself.
"""

from __future__ import annotations

from starlette.requests import Request


def base_url(request: Request) -> str:
    """The server's absolute base URL, without a trailing slash."""
    cached = request.scope.get("artifactory.base_url")
    if cached is not None:
        return str(cached)
    settings = request.app.state.artifactory.settings
    if settings.external_url:
        url = settings.external_url.rstrip("/")
    else:
        scheme = request.scope.get("scheme", "http")  # not request.url: building it costs more
        host = request.headers.get("host") or f"{settings.host}:{settings.port}"
        prefix = ""
        peer = request.client.host if request.client else ""
        if settings.trusted_proxies and ("*" in settings.trusted_proxies or peer in settings.trusted_proxies):
            scheme = _first(request.headers.get("x-forwarded-proto")) or scheme
            host = _first(request.headers.get("x-forwarded-host")) or host
            prefix = (_first(request.headers.get("x-forwarded-prefix")) or "").rstrip("/")
            if prefix and not prefix.startswith("/"):
                prefix = "/" + prefix
        url = f"{scheme}://{host}{prefix}"
    request.scope["artifactory.base_url"] = url
    return url


def repository_url(request: Request, repository: str) -> str:
    """Where a repository's format routes live, with a trailing slash."""
    return f"{base_url(request)}/repository/{repository}/"


def _first(value: str | None) -> str:
    return value.split(",")[0].strip() if value else ""
