"""Clients for proxy repositories' upstreams.

TLS trusts the system CA store (OpenSSL's default paths, which honour SSL_CERT_FILE and SSL_CERT_DIR,
as corporate networks with their own CA need), never certifi alone, plus an optional per-proxy CA
bundle. One client per proxy configuration, reused across requests for connection pooling. The
proxies' own connections (`Pool`) are shared by every proxy of the same upstream origin that trusts
the same CAs: a proxy created or reconfigured later, or a second proxy of the same host, reuses the
connections the others keep alive instead of opening its own.

A proxy's own GETs (`Fetcher`) go over this package's own HTTP/1.1 connections (`network.py`: asyncio
protocols and httptools' C parser): httpx and the httpcore pool beneath it cost several times the
CPU of the transfer of a small file on a nearby upstream. The fetcher does the little of httpx a
proxy needs itself: redirects (at most MAX_REDIRECTS, credentials only while they stay on the
upstream's origin, as httpx does), HTTP Basic credentials, gzip and deflate bodies, timeouts (each
wait for the upstream's bytes, and the status line and headers of an answer, its redirects
included, as a whole). A format whose upstream answers with its own challenges
(`Format.upstream_auth`, a registry's Bearer token flow) is fetched through the httpx client, which
answers them; so are a format's own requests (`UpstreamClients.get`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, urljoin, urlsplit

import httpx

from artifactory import __version__
from artifactory.upstream.network import Pool, UpstreamError

__all__ = ["UpstreamError"]  # defined with the connections that raise it

USER_AGENT = f"artifactory/{__version__}"
MAX_REDIRECTS = 20  # httpx's default
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECT_BODY = 64 * 1024  # read to keep the connection; a longer one closes it
# The most bytes a compressed body inflates to at once, however well it compresses: a few hundred
# KiB of zeros inflate to hundreds of MiB, which no limit of its reader's would see in time.
MAX_DECODED_CHUNK = 256 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
TARGET_SAFE = "/%:@!$&'()*+,;=~?[]"


@functools.lru_cache(maxsize=64)
def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """One context per CA bundle, shared by every client that trusts it: loading the system CA store
    takes tens of milliseconds, too long for the first request through a new proxy to wait."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cadata=ca_bundle)
    return context


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts, port = _split(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def _split(url: str) -> tuple[SplitResult, int | None]:
    """The URL's parts and the port it names, if any. A URL that cannot be read (`http://[`, a port
    past 65535), as an upstream's redirect or document may name, is an UpstreamError: the
    upstream's fault, not ours."""
    try:
        parts = urlsplit(url)
        return parts, parts.port
    except ValueError:
        raise UpstreamError(f"InvalidURL: cannot fetch {url!r}") from None


def _redirect_target(url: str, location: str) -> str:
    """The URL that a redirect from `url` names in its Location (which may be relative)."""
    try:
        return urljoin(url, location.strip())
    except ValueError:
        raise UpstreamError(f"InvalidURL: the upstream redirected to {location!r}") from None


def _keeps_credentials(previous: str, following: str) -> bool:
    """Whether a redirect from `previous` to `following` keeps the Authorization header: on the same
    origin, or from http to https on the same host's default ports (httpx's rule)."""
    before, after = origin(previous), origin(following)
    return before == after or (before == ("http", after[1], 80) and after[0] == "https" and after[2] == 443)


@dataclass
class UpstreamResponse:
    """An upstream's answer whose body has not been read: `chunks()` yields it decoded (gzip,
    deflate), `aclose()` hands the connection back (always call it). `url` is the last one asked
    for, after redirects; `headers` has lower-case names (repeated headers joined with ", ")."""

    status_code: int
    headers: dict[str, str]
    url: str
    _chunks: AsyncIterator[bytes]
    _close: Callable[[], Awaitable[None]]

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aclose(self) -> None:
        await self._close()

    async def read(self, limit: int) -> bytes:
        """The whole body, or UpstreamError past `limit` bytes; the response is closed either way."""
        body = bytearray()
        try:
            async for chunk in self._chunks:
                body += chunk
                if len(body) > limit:
                    raise UpstreamError(f"TooLarge: the answer is larger than {limit} bytes")
        finally:
            await self.aclose()
        return bytes(body)


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _decoder(encoding: str) -> Any:
    """A zlib decompressor for the body's Content-Encoding, or None to pass it through (identity,
    and, as httpx does, an encoding it does not know). Decompressors are called as
    `decompress(data, max_length)`, and have `unconsumed_tail` and `eof`."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Deflate()
    return None


class _Deflate:
    """'deflate' as servers send it: zlib-wrapped, or (against the RFC) raw."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()
        self._first = True

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail

    @property
    def eof(self) -> bool:
        return self._inner.eof

    def decompress(self, data: bytes, max_length: int) -> bytes:
        first, self._first = self._first, False
        try:
            return self._inner.decompress(data, max_length)
        except zlib.error:
            if not first:
                raise
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._inner.decompress(data, max_length)


class Fetcher:
    """GETs for one proxy: over the connections it shares with the proxies of its upstream (`Pool`),
    or through `challenged` (the httpx client with the format's upstream auth) when the format
    answers the upstream's challenges itself."""

    def __init__(
        self,
        base_url: str,
        pool: Pool,
        timeout: float,
        authorization: str | None,
        challenged: httpx.AsyncClient | None,
    ) -> None:
        self.base_url = base_url
        self._origin = origin(base_url)
        self.pool = pool
        self._timeouts = {"connect": min(timeout, 10.0), "read": timeout, "write": timeout, "pool": timeout}
        self._authorization = authorization
        self._challenged = challenged

    async def get(self, url: str, headers: Mapping[str, str]) -> UpstreamResponse:
        """GET `url` (absolute), following redirects. The proxy's credentials go only to its
        upstream's origin, never to an absolute link that an upstream document names on another
        host. The status line and headers of the answer, redirects included, arrive within the
        timeout, however slowly the upstream drips them. UpstreamError when the upstream cannot be
        reached, breaks the protocol, is too slow, or names a URL that cannot be fetched."""
        if self._challenged is not None:
            return await self._get_challenged(url, headers)
        deadline = asyncio.get_running_loop().time() + self._timeouts["read"]
        authorization = self._authorization if origin(url) == self._origin else None
        for _hop in range(MAX_REDIRECTS + 1):
            response = await self._send(url, headers, authorization, deadline)
            location = response.headers.get("location")
            if response.status_code not in REDIRECTS or not location:
                return response
            await self._drain(response, deadline)
            following = _redirect_target(url, location)
            if authorization is not None and not _keeps_credentials(url, following):
                authorization = None
            url = following
        raise UpstreamError(f"TooManyRedirects: more than {MAX_REDIRECTS} redirects from {self.base_url}")

    async def _send(
        self, url: str, headers: Mapping[str, str], authorization: str | None, deadline: float
    ) -> UpstreamResponse:
        parts, port = _split(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise UpstreamError(f"UnsupportedProtocol: cannot fetch {url!r}")
        try:
            host = parts.hostname.encode("ascii")
        except UnicodeEncodeError:
            try:
                host = parts.hostname.encode("idna")
            except UnicodeError:
                raise UpstreamError(f"InvalidURL: cannot fetch {url!r}") from None
        shown = f"[{host.decode()}]" if b":" in host else host.decode()
        if port is not None and port != DEFAULT_PORTS[scheme]:
            shown = f"{shown}:{port}"
        target = quote(parts.path or "/", safe=TARGET_SAFE)
        if parts.query:
            target = f"{target}?{quote(parts.query, safe=TARGET_SAFE)}"
        raw = [(b"User-Agent", USER_AGENT.encode())]
        if not any(name.lower() == "accept" for name in headers):
            raw.append((b"Accept", b"*/*"))  # as httpx sends by default
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if authorization is not None:
            raw.append((b"Authorization", authorization.encode("latin-1")))
        origin = (scheme, host.decode("ascii"), port or DEFAULT_PORTS[scheme])
        host_header, target_bytes = shown.encode("ascii"), target.encode("ascii")
        answer = await self.pool.get(origin, host_header, target_bytes, raw, self._timeouts, deadline)
        found = _headers(answer.headers)
        body = _body(answer.chunks(), found.get("content-encoding", ""))
        return UpstreamResponse(answer.status, found, url, body, answer.aclose)

    @staticmethod
    async def _drain(response: UpstreamResponse, deadline: float) -> None:
        """Read a redirect's short body so its connection can serve the next hop, by the deadline
        of the answer's headers (the next hop's are still to come)."""
        try:
            async with asyncio.timeout_at(deadline):
                await response.read(MAX_REDIRECT_BODY)
        except UpstreamError:
            pass
        except TimeoutError:
            raise UpstreamError("ReadTimeout: the upstream's answer did not begin by its deadline") from None

    async def _get_challenged(self, url: str, headers: Mapping[str, str]) -> UpstreamResponse:
        client = self._challenged
        assert client is not None
        same_origin = origin(url) == self._origin
        try:
            async with asyncio.timeout(self._timeouts["read"]):  # the challenges and redirects too
                request = client.build_request("GET", url, headers=dict(headers))
                if same_origin:
                    response = await client.send(request, stream=True)
                else:  # an absolute link to another host: the upstream's credentials are not for it
                    response = await client.send(request, stream=True, auth=None)
        except TimeoutError:
            raise UpstreamError("ReadTimeout: the upstream's answer did not begin by its deadline") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from None
        found = {k.lower(): v for k, v in response.headers.items()}
        return UpstreamResponse(
            response.status_code,
            found,
            str(response.url),
            _body(_httpx_body(response), found.get("content-encoding", "")),
            response.aclose,
        )


def _body(chunks: AsyncIterator[bytes], encoding: str) -> AsyncIterator[bytes]:
    """A body's bytes decoded for its Content-Encoding."""
    decoder = _decoder(encoding)
    return chunks if decoder is None else _decoded(chunks, decoder)


async def _decoded(chunks: AsyncIterator[bytes], decoder: Any) -> AsyncIterator[bytes]:
    """`chunks` inflated, at most MAX_DECODED_CHUNK bytes at a time. A compressed stream that stops
    before its end is an error, not a shorter body (an empty body is no stream at all)."""
    fed = False
    try:
        async for chunk in chunks:
            fed = fed or bool(chunk)
            while True:
                decoded = decoder.decompress(chunk, MAX_DECODED_CHUNK)
                if decoded:
                    yield decoded
                chunk = decoder.unconsumed_tail
                if not chunk and len(decoded) < MAX_DECODED_CHUNK:  # else zlib may hold more output
                    break
    except zlib.error as exc:
        raise UpstreamError(f"DecodingError: {exc}") from None
    if fed and not decoder.eof:
        raise UpstreamError("DecodingError: the compressed body is cut short")


async def _httpx_body(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it came (decoded by `_body`, as the proxy's own connections' bodies are)."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except (httpx.HTTPError, OSError) as exc:
        raise UpstreamError(f"{type(exc).__name__}: {exc}") from None


def _limits_key(config: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        config.get("url"),
        config.get("username"),
        config.get("password"),
        config.get("ca_bundle"),
        config.get("timeout_seconds"),
    )


class UpstreamClients:
    """One httpx AsyncClient and one Fetcher per (repository, the config they are built from); the
    fetchers of proxies of one upstream origin that trust the same CAs share one `Pool`."""

    def __init__(self) -> None:
        self._clients: dict[int, tuple[tuple[Any, ...], httpx.AsyncClient]] = {}
        self._fetchers: dict[int, tuple[tuple[Any, ...], Fetcher]] = {}
        # By (CA bundle, the upstream's origin): credentials travel per request, never with a connection.
        self._pools: dict[tuple[str | None, tuple[str, str, int | None]], Pool] = {}
        self._retired: list[httpx.AsyncClient] = []
        ssl_context(None)  # the system CA store, loaded at startup rather than by a proxy's first request

    def get(
        self,
        repository_id: int,
        config: Mapping[str, Any],
        auth_factory: Callable[[Mapping[str, Any]], httpx.Auth | None] | None = None,
    ) -> httpx.AsyncClient:
        """The httpx client for a proxy; `auth_factory` (a format's `upstream_auth`) may supply an
        httpx.Auth that answers the upstream's own challenges (such as a registry's Bearer token flow)."""
        key = _limits_key(config)
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

    def fetcher(
        self,
        repository_id: int,
        config: Mapping[str, Any],
        auth_factory: Callable[[Mapping[str, Any]], httpx.Auth | None] | None = None,
    ) -> Fetcher:
        """The proxy's GETs: `Fetcher`. A format's `auth_factory` that supplies an httpx.Auth, or
        credentials in the URL itself, send them through the httpx client instead."""
        key = _limits_key(config)
        entry = self._fetchers.get(repository_id)
        if entry is not None and entry[0] == key:
            return entry[1]
        url = str(config["url"])
        timeout = float(config.get("timeout_seconds") or 30.0)
        challenged = None
        if (auth_factory is not None and auth_factory(config) is not None) or urlsplit(url).username:
            challenged = self.get(repository_id, config, auth_factory)
        authorization = None
        if config.get("username"):
            pair = f"{config['username']}:{config.get('password') or ''}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        pool = self._pool(config.get("ca_bundle") or None, url)
        fetcher = Fetcher(url, pool, timeout, authorization, challenged)
        self._fetchers[repository_id] = (key, fetcher)
        return fetcher

    def _pool(self, ca_bundle: str | None, url: str) -> Pool:
        """The connections to `url`'s origin for proxies that trust `ca_bundle` (and the system CAs):
        at most 64 in use at once and 16 kept alive, whichever proxy of that upstream asks."""
        key = (ca_bundle, origin(url))
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = Pool(ssl_context(ca_bundle), max_connections=64, max_keepalive=16)
        return pool

    async def close(self) -> None:
        for _key, client in self._clients.values():
            await client.aclose()
        for pool in self._pools.values():
            await pool.aclose()
        for retired in self._retired:
            await retired.aclose()
        self._clients.clear()
        self._fetchers.clear()
        self._pools.clear()
        self._retired.clear()
