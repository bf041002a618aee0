"""A server for the web UI tests (SQLite and PostgreSQL) and a browser-like HTTP client for it.

The server trusts X-Forwarded-For from loopback, so each test can sign in from an address of its
own: the per-address sign-in limit of one test then never reaches another.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import ADMIN_PASSWORD, LiveServer

ENV = {"ARTIFACTORY_TRUSTED_PROXIES": "127.0.0.1"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(params=DATABASES, scope="module")
def ui_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    with live_server(request, "ui", env=ENV) as live:
        yield live


_TOKENS: dict[str, str] = {}


def api(server: LiveServer) -> httpx.Client:
    """An admin API client with a Bearer token: cheap to verify, unlike a password on every call."""
    token = _TOKENS.get(server.url)
    if token is None:
        with server.client() as admin:
            response = admin.post("/api/v1/tokens", json={"name": "ui-tests"})
            assert response.status_code == 201, response.text
            token = _TOKENS[server.url] = response.json()["token"]
    return httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {token}"})


def create_repo(
    server: LiveServer, fmt: str, kind: str = "hosted", name: str | None = None, **config: Any
) -> str:
    name = name or f"{fmt}-{kind}-{uuid.uuid4().hex[:8]}"
    with api(server) as admin:
        response = admin.post(
            "/api/v1/repositories", json={"name": name, "format": fmt, "type": kind, **config}
        )
    assert response.status_code == 201, response.text
    return name


def create_user(server: LiveServer, roles: list[str], password: str = "user-password") -> tuple[str, str]:
    username = f"user-{uuid.uuid4().hex[:8]}"
    with api(server) as admin:
        response = admin.post(
            "/api/v1/users", json={"username": username, "password": password, "roles": roles}
        )
    assert response.status_code == 201, response.text
    return username, password


class Browser:
    """What a browser does over HTTP: keeps cookies, reads the CSRF token of the page, posts forms."""

    def __init__(self, server: LiveServer, address: str | None = None) -> None:
        self.server = server
        self.address = (
            address or f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
        )
        self.http = httpx.Client(
            base_url=server.url,
            timeout=60,
            headers={"Accept": "text/html", "X-Forwarded-For": self.address},
        )
        self.csrf = ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.get(path, **kwargs)
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, csrf: bool = True) -> httpx.Response:
        if csrf and not self.csrf:
            self.get("/ui/login")
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf", self.csrf)
        response = self.http.post(path, data=body)
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> httpx.Response:
        self.get("/ui/login")
        response = self.post("/ui/login", {"username": username, "password": password, "next": "/ui/"})
        if response.status_code == 303:
            self.get("/ui/")  # the new session's token
        return response

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def browser(ui_server: LiveServer) -> Iterator[Browser]:
    client = Browser(ui_server)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def admin_browser(ui_server: LiveServer) -> Iterator[Browser]:
    client = Browser(ui_server)
    assert client.login().status_code == 303
    try:
        yield client
    finally:
        client.close()


SCRIPT_URLS = ("javascript:", "data:", "vbscript:")


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_inert(html: str) -> None:
    """Nothing hostile survived as markup: no script but ours, no event handler, no script URL."""
    parser = Markup()
    parser.feed(html)
    for tag, attrs in parser.tags:
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/ui/static/copy.js"), attrs
        assert tag not in ("img", "iframe", "object", "embed", "style", "base", "form") or (
            tag == "form" and (attrs.get("action") or "").startswith("/ui/")
        ), (tag, attrs)
        for key, value in attrs.items():
            assert not key.startswith("on") and key != "style", (tag, attrs)
            if key in ("href", "src", "action", "formaction") and attrs != {"rel": "icon", "href": "data:,"}:
                assert not (value or "").strip().lower().startswith(SCRIPT_URLS), attrs
