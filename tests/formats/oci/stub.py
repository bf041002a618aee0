"""A minimal registry upstream on 127.0.0.1 that a test controls: fixed answers per path, the
request headers it saw, and no referrers API (404), like registries that predate OCI 1.1."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubRegistry:
    def __init__(self) -> None:
        self.answers: dict[str, tuple[str, bytes]] = {}  # path -> (content type, body)
        self.seen: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                stub.seen.append((path, {k.lower(): v for k, v in self.headers.items()}))
                answer = stub.answers.get(path)
                if answer is None:
                    body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}'
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                else:
                    content_type, body = answer
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> StubRegistry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
