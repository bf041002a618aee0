"""An upstream document nested deeper than a JSON parser recurses is, for every format's proxy, an
unusable document like any other malformed one: a 502 in the format's own error shape, never a 500,
and nothing cached, so the next request asks the upstream again (on SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx
import pytest

from tests.artifactory.repository.upstream import running

DEEP = b'{"a":' + b"[" * 200_000


@pytest.mark.parametrize(
    ("fmt", "root", "document", "error"),
    [
        ("pypi", "simple/", "deep/", b'"error"'),  # a PEP 691 project page
        ("npm", "", "deep", b'"error"'),  # a packument
        ("cargo", "", "de/ep/deep", b'"errors"'),  # a sparse index file
    ],
)
def test_a_deeply_nested_upstream_document_is_a_502_and_never_cached(any_server, fmt, root, document, error):
    with running() as upstream:
        upstream.put(root + document, DEEP)
        if fmt == "cargo":
            upstream.put("config.json", b'{"dl": "' + upstream.url.encode() + b'/dl"}')
        proxy = any_server.create_repo(fmt, "proxy", url=f"{upstream.url}/{root}")
        headers = {"Accept": "application/vnd.pypi.simple.v1+json"} if fmt == "pypi" else {}
        for attempt in (1, 2):
            answer = httpx.get(any_server.repo_url(proxy) + root + document, headers=headers, timeout=30)
            assert answer.status_code == 502, answer.text[:300]
            assert error in answer.content
            assert upstream.count(root + document) == attempt  # nothing cached, no retry storm
