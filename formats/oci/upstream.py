"""Talking to an upstream registry: its URL layout, its Bearer token challenge, and the Accept header
manifests need.

`RegistryAuth` is the httpx.Auth a proxy's upstream client uses. The engine asks a proxy's upstream
for a repository path below the configured URL (`<root>/<image>/manifests/v1`, and for the index
documents `<root>/<image>/tags/list` and `<root>/<image>/referrers/<digest>`); a registry serves them
at `<root>/v2/<image>/...`, with `default_namespace` put before a single-segment image, so each request
is moved there before it is sent (`registry_url`). Only paths of that origin below the configured URL
are moved, and never one already at `<root>/v2/` (an image of a proxy may therefore not start with
`v2/`; with a configured URL ending in `/v2` moving is idempotent), so a redirect the upstream answers
is followed as it is. On a 401 with
`WWW-Authenticate: Bearer realm=...,service=...,scope=...` it fetches a token from the realm (with the
proxy's username/password as Basic credentials when configured, anonymously otherwise), remembers it
per scope until it expires, and retries. A Basic challenge is answered with the configured
credentials. Manifest requests get the Accept header that lists every manifest type we store, without
which registries answer 404 for OCI manifests or down-convert them.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from artifactory_formats.oci.coordinates import locate
from artifactory_formats.oci.metadata import ACCEPT_MANIFESTS, OCI_INDEX

from artifactory.plugin import Lru

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_IMAGE = re.compile(r"^/v2/(?P<image>.+)/(?:manifests|blobs|tags|referrers)/")
DEFAULT_TOKEN_SECONDS = 60
TOKENS_KEPT = 1024


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(rest)}


def accept_for(url: httpx.URL) -> str | None:
    path = url.path
    if "/manifests/" in path:
        return ACCEPT_MANIFESTS
    if "/referrers/" in path:
        return OCI_INDEX
    return None


def registry_root(config: Mapping[str, Any]) -> str:
    """The upstream registry's root URL (without a trailing slash or `/v2`)."""
    root = str(config["url"]).rstrip("/")
    return root[: -len("/v2")] if root.endswith("/v2") else root


def registry_url(config: Mapping[str, Any], path: str) -> str | None:
    """Where the upstream registry serves a repository path (see coordinates for the layout)."""
    located = locate(path)
    if located is None:
        return None
    image = located.image
    namespace = str(config.get("default_namespace") or "").strip("/")
    if namespace and "/" not in image:
        image = f"{namespace}/{image}"
    root = registry_root(config)
    if located.kind == "tags":
        return f"{root}/v2/{quote(image)}/tags/list"
    folder = {"blob": "blobs", "manifest": "manifests", "referrers": "referrers"}[located.kind]
    return f"{root}/v2/{quote(image)}/{folder}/{quote(located.reference, safe=':')}"


class RegistryAuth(httpx.Auth):
    def __init__(self, config: Mapping[str, Any]) -> None:
        username, password = config.get("username"), config.get("password")
        self.basic = httpx.BasicAuth(str(username), str(password or "")) if username else None
        self.config = dict(config)
        self._base = httpx.URL(str(config["url"]).rstrip("/") + "/")  # what the engine puts paths below
        # image (or "") -> (token, expires): a proxy may pull from any number of images
        self._tokens: Lru[str, tuple[str, float]] = Lru(TOKENS_KEPT)

    @staticmethod
    def _image(url: httpx.URL) -> str:
        match = _IMAGE.match(url.path)
        return match["image"] if match else ""

    def _locate(self, request: httpx.Request) -> None:
        """Move a repository path below the configured URL to where the registry serves it."""
        url, base = request.url, self._base
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            return
        if not url.path.startswith(base.path) or url.path.startswith(base.path + "v2/"):
            return
        moved = registry_url(self.config, unquote(url.path[len(base.path) :]))
        if moved is not None:
            request.url = httpx.URL(moved, params=url.params)

    def _prepare(self, request: httpx.Request) -> None:
        self._locate(request)
        accept = accept_for(request.url)
        if accept:  # the proxy itself sends only httpx's default (*/*)
            request.headers["Accept"] = accept
        cached = self._tokens.get(self._image(request.url))
        if cached and cached[1] > time.monotonic():
            request.headers["Authorization"] = f"Bearer {cached[0]}"

    def _token_request(self, params: Mapping[str, str], original: httpx.Request) -> httpx.Request:
        query = {k: v for k, v in params.items() if k in ("service", "scope") and v}
        if "scope" not in query:
            image = self._image(original.url)
            if image:
                query["scope"] = f"repository:{image}:pull"
        request = httpx.Request("GET", params["realm"], params=query)
        if self.basic is not None and _realm_is_safe(params["realm"], original.url):
            request.headers["Authorization"] = self.basic._auth_header
        return request

    def _remember(self, original: httpx.Request, payload: Any) -> str | None:
        if not isinstance(payload, dict):
            return None
        token = payload.get("token") or payload.get("access_token")
        if not isinstance(token, str) or not token:
            return None
        seconds = payload.get("expires_in")
        lifetime = (
            float(seconds) if isinstance(seconds, int | float) and seconds > 0 else DEFAULT_TOKEN_SECONDS
        )
        self._tokens.put(self._image(original.url), (token, time.monotonic() + max(lifetime - 10, 5)))
        return token

    def _retry(self, request: httpx.Request, token: str) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self._prepare(request)
        response = yield request
        if response.status_code != 401 or not _same_origin(response.url, request.url):
            # A challenge is answered only for the registry asked: a host it redirected to (blob
            # storage, say) that answers 401 gets neither the proxy's password nor a token of it.
            return
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        if scheme == "basic" and self.basic is not None:
            request.headers["Authorization"] = self.basic._auth_header
            yield request
            return
        if scheme != "bearer" or not params.get("realm"):
            return
        token_response = yield self._token_request(params, request)
        await token_response.aread()
        if token_response.status_code != 200:
            return
        try:
            token = self._remember(request, token_response.json())
        except ValueError:
            return
        if token:
            yield self._retry(request, token)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Proxies fetch with the core's AsyncClient only; one flow to keep right is enough.
        raise NotImplementedError("RegistryAuth answers challenges for async clients only")


def _same_origin(one: httpx.URL, other: httpx.URL) -> bool:
    return (one.scheme, one.host, one.port) == (other.scheme, other.host, other.port)


def _realm_is_safe(realm: str, origin: httpx.URL) -> bool:
    """Send the proxy's credentials to a token realm only over TLS, or to the upstream host itself."""
    parts = urlsplit(realm)
    return parts.scheme == "https" or parts.hostname == origin.host
