"""The UI's pure parts, without a server: sanitising, set-me-up snippets, cookies, templates."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from artifactory.api.search import decode_cursor, encode_cursor, parse_query
from artifactory.http.errors import BadRequest
from artifactory.repository.model import Repo
from artifactory.security.principal import ANONYMOUS
from artifactory.ui import describe as describing
from artifactory.ui import pages
from artifactory.ui import setup as setting_up
from artifactory.ui.queries import Health, RepoStats
from artifactory.ui.session import SESSION_SECONDS, Session, Sessions
from artifactory.ui.web import Ctx, filesize
from tests.artifactory.ui.conftest import assert_inert


# -- README rendering ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "markdown",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "![x](https://tracker.invalid/p.png)",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=//evil.invalid></iframe>",
        '<div style="position:fixed">x</div>',
        "[x](vbscript:msgbox(1))",
        "<svg><script>alert(1)</script></svg>",
        '[x](https://ok.invalid/"onmouseover="alert(1))',
    ],
)
def test_markdown_is_rendered_to_a_safe_subset(markdown):
    html = str(describing.render_markdown(f"# Title\n\n{markdown}\n"))
    assert html.startswith("<h1>Title</h1>")
    assert_inert(html)


def test_markdown_keeps_what_a_readme_needs():
    html = str(
        describing.render_markdown(
            "## Use\n\n```python\nimport x  # <b>\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
            "- [docs](https://docs.invalid/) and `code` and **bold** ~~old~~\n"
        )
    )
    assert "<pre><code>import x  # &lt;b&gt;" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert '<a href="https://docs.invalid/" rel="nofollow noopener noreferrer">docs</a>' in html
    assert "<code>code</code>" in html and "<strong>bold</strong>" in html and "<s>old</s>" in html


def test_plain_and_restructured_text_are_shown_as_text():
    html = str(describing.render_readme("Title\n=====\n\n<script>x</script>", "text/x-rst"))
    assert html.startswith("<pre") and "&lt;script&gt;" in html
    assert describing.render_readme("   ", "text/markdown") is None


@pytest.mark.parametrize(
    "value, kept",
    [
        ("https://example.invalid/x", True),
        ("http://example.invalid", True),
        (" javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("//evil.invalid/", False),
        ("ftp://files.invalid/", False),
        (None, False),
        (["https://x.invalid"], False),
    ],
)
def test_only_http_links_are_links(value, kept):
    assert (describing.web_link(value) is not None) is kept


def test_pom_fields_are_read_without_entities_or_dtds():
    pom = b'<project xmlns="http://maven.apache.org/POM/4.0.0"><name> My\n  Lib </name>'
    pom += b"<description>d</description></project>"
    assert describing._pom_fields(pom) == {"name": "My Lib", "description": "d"}
    xxe = b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><project><name>&x;</name></project>'
    assert describing._pom_fields(xxe) == {}
    assert describing._pom_fields(b"<project><name>") == {}


def test_a_format_can_describe_its_own_components():
    class Own:
        def describe_component(self, component, read):
            return describing.Description(summary=f"own {component['name']}")

    found = asyncio.run(describing.describe(Own(), "pypi", {"name": "x"}, _no_read))  # type: ignore[arg-type]
    assert found.summary == "own x"
    assert asyncio.run(describing.describe(None, "unknown-format", {}, _no_read)).summary == ""


async def _no_read(path: str, limit: int) -> bytes | None:
    return None


# -- set me up -------------------------------------------------------------------------------------------
def context(**kwargs) -> setting_up.SetupContext:
    values = {
        "base": "http://repo.example.invalid:8081",
        "repository": "py.internal",
        "repo_type": "hosted",
        "writable": True,
    }
    values.update(kwargs)
    return setting_up.SetupContext(**values)


@pytest.mark.parametrize("fmt", ["pypi", "npm", "maven", "oci", "go", "cargo", "raw"])
def test_every_known_format_has_snippets_naming_this_server_and_repository(fmt):
    found = setting_up.snippets(None, fmt, context())
    assert found and len({s.id for s in found}) == len(found)
    text = "\n".join(s.text for s in found)
    assert "repo.example.invalid:8081" in text and "py.internal" in text


def test_plain_http_gets_the_clients_insecure_switches_and_https_does_not():
    insecure = {s.id: s.text for s in setting_up.snippets(None, "npm", context())}
    assert 'unsafeHttpWhitelist:\n  - "repo.example.invalid"' in insecure["yarn-berry"]
    secure = {s.id: s.text for s in setting_up.snippets(None, "npm", context(base="https://repo.invalid"))}
    assert "unsafeHttpWhitelist" not in secure["yarn-berry"]
    assert "trusted-host = repo.example.invalid" in setting_up.snippets(None, "pypi", context())[0].text
    local = setting_up.snippets(None, "pypi", context(base="http://127.0.0.1:8081"))[0].text
    assert "trusted-host" not in local
    gradle = {s.id: s.text for s in setting_up.snippets(None, "maven", context())}
    assert "isAllowInsecureProtocol = true" in gradle["gradle-kotlin"]
    assert "allowInsecureProtocol = true" in gradle["gradle-groovy"]
    docker = {s.id: s for s in setting_up.snippets(None, "oci", context())}
    assert "insecure-registries" in docker["docker"].note and "--tls-verify=false" in docker["podman"].text


def test_read_only_repositories_get_no_upload_snippets():
    ids = {s.id for s in setting_up.snippets(None, "pypi", context(repo_type="proxy", writable=False))}
    assert "pypirc" not in ids and "pip-conf" in ids
    cargo = setting_up.snippets(None, "cargo", context(repo_type="proxy", writable=False))
    assert 'replace-with = "py-internal"' in cargo[0].text and len(cargo) == 1


def test_a_version_page_snippet_installs_that_version():
    pip = {s.id: s.text for s in setting_up.snippets(None, "pypi", context(package="demo", version="1.2"))}
    assert pip["pip-install"].endswith("demo==1.2")
    npm = {
        s.id: s.text
        for s in setting_up.snippets(None, "npm", context(package="x", namespace="@s", version="2.0.0"))
    }
    assert npm["npm-install"].endswith("@s/x@2.0.0")


def test_a_format_supplies_its_own_snippets_through_its_format_class():
    class Own:
        def setup_snippets(self, ctx):
            return [setting_up.Snippet("own", "Own client", f"own-client use {ctx.url}")]

    found = setting_up.snippets(Own(), "pypi", context())  # type: ignore[arg-type]
    assert [s.id for s in found] == ["own"] and "/repository/py.internal/" in found[0].text
    assert setting_up.snippets(None, "no-such-format", context()) == []


# -- cookies and cursors -----------------------------------------------------------------------------
def test_session_cookies_are_signed_and_expire():
    sessions = Sessions(b"secret", db=None, cache_seconds=1)  # type: ignore[arg-type]
    session = Session("sid", "alice", float(int(time.time())), "fp")
    cookie = sessions.dump(session)
    assert sessions.load(cookie) == session
    other = Sessions(b"another secret", db=None, cache_seconds=1)  # type: ignore[arg-type]
    assert other.load(cookie) is None
    body, _, signature = cookie.partition(".")
    assert sessions.load(body + "." + signature[:-2] + "AA") is None
    assert sessions.load("x" * 2000) is None and sessions.load("") is None and sessions.load("a.b.c") is None
    old = Session("sid", "alice", time.time() - SESSION_SECONDS - 1, "fp")
    assert sessions.load(sessions.dump(old)) is None
    assert sessions.csrf_ok(session, sessions.csrf_token(session))
    assert not sessions.csrf_ok(session, sessions.csrf_token(Session("other")))
    assert not sessions.csrf_ok(None, "") and not sessions.csrf_ok(session, "")


def test_search_cursors_round_trip_and_foreign_ones_are_refused():
    assert decode_cursor(encode_cursor("name/with\u00e9", 42)) == ("name/with\u00e9", 42)
    for bad in ("", "!!!", "WzEsMl0", "eyJhIjoxfQ", "WyJhIiwgdHJ1ZV0"):
        with pytest.raises(BadRequest):
            decode_cursor(bad)


# Cursors a client hands back: any bytes at all, and JSON nested past what the parser recurses
# (which was a 500), NaN, or a value of the wrong shape.
HOSTILE_JSON = [b"[" * 5000 + b"]" * 5000, b'["a", NaN]', b'["a", 1, 2]', b'[["a"], 1]', b'{"a": 1}']


@settings(max_examples=300)
@given(st.binary(max_size=64) | st.sampled_from(HOSTILE_JSON))
def test_a_cursor_a_client_makes_up_is_a_400_never_a_500(raw):
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    for decode in (decode_cursor, pages._cursor):
        try:
            decoded = decode(text)
        except BadRequest:
            continue
        if decoded is None:  # the UI's: no cursor at all
            assert not text and decode is pages._cursor
            continue
        assert isinstance(decoded, tuple) and len(decoded) == 2  # a cursor's shape, nothing else


def test_search_parameters_are_checked():
    from starlette.datastructures import QueryParams

    query = parse_query(QueryParams("q=%20x%20&sha1=" + "A" * 40 + "&limit=5000"))
    assert query.q == "x" and query.sha1 == "a" * 40 and query.limit == 1000
    with pytest.raises(BadRequest, match="unknown search parameter 'qq'"):
        parse_query(QueryParams("qq=1"))


# -- templates --------------------------------------------------------------------------------------
@dataclass
class _FakeApp:
    state: object


def _ctx() -> Ctx:
    scope = {"type": "http", "method": "GET", "path": "/ui/", "headers": [], "query_string": b""}
    request = Request(scope)
    sessions = Sessions(b"k", db=None, cache_seconds=1)  # type: ignore[arg-type]
    return Ctx(request, None, sessions, Session("sid"), ANONYMOUS, "http://h", "/ui")  # type: ignore[arg-type]


def test_the_repository_list_escapes_upstream_errors_and_names():
    repo = Repo(1, "proxy-1", "raw", "proxy", {}, 1)
    health = {
        1: Health(blocked=True, blocked_until=datetime.now(UTC), failures=3, last_error='<script>x</script>"')
    }
    html = _ctx().render("repositories.html", repos=[repo], stats={1: RepoStats(1, 2, 3)}, health=health).body
    assert b"<script>x" not in html and b"&lt;script&gt;x&lt;/script&gt;&#34;" in html


def test_file_sizes_read_well():
    assert [filesize(v) for v in (0, 1023, 1024, 1536, 5 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 GiB",
    ]


# -- repository totals ------------------------------------------------------------------------------
def test_repository_totals_follow_the_revision_and_large_ones_are_added_up_in_the_background(
    tmp_path, monkeypatch
):
    from sqlalchemy import insert

    from artifactory.db.engine import Database
    from artifactory.db.models import Asset, Base, Blob, Component, Repository
    from artifactory.ui import queries

    db = Database(f"sqlite:///{tmp_path / 'totals.db'}")
    Base.metadata.create_all(db.engine)
    now = datetime.now(UTC)

    def add(repository_id: int, index: int, size: int) -> None:
        digest = f"{repository_id:032d}{index:032d}"
        with db.write() as session:
            session.execute(
                insert(Blob).values(
                    sha256=digest, size=size, md5="", sha1="", sha512="", created_at=now, touched_at=now
                )
            )
            session.execute(
                insert(Component).values(
                    repository_id=repository_id, name=f"c{index}", version="1", attributes={}
                )
            )
            session.execute(
                insert(Asset).values(
                    repository_id=repository_id, path=f"f{index}", blob_sha256=digest, attributes={}
                )
            )

    with db.write() as session:
        for rid in (1, 2):
            session.execute(
                insert(Repository).values(id=rid, name=f"r{rid}", format="raw", type="hosted", config={})
            )
    small, large = Repo(1, "r1", "raw", "hosted", {}, 1), Repo(2, "r2", "raw", "hosted", {}, 1)
    add(1, 0, 10)
    for i in range(3):
        add(2, i, 100)
    monkeypatch.setattr(queries, "INLINE_ASSETS", 2)
    cache = queries.StatsCache(db)
    with db.read() as session:
        first = cache.get(session, [small, large])
    assert first[1] == RepoStats(1, 1, 10)
    assert first[2].components == 3 and first[2].assets == 3 and first[2].bytes in (None, 300)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with db.read() as session:
            if cache.get(session, [large])[2].bytes is not None:
                break
        time.sleep(0.05)
    with db.read() as session:
        assert cache.get(session, [large])[2] == RepoStats(3, 3, 300)
    add(1, 1, 5)
    with db.read() as session:
        assert cache.get(session, [small])[1] == RepoStats(1, 1, 10)  # same revision: remembered
        assert cache.get(session, [Repo(1, "r1", "raw", "hosted", {}, 2)])[1] == RepoStats(2, 2, 15)
    add(2, 9, 1)
    with db.read() as session:  # a large repository keeps its last total for BYTES_SECONDS
        assert cache.get(session, [Repo(2, "r2", "raw", "hosted", {}, 2)])[2] == RepoStats(4, 4, 300)
    db.dispose()
