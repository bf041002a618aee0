"""A simple index on loopback that behaves as a strict one does: it chooses PEP 691 JSON or HTML by the
`Accept` header alone (a query string is ignored, as PEP 691 defines none), publishes what each page
form can carry (JSON: every hash, size, upload-time, core-metadata; HTML: one #sha256, data-* and only
the legacy data-dist-info-metadata), serves the files, and records every request. A file may be served
with bytes other than those its page declares, and a page may carry hostile names and links."""

from __future__ import annotations

import hashlib
import html
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


@dataclass
class FakeFile:
    filename: str
    content: bytes
    version: str = ""
    served: bytes | None = None  # what GET answers, if not `content` (a tampered file)
    upload_time: str | None = None
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked
    metadata: bytes | None = None  # served at <url>.metadata and declared in the page
    metadata_served: bytes | None = None
    href: str | None = None  # a link of the page's own making (hostile links)

    def hashes(self) -> dict[str, str]:
        return {
            "sha256": hashlib.sha256(self.content).hexdigest(),
            "sha512": hashlib.sha512(self.content).hexdigest(),
        }


@dataclass
class Request:
    path: str
    accept: str | None


@dataclass
class FakeIndex:
    projects: dict[str, list[FakeFile]] = field(default_factory=dict)
    root_names: list[str] = field(default_factory=list)  # names listed besides the projects
    requests: list[Request] = field(default_factory=list)
    html_only: bool = False  # an index that knows no JSON

    def start(self) -> FakeIndex:
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                index.requests.append(Request(self.path, self.headers.get("Accept")))
                status, content_type, body = index.answer(self.path, self.headers.get("Accept"))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def index_url(self) -> str:
        return f"{self.url}/simple/"

    def fetched(self, filename: str) -> int:
        """How often a file (or .metadata) was downloaded."""
        return sum(1 for r in self.requests if r.path == f"/files/{filename}")

    def page_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith("/simple/")]

    # -- answering ----------------------------------------------------------------------------
    def answer(self, raw_path: str, accept: str | None) -> tuple[int, str, bytes]:
        path = raw_path.split("?", 1)[0]  # negotiation by Accept only: any ?format= is ignored
        media = "text/html" if self.html_only else _choose(accept)
        if path == "/simple/":
            names = sorted(self.projects) + self.root_names
            if media == JSON_TYPE:
                body = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
                return 200, JSON_TYPE, json.dumps(body).encode()
            links = "".join(f'<a href="{html.escape(n)}/">{html.escape(n)}</a>' for n in names)
            return 200, media, f"<html><body>{links}</body></html>".encode()
        if path.startswith("/simple/") and path.endswith("/"):
            project = path[len("/simple/") : -1]
            if project not in self.projects:
                return 404, "text/plain", b"not found"
            files = self.projects[project]
            if media == JSON_TYPE:
                return 200, JSON_TYPE, self._json_page(project, files)
            return 200, media, self._html_page(files)
        if path.startswith("/files/"):
            name = path[len("/files/") :]
            for files in self.projects.values():
                for f in files:
                    if name == f.filename:
                        return 200, "application/octet-stream", f.content if f.served is None else f.served
                    if name == f.filename + ".metadata" and f.metadata is not None:
                        served = f.metadata if f.metadata_served is None else f.metadata_served
                        return 200, "application/octet-stream", served
        return 404, "text/plain", b"not found"

    def _file_url(self, f: FakeFile) -> str:
        return f.href if f.href is not None else f"{self.url}/files/{f.filename}"

    def _json_page(self, project: str, files: list[FakeFile]) -> bytes:
        entries = []
        for f in files:
            entry: dict[str, Any] = {
                "filename": f.filename,
                "url": self._file_url(f),
                "hashes": f.hashes(),
                "size": len(f.content),
                "yanked": f.yanked if f.yanked is not None else False,
                "core-metadata": {"sha256": hashlib.sha256(f.metadata).hexdigest()} if f.metadata else False,
            }
            if f.upload_time:
                entry["upload-time"] = f.upload_time
            if f.requires_python:
                entry["requires-python"] = f.requires_python
            entries.append(entry)
        versions = sorted({f.version for f in files if f.version})
        page = {"meta": {"api-version": "1.1"}, "name": project, "files": entries, "versions": versions}
        return json.dumps(page).encode()

    def _html_page(self, files: list[FakeFile]) -> bytes:
        anchors = []
        for f in files:
            href = self._file_url(f)
            if f.href is None:
                href += f"#sha256={f.hashes()['sha256']}"
            attrs = [f'href="{html.escape(href)}"']
            if f.requires_python:
                attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
            if f.yanked is not None:
                attrs.append(f'data-yanked="{html.escape(f.yanked)}"')
            if f.metadata is not None:
                attrs.append(f'data-dist-info-metadata="sha256={hashlib.sha256(f.metadata).hexdigest()}"')
            anchors.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br>")
        return f"<!DOCTYPE html><html><body>{''.join(anchors)}</body></html>".encode()


def _choose(accept: str | None) -> str:
    """PEP 691's negotiation: the highest quality among the types served; HTML without an Accept."""
    best, best_q = "text/html", 0.0
    for item in (accept or "").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                quality = float(value)
        if media in (JSON_TYPE, HTML_TYPE, "text/html") and quality > best_q:
            best, best_q = media, quality
    return best
