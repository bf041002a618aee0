"""Names are data in maven listings and headers too, on SQLite and PostgreSQL: a proxy caches whatever
path its upstream answers for, so an anonymous reader chooses the names a listing shows."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.formats.maven.support import StaticServer, jar_bytes

HOSTILE = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.domain)",
    '"onmouseover=alert(1) x="',
    "' onmouseover='alert(1)",
    "<script>alert(1)",
    "<img src=x onerror=alert(1)>",
    "ünïcødé ☃.jar",
]


@pytest.fixture(scope="module")
def any_path() -> Iterator[StaticServer]:
    with StaticServer(None) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def admin(any_server):
    with any_server.client() as client:
        yield client


def assert_safe_listing(response: httpx.Response, names: list[str], folders: bool = False) -> None:
    assert response.status_code == 200, response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    for href in re.findall(r'<a href="([^"]*)"', response.text):
        assert href == "../" or href.startswith("./"), href
        assert not set(":<>'\" ") & set(href), href
    slash = "/" if folders else ""
    for name in names:
        assert f'href="./{quote(name, safe="")}{slash}"' in response.text, name
    assert "<script" not in response.text and "<img" not in response.text


def test_a_proxy_listing_of_names_an_anonymous_reader_chose_is_relative_and_escaped(any_server, any_path):
    repo = any_server.create_repo("maven", "proxy", url=any_path.url)
    group = any_server.create_repo("maven", "group", members=[repo])
    for name in HOSTILE:
        response = httpx.get(f"{any_server.repo_url(repo)}{quote(name, safe='')}")
        assert response.status_code == 200, (name, response.text)
    root = httpx.get(any_server.repo_url(repo))
    assert_safe_listing(root, HOSTILE)
    assert "&lt;script&gt;alert(1)" in root.text and "&quot;onmouseover=alert(1) x=&quot;" in root.text
    assert_safe_listing(httpx.get(any_server.repo_url(group)), HOSTILE)
    folder = "javascript:void(0)"
    assert httpx.get(f"{any_server.repo_url(repo)}{quote(folder, safe='')}/x.jar").status_code == 200
    assert_safe_listing(httpx.get(any_server.repo_url(repo)), [folder], folders=True)


class _JarsOnly(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        found = self.path.endswith(".jar")
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", "3" if found else "0")
        self.end_headers()
        self.wfile.write(b"jar" if found else b"")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_a_redirect_to_a_folder_carries_the_path_percent_encoded(any_server):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _JarsOnly)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        repo = any_server.create_repo("maven", "proxy", url=f"http://127.0.0.1:{httpd.server_address[1]}/")
        name = "ä?b#c"
        assert httpx.get(f"{any_server.repo_url(repo)}{quote(name, safe='')}/x.jar").status_code == 200
        response = httpx.get(f"{any_server.repo_url(repo)}{quote(name, safe='')}", follow_redirects=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert response.status_code == 301
    assert response.headers["location"].endswith(f"/{quote(name, safe='')}/")


def test_hosted_listings_link_relatively(any_server, admin):
    repo = any_server.create_repo("maven")
    path = "org/names/lib/1.0/lib-1.0.jar"
    response = admin.put(f"/repository/{repo}/{path}", content=jar_bytes())
    assert response.status_code == 201
    assert response.headers["location"] == f"{any_server.repo_url(repo)}{path}"
    listing = admin.get(f"/repository/{repo}/org/names/lib/1.0/")
    assert_safe_listing(listing, ["lib-1.0.jar"])
    assert_safe_listing(admin.get(f"/repository/{repo}/org/names/"), ["lib"], folders=True)


@pytest.fixture(scope="module")
def fuzz_repo(any_server) -> str:
    return any_server.create_repo("maven", version_policy="mixed")


SEGMENT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=10
)
PATHS = st.lists(SEGMENT.filter(lambda s: s not in (".", "..")), min_size=1, max_size=5).map("/".join)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=PATHS)
def test_any_path_put_is_stored_or_refused_in_json_but_never_a_5xx(any_server, admin, fuzz_repo, path):
    url = f"/repository/{fuzz_repo}/{quote(path, safe='/')}"
    put = admin.put(url, content=jar_bytes())
    assert put.status_code < 500, (path, put.status_code, put.text)
    if put.status_code == 201:
        location = put.headers.get("location")
        if location is not None:
            assert (
                location.isascii() and unquote(urlsplit(location).path) == f"/repository/{fuzz_repo}/{path}"
            )
    else:
        assert put.status_code == 400 and put.json()["error"], (path, put.text)
    assert admin.get(url).status_code < 500
    assert admin.head(url).status_code < 500
    assert admin.delete(url).status_code < 500
