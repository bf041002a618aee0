"""Parsing an upstream's simple page splits each link once: the URLs, fragments and filenames it
finds are the ones joining every link against the page (`urljoin`, then `urldefrag`) gives."""

from __future__ import annotations

import html
import json
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest
from artifactory_formats.pypi import metadata

PAGE = "https://index.invalid/simple/demo/"
HREFS = [
    "https://files.invalid/packages/ab/demo-1.0-py3-none-any.whl#sha256=" + "a" * 64,
    "https://files.invalid/packages/ab/demo-1.0-py3-none-any.whl",
    "http://other.invalid:8080/p/demo-1.1.tar.gz#md5=" + "b" * 32,
    "../../packages/demo/demo-1.2-py3-none-any.whl#sha256=" + "c" * 64,
    "/packages/demo/demo-1.3.tar.gz",
    "demo-1.4-py3-none-any.whl#",
    "//cdn.invalid/demo/demo-1.5-py3-none-any.whl#sha256=" + "d" * 64,
    "https://files.invalid/a;params/demo-1.6-py3-none-any.whl?x=1#sha256=" + "e" * 64,
    "https://files.invalid/demo-1.7-py3-none-any.whl?#sha256=" + "f" * 64,
    "https://files.invalid/a/../b/./demo-1.8-py3-none-any.whl",
    "https://files.invalid/demo%2D1.9-py3-none-any.whl",
    "HTTPS://Files.Invalid/demo-2.0-py3-none-any.whl",
    "https:demo-2.1-py3-none-any.whl",
    "javascript:alert(1)//demo-2.2-py3-none-any.whl",
    "ftp://files.invalid/demo-2.3-py3-none-any.whl",
]


@pytest.mark.parametrize("href", HREFS)
def test_a_link_resolves_as_urljoin_then_urldefrag_would(href: str) -> None:
    url, fragment, parts = metadata._link(PAGE, href)
    expected_url, expected_fragment = urldefrag(urljoin(PAGE, href))
    assert urlsplit(url) == urlsplit(expected_url)
    assert fragment == expected_fragment
    assert parts.scheme == urlsplit(expected_url).scheme
    assert unquote(parts.path.rsplit("/", 1)[-1]) == unquote(urlsplit(expected_url).path.rsplit("/", 1)[-1])


def _reference_files(hrefs: list[str]) -> list[tuple[str, str, str]]:
    """(filename, URL, sha256) of each http(s) link, as the page's links resolve by urllib alone."""
    found = []
    for href in hrefs:
        url, fragment = urldefrag(urljoin(PAGE, href))
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            continue
        algorithm, _, value = fragment.partition("=")
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        found.append((filename, url, value if algorithm == "sha256" else ""))
    return found


def test_a_page_lists_the_files_its_links_name_both_as_html_and_as_json() -> None:
    expected = sorted(_reference_files(HREFS))
    links = "".join(f'<a href="{html.escape(h)}">x</a>' for h in HREFS)
    as_html = metadata.parse_upstream(f"<html><body>{links}</body></html>".encode(), PAGE, "demo")
    entries = [
        {"filename": unquote(urlsplit(urldefrag(urljoin(PAGE, h))[0]).path.rsplit("/", 1)[-1]), "url": h}
        for h in HREFS
    ]
    as_json = metadata.parse_upstream(json.dumps({"name": "demo", "files": entries}).encode(), PAGE, "demo")
    for parsed in (as_html, as_json):
        got = sorted((f.filename, f.upstream_url) for f in parsed.files)
        assert [(name, urlsplit(url)) for name, url in got] == [(n, urlsplit(u)) for n, u, _ in expected]
    html_digests = sorted((f.filename, f.hashes.get("sha256", "")) for f in as_html.files)
    assert html_digests == sorted((name, digest) for name, _, digest in expected)


def test_the_version_of_a_file_is_the_one_its_filename_names_each_time_it_is_parsed() -> None:
    page = (
        b'<a href="https://files.invalid/demo-1.0.post1-py3-none-any.whl">w</a><a href="/demo-2.tar.gz">s</a>'
    )
    for _ in range(2):  # the second parse is answered from what the first one learnt
        files = metadata.parse_upstream(page, PAGE, "demo").files
        assert [(f.filename, f.version) for f in files] == [
            ("demo-1.0.post1-py3-none-any.whl", "1.0.post1"),
            ("demo-2.tar.gz", "2"),
        ]
    bad = b'<a href="https://files.invalid/demo-notaversion-py3-none-any.whl">w</a>'
    assert [f.version for f in metadata.parse_upstream(bad, PAGE, "demo").files] == [""]
