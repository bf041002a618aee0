"""httpx clients for proxy repositories.

TLS trusts the system CA store (OpenSSL's default paths, which honour SSL_CERT_FILE and SSL_CERT_DIR,
as corporate networks with their own CA need), never certifi alone, plus an optional per-proxy CA
bundle. One client per proxy configuration, reused across requests for connection pooling.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import httpcore  # noqa: F401 - httpx imports it with the first client: at startup, not in a request
import httpx

from artifactory import __version__

USER_AGENT = f"artifactory/{__version__}"


@functools.lru_cache(maxsize=64)
def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """One context per CA bundle, shared by every client that trusts it: loading the system CA store
    takes tens of milliseconds, too long for the first request through a new proxy to wait."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cadata=ca_bundle)
    return context


class UpstreamClients:
    """Caches one AsyncClient per (repository, revision of its config)."""

    def __init__(self) -> None:
        self._clients: dict[int, tuple[tuple[Any, ...], httpx.AsyncClient]] = {}
        self._retired: list[httpx.AsyncClient] = []
        ssl_context(None)  # the system CA store, loaded at startup rather than by a proxy's first request

    def get(
        self,
        repository_id: int,
        config: Mapping[str, Any],
        auth_factory: Callable[[Mapping[str, Any]], httpx.Auth | None] | None = None,
    ) -> httpx.AsyncClient:
        """The client for a proxy; `auth_factory` (a format's `upstream_auth`) may supply an httpx.Auth
        that answers the upstream's own challenges (such as a registry's Bearer token flow)."""
        key = (
            config.get("url"),
            config.get("username"),
            config.get("password"),
            config.get("ca_bundle"),
            config.get("timeout_seconds"),
        )
        entry = self._clients.get(repository_id)
        if entry is not None and entry[0] == key:
            return entry[1]
        timeout = float(config.get("timeout_seconds") or 30.0)
        auth = auth_factory(config) if auth_factory is not None else None
        if auth is None and config.get("username"):
            auth = httpx.BasicAuth(str(config["username"]), str(config.get("password") or ""))
        client = httpx.AsyncClient(
            verify=ssl_context(config.get("ca_bundle") or None),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=True,
            auth=auth,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            trust_env=False,
        )
        self._clients[repository_id] = (key, client)
        if entry is not None:
            self._retired.append(entry[1])
        return client

    async def close(self) -> None:
        for _key, client in self._clients.values():
            await client.aclose()
        for client in self._retired:
            await client.aclose()
        self._clients.clear()
        self._retired.clear()
