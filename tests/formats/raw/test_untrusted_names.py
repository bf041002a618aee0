"""File names are data: whatever a raw path holds, listings link to it relatively and escape it, and
headers carry it percent-encoded. Hosted uploads and a proxy's cache (an upstream that answers 200
for any path lets an anonymous reader choose the names) alike, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HOSTILE = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.domain)",
    "data:text;base64,PGI+",
    '"onmouseover=alert(1) x="',
    "' onmouseover='alert(1)",
    "<script>alert(1)",
    "<img src=x onerror=alert(1)>",
    "vbscript:msgbox(1)",
    "http:evil.example",
    "ünïcødé ☃ 名前.txt",
]


class _AnyPath(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = f"upstream copy of {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def any_path_upstream() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _AnyPath)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def admin(any_server):
    with any_server.client() as client:
        yield client


def assert_safe_listing(response: httpx.Response, names: list[str]) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    hrefs = re.findall(r'<a href="([^"]*)"', response.text)
    for href in hrefs:
        assert href == "../" or href.startswith("./"), href
        assert ":" not in href and "<" not in href and "'" not in href and " " not in href, href
    for name in names:
        assert f'href="./{quote(name, safe="")}"' in response.text, name
    # Nothing hostile survives as markup: every < and " of a name is escaped in the label.
    assert "<script" not in response.text and "<img" not in response.text
    assert "onmouseover=alert" not in response.text.replace("&quot;onmouseover", "").replace(
        "&#x27; onmouseover", ""
    )


def test_hosted_listing_links_are_relative_encoded_and_labels_escaped(any_server, admin):
    repo = any_server.create_repo("raw")
    for name in HOSTILE:
        response = admin.put(f"/repository/{repo}/{quote(name, safe='')}", content=name.encode())
        assert response.status_code == 201, (name, response.text)
    root = admin.get(f"/repository/{repo}/")
    assert_safe_listing(root, HOSTILE)
    assert "&lt;script&gt;alert(1)" in root.text
    assert "&quot;onmouseover=alert(1) x=&quot;" in root.text
    # Each relative link leads back to its file.
    for name in HOSTILE:
        href = f"./{quote(name, safe='')}"
        target = httpx.URL(str(root.url)).join(href)
        assert admin.get(target).content == name.encode(), name


def test_hosted_folder_names_are_linked_relatively_too(any_server, admin):
    repo = any_server.create_repo("raw")
    folder = "javascript:alert(1)"
    assert admin.put(f"/repository/{repo}/{quote(folder, safe='')}/f.txt", content=b"1").status_code == 201
    root = admin.get(f"/repository/{repo}/")
    assert 'href="./javascript%3Aalert%281%29/"' in root.text
    redirect = admin.get(f"/repository/{repo}/{quote(folder, safe='')}", follow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["location"].endswith("/javascript%3Aalert%281%29/")


def test_proxy_cache_listing_of_names_chosen_by_an_anonymous_reader_is_safe(any_server, any_path_upstream):
    repo = any_server.create_repo("raw", "proxy", url=any_path_upstream)
    for name in HOSTILE:
        response = httpx.get(f"{any_server.repo_url(repo)}{quote(name, safe='')}")
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-disposition"].startswith("attachment")
    listing = httpx.get(any_server.repo_url(repo))
    assert_safe_listing(listing, HOSTILE)


def test_a_group_listing_of_a_proxy_cache_is_safe(any_server, any_path_upstream):
    proxy = any_server.create_repo("raw", "proxy", url=any_path_upstream)
    group = any_server.create_repo("raw", "group", members=[proxy])
    name = "javascript:alert(document.domain)"
    assert httpx.get(f"{any_server.repo_url(group)}{quote(name, safe='')}").status_code == 200
    assert_safe_listing(httpx.get(any_server.repo_url(group)), [name])


def test_a_put_to_a_non_latin1_path_answers_201_with_an_encoded_location(any_server, admin):
    repo = any_server.create_repo("raw")
    path = "документы/ファイル ☃.txt"
    response = admin.put(f"/repository/{repo}/{quote(path)}", content=b"snow")
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.isascii()
    assert unquote(urlsplit(location).path) == f"/repository/{repo}/{path}"
    assert admin.get(location).content == b"snow"


def test_a_put_to_a_folder_path_answers_400_json_and_anonymous_401(any_server, admin):
    repo = any_server.create_repo("raw")
    response = admin.put(f"/repository/{repo}/folder/", content=b"x")
    assert response.status_code == 400 and "folder" in response.json()["error"]
    anonymous = httpx.put(f"{any_server.repo_url(repo)}folder/", content=b"x")
    assert anonymous.status_code == 401


# Any text but "/" (the separator) makes a segment; the strategy leaves out only what httpx itself
# rewrites before sending ("." and ".." segments), so every other path reaches the server as written.
SEGMENT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=12
)
PATHS = st.lists(SEGMENT.filter(lambda s: s not in (".", "..")), min_size=1, max_size=3).map("/".join)


@pytest.fixture(scope="module")
def fuzz_repo(any_server) -> str:
    return any_server.create_repo("raw")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=PATHS, data=st.binary(max_size=64))
def test_any_raw_path_round_trips_or_is_refused_but_never_a_5xx(any_server, admin, fuzz_repo, path, data):
    unique = uuid.uuid4().hex[:8]
    url = f"/repository/{fuzz_repo}/{unique}/{quote(path, safe='/')}"
    put = admin.put(url, content=data)
    assert put.status_code < 500, (path, put.status_code, put.text)
    if put.status_code != 201:
        assert put.status_code == 400 and put.json()["error"], (path, put.text)
        assert admin.get(url).status_code in (400, 404)
        return
    location = put.headers["location"]
    assert (
        location.isascii() and unquote(urlsplit(location).path) == f"/repository/{fuzz_repo}/{unique}/{path}"
    )
    got = admin.get(url)
    assert got.status_code == 200, (path, got.status_code, got.text)
    assert got.content == data
    assert admin.head(url).status_code == 200
    listing = admin.get(f"/repository/{fuzz_repo}/{unique}/")
    assert listing.status_code == 200
    first = path.split("/")[0]
    assert f'href="./{quote(first, safe="")}' in listing.text
    assert admin.delete(url).status_code == 204
    assert admin.get(url).status_code == 404
