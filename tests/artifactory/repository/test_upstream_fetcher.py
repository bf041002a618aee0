"""The proxy's own GETs (`artifactory.upstream.client.Fetcher`, straight on httpcore): redirects,
credentials only on the upstream's origin, compressed bodies, failures as UpstreamError."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from artifactory.upstream.client import MAX_REDIRECTS, UpstreamClients, UpstreamError


@contextmanager
def serving(
    routes: dict[str, tuple[int, dict[str, str], bytes]],
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A loopback server answering `routes` (path -> status, headers, body), recording each
    request's headers (lower-case names) with its path under "path"."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            status, headers, body = routes.get(self.path, (404, {}, b"no"))
            time.sleep(float(headers.get("X-Sleep", 0)))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value.replace("{base}", base))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if "X-Close" in headers:  # without saying so: the client finds out when it reuses it
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, seen
    finally:
        server.shutdown()
        server.server_close()


async def fetch(
    config: dict[str, object], url: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    clients = UpstreamClients()
    try:
        response = await clients.fetcher(1, config).get(url, headers or {})
        return response.status_code, await response.read(1024 * 1024)
    finally:
        await clients.close()


def test_credentials_follow_redirects_on_the_upstreams_origin_only():
    with serving({}) as (elsewhere, elsewhere_seen):
        routes = {
            "/a": (302, {"Location": "/b"}, b""),
            "/b": (301, {"Location": f"{elsewhere}/c"}, b"moved"),
        }
        with serving(routes) as (base, seen):
            config = {"url": base + "/", "username": "u", "password": "p"}
            status, _body = asyncio.run(fetch(config, base + "/a"))
    assert status == 404  # the last hop's answer
    assert [r["path"] for r in seen] == ["/a", "/b"]
    assert all(r["authorization"] == "Basic dTpw" for r in seen)
    assert [r["path"] for r in elsewhere_seen] == ["/c"] and "authorization" not in elsewhere_seen[0]


def test_a_link_to_another_host_gets_no_credentials():
    with serving({"/f": (200, {}, b"file")}) as (elsewhere, elsewhere_seen):
        with serving({}) as (base, _seen):
            config = {"url": base + "/", "username": "u", "password": "p"}
            assert asyncio.run(fetch(config, elsewhere + "/f")) == (200, b"file")
    assert "authorization" not in elsewhere_seen[0]


def test_a_gzip_body_is_decoded_and_the_request_headers_are_sent():
    body = gzip.compress(b"<html>index</html>")
    with serving({"/simple/": (200, {"Content-Encoding": "gzip"}, body)}) as (base, seen):
        answer = asyncio.run(fetch({"url": base + "/"}, base + "/simple/", {"Accept-Encoding": "gzip"}))
    assert answer == (200, b"<html>index</html>")
    assert seen[0]["accept-encoding"] == "gzip" and seen[0]["user-agent"].startswith("artifactory/")
    assert seen[0]["host"] == base.removeprefix("http://") and seen[0]["accept"] == "*/*"


def test_endless_redirects_and_an_unreachable_upstream_are_upstream_errors():
    with serving({"/loop": (302, {"Location": "/loop"}, b"")}) as (base, seen):
        with pytest.raises(UpstreamError, match="TooManyRedirects"):
            asyncio.run(fetch({"url": base + "/"}, base + "/loop"))
    assert len(seen) == MAX_REDIRECTS + 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    with pytest.raises(UpstreamError, match="^ConnectError: "):
        asyncio.run(fetch({"url": closed}, closed + "x"))


def test_a_path_with_spaces_and_non_ascii_is_percent_encoded():
    with serving({"/a%20b/%C3%A9.txt": (200, {}, b"ok")}) as (base, _seen):
        assert asyncio.run(fetch({"url": base + "/"}, base + "/a b/é.txt")) == (200, b"ok")


def test_a_slow_upstream_is_a_read_timeout():
    with serving({"/slow": (200, {"X-Sleep": "1"}, b"late")}) as (base, _seen):
        with pytest.raises(UpstreamError, match="^ReadTimeout: "):
            asyncio.run(fetch({"url": base + "/", "timeout_seconds": 0.2}, base + "/slow"))


def test_a_pooled_connection_the_upstream_closed_is_not_reused():
    """The server closes each connection after its answer (Connection: close is not said): the
    second GET must notice the idle connection is gone and open another."""
    with serving({"/a": (200, {"X-Close": "1"}, b"one"), "/b": (200, {}, b"two")}) as (base, seen):

        async def both() -> list[tuple[int, bytes]]:
            clients = UpstreamClients()
            try:
                fetcher = clients.fetcher(1, {"url": base + "/"})
                answers = []
                for path in ("/a", "/b"):
                    response = await fetcher.get(base + path, {})
                    answers.append((response.status_code, await response.read(1024)))
                    await asyncio.sleep(0.1)
                return answers
            finally:
                await clients.close()

        assert asyncio.run(both()) == [(200, b"one"), (200, b"two")]
    assert [r["path"] for r in seen] == ["/a", "/b"]
