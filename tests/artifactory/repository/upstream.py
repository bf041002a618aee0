"""A tiny upstream for proxy tests: a threaded HTTP(S) server on 127.0.0.1 that the test controls.

It serves files from a dict, answers 304 to a matching If-None-Match, counts every request by
(method, path) and keeps its headers, and can be told per path to be slow, to fail (500, a closed
connection, a sleep past the proxy's timeout, a body cut short), to send its body chunked (no
Content-Length) or to require Basic credentials.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHUNK = 64 * 1024


class Upstream:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.delay: dict[str, float] = {}  # seconds to wait before answering
        self.fail: dict[str, str] = {}  # "500" | "close" | "sleep:<seconds>" | "truncate"
        self.trickle: dict[str, float] = {}  # seconds to wait between body chunks
        self.auth: dict[str, tuple[str, str]] = {}  # path prefix -> required Basic credentials
        self.chunked: set[str] = set()  # paths answered with Transfer-Encoding: chunked
        self.hits: Counter[tuple[str, str]] = Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # type: ignore[attr-defined]
        self.scheme = "http"
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._httpd.server_address[1]}/"

    def start(self) -> Upstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- control -----------------------------------------------------------------------------
    def put(self, path: str, data: bytes) -> str:
        etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
        self.files[path] = data
        self.etags[path] = etag
        return etag

    def count(self, path: str, method: str = "GET") -> int:
        with self._lock:
            return self.hits[(method, path)]

    def methods(self, path: str) -> Counter[str]:
        with self._lock:
            return Counter({m: n for (m, p), n in self.hits.items() if p == path})

    def headers_of(self, path: str) -> list[dict[str, str]]:
        """The headers of every request for `path`, oldest first (names lower-cased)."""
        with self._lock:
            return [h for _m, p, h in self.requests if p == path]

    def _record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.hits[(method, path)] += 1
            self.requests.append((method, path, headers))


def _handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path).lstrip("/")
            upstream._record(self.command, path, {k.lower(): v for k, v in self.headers.items()})
            if path in upstream.delay:
                time.sleep(upstream.delay[path])
            failure = upstream.fail.get(path, "")
            if failure == "close":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if failure.startswith("sleep:"):
                time.sleep(float(failure.split(":", 1)[1]))
            if failure == "500":
                self._plain(500, b"upstream broke")
                return
            for prefix, (user, password) in upstream.auth.items():
                expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                if path.startswith(prefix) and self.headers.get("Authorization") != expected:
                    self._plain(401, b"who are you", {"WWW-Authenticate": 'Basic realm="up"'})
                    return
            data = upstream.files.get(path)
            if data is None:
                self._plain(404, b"no such file")
                return
            etag = upstream.etags[path]
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            chunked = path in upstream.chunked
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", etag)
            self.end_headers()
            if not body:
                return
            view = memoryview(data)
            end = len(data) // 2 if failure == "truncate" else len(data)
            for start in range(0, end, CHUNK):
                piece = view[start : min(start + CHUNK, end)]
                if chunked:
                    self.wfile.write(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
                else:
                    self.wfile.write(piece)
                if path in upstream.trickle:
                    time.sleep(upstream.trickle[path])
            if chunked and failure != "truncate":
                self.wfile.write(b"0\r\n\r\n")
            if failure == "truncate":  # fewer bytes than Content-Length promised, then hang up
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        def _plain(self, status: int, text: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    return Handler


@contextmanager
def running(tls: ssl.SSLContext | None = None) -> Iterator[Upstream]:
    upstream = Upstream(tls).start()
    try:
        yield upstream
    finally:
        upstream.stop()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made with the openssl CLI: (cert.pem, key.pem)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
            "-addext", "extendedKeyUsage=serverAuth",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
