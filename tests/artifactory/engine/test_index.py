"""The engine's index documents (Format.build/parse/merge/render), in-process on SQLite and
PostgreSQL, with a toy format: hosted building under per-name generations, proxy parsing with the
declared files' digests verified while they stream, the group merge with the dependency-confusion
guard, rendering with negotiation, ETag and 304, and tombstones."""

import asyncio
import gzip
import hashlib
import json
import os

import pytest
from starlette.requests import Request

from artifactory.formats import (
    Coordinates,
    FileRef,
    Format,
    IndexKey,
    Parsed,
    Rendered,
    UpstreamDocument,
)
from artifactory.http.errors import BadGateway, Forbidden, NotFound
from artifactory.repository.errors import WritePolicyViolation
from artifactory.repository.hosted import Upload
from artifactory.repository.index import negotiate
from artifactory.security.principal import Principal
from artifactory.state import AppState
from tests.artifactory.engine.test_engine_api import ADMIN
from tests.artifactory.repository.upstream import running


class Notes(Format):
    """files/<name>/<version>.txt; the document "versions" of a name lists them with sha256s."""

    id = "notes-test"

    def __init__(self):
        self.builds = 0

    def coordinates(self, path):
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "files" and parts[2].endswith(".txt"):
            return Coordinates(name=parts[1], version=parts[2][: -len(".txt")])
        return None

    def tombstone(self, path):
        return path if path.startswith("files/") else None

    def declared_by(self, path):
        coordinates = self.coordinates(path)
        return None if coordinates is None else IndexKey("versions", coordinates.name)

    async def build(self, key, hosted):
        self.builds += 1
        found = await hosted.components(name=key.name)
        if not found:
            return None
        return {c.version: c.assets[0].sha256 for c in found for _ in c.assets[:1]}

    def upstream_document(self, key):
        return UpstreamDocument(f"index/{key.name}.json", accept="application/json")

    def parse(self, key, body, url):
        versions = json.loads(body)["versions"]
        if not isinstance(versions, dict):
            raise ValueError("versions is not an object")
        files = {
            f"files/{key.name}/{v}.txt": FileRef(url.rsplit("/index/", 1)[0] + f"/blobs/{v}", {"sha256": d})
            for v, d in versions.items()
        }
        return Parsed(model=dict(versions), files=files)

    def merge(self, key, models):
        merged = {}
        for model in models:
            for version, digest in model.items():
                merged.setdefault(version, digest)
        return merged

    def media_types(self, key):
        return ("application/vnd.notes+json", "text/plain")

    def render(self, key, model, context):
        if context.media_type == "text/plain":
            return Rendered("\n".join(sorted(model)).encode(), "text/plain")
        body = json.dumps({"name": key.name, "versions": model, "base": context.repository_url})
        return Rendered(body.encode(), context.media_type)


def repository(state, kind, **config):
    if "notes-test" not in state.formats:
        state.formats.add(Notes())
    name = f"{kind}{os.urandom(4).hex()}"
    state.engine.repos.create({"name": name, "format": "notes-test", "type": kind, **config})
    return state.engine.repository(name)


def fresh(state, repo):
    return state.engine.repository(repo.name)


def request_for(state, accept=None, etag=None):
    headers = [(b"host", b"127.0.0.1:1")]
    if accept:
        headers.append((b"accept", accept.encode()))
    if etag:
        headers.append((b"if-none-match", etag.encode()))
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "root_path": "",
            "scheme": "http",
            "query_string": b"",
            "headers": headers,
            "server": ("127.0.0.1", 1),
            "artifactory.state": state,
            "artifactory.base_url": "http://127.0.0.1:1",
        }
    )


async def upload(state, repo, name, version, body):
    path = f"files/{name}/{version}.txt"
    await state.engine.put_bytes(repo, body, Upload(path=path, component=Coordinates(name, version)), ADMIN)


def run(state, scenario):
    async def wrapped():
        try:
            await scenario()
        finally:
            await state.engine.close()

    asyncio.run(wrapped())


def test_a_hosted_document_is_rebuilt_only_when_its_own_name_changes(state):
    hosted = repository(state, "hosted")
    fmt = state.formats["notes-test"]
    index = state.engine.index

    async def scenario():
        await upload(state, hosted, "alpha", "1.0", b"a1")
        model = await index.model(fresh(state, hosted), IndexKey("versions", "alpha"), ADMIN)
        assert model.value == {"1.0": hashlib.sha256(b"a1").hexdigest()}
        builds = fmt.builds
        await upload(state, hosted, "beta", "1.0", b"b1")  # another name: alpha's document stays
        again = await index.model(fresh(state, hosted), IndexKey("versions", "alpha"), ADMIN)
        assert again.identity == model.identity and fmt.builds == builds
        await upload(state, hosted, "alpha", "2.0", b"a2")
        changed = await index.model(fresh(state, hosted), IndexKey("versions", "alpha"), ADMIN)
        assert set(changed.value) == {"1.0", "2.0"} and changed.identity != model.identity
        await state.engine.delete(fresh(state, hosted), "files/alpha/1.0.txt", ADMIN)
        after = await index.model(fresh(state, hosted), IndexKey("versions", "alpha"), ADMIN)
        assert set(after.value) == {"2.0"}
        assert await index.model(fresh(state, hosted), IndexKey("versions", "nothing"), ADMIN) is None

    run(state, scenario)


def test_a_proxy_parses_the_upstream_document_and_verifies_each_file_against_it(state):
    good, bad = b"good bytes", b"tampered"
    with running() as upstream:
        upstream.put(
            "index/lib.json",
            json.dumps({"versions": {"1.0": hashlib.sha256(good).hexdigest(), "2.0": "ab" * 32}}).encode(),
        )
        upstream.put("blobs/1.0", good)
        upstream.put("blobs/2.0", bad)
        proxy = repository(state, "proxy", url=upstream.url)

        async def scenario():
            model = await state.engine.index.model(proxy, IndexKey("versions", "lib"), ADMIN)
            assert set(model.value) == {"1.0", "2.0"}
            found = await state.engine.get(proxy, "files/lib/1.0.txt", ADMIN, stream=False)
            assert found is not None and found.sha256 == hashlib.sha256(good).hexdigest()
            with pytest.raises(BadGateway):
                await state.engine.get(proxy, "files/lib/2.0.txt", ADMIN, stream=False)
            assert state.engine.lookup(proxy, "files/lib/2.0.txt") is None  # nothing cached
            hits = upstream.hits[("GET", "blobs/2.0")]
            with pytest.raises(BadGateway):  # and the next request tries again
                await state.engine.get(proxy, "files/lib/2.0.txt", ADMIN, stream=False)
            assert upstream.hits[("GET", "blobs/2.0")] == hits + 1
            assert upstream.hits[("GET", "index/lib.json")] == 1  # the document once, cached

        run(state, scenario)


def test_a_malformed_upstream_document_is_never_cached(state):
    with running() as upstream:
        upstream.put("index/lib.json", b'{"versions": []}')
        proxy = repository(state, "proxy", url=upstream.url)

        async def scenario():
            with pytest.raises(BadGateway):
                await state.engine.index.model(proxy, IndexKey("versions", "lib"), ADMIN)
            assert state.engine.lookup(proxy, ".index/versions/-/lib/-") is None

        run(state, scenario)


def test_a_group_merges_members_in_order_and_guards_hosted_names(state):
    with running() as upstream:
        upstream.put("index/internal.json", json.dumps({"versions": {"99.0": "cd" * 32}}).encode())
        upstream.put("index/public.json", json.dumps({"versions": {"1.0": "ef" * 32}}).encode())
        proxy = repository(state, "proxy", url=upstream.url)
        hosted = repository(state, "hosted")
        group = repository(state, "group", members=[proxy.name, hosted.name])
        reader = Principal("reader", frozenset())

        async def scenario():
            state.security.set_anonymous_read(False)
            await upload(state, hosted, "internal", "1.0", b"i1")
            await upload(state, hosted, "public", "0.9", b"p0")
            g = fresh(state, group)
            internal = await state.engine.index.model(g, IndexKey("versions", "internal"), ADMIN)
            assert set(internal.value) == {"1.0"}  # never the proxy's 99.0
            public = await state.engine.index.model(g, IndexKey("versions", "public"), ADMIN)
            assert set(public.value) == {"0.9"}  # hosted holds the name: the proxy is left out too
            guarded = await state.engine.index.model(g, IndexKey("versions", "internal"), reader)
            assert guarded is None  # a reader without access gets nothing, not the lookalike
            with pytest.raises(Forbidden):
                await state.engine.index.respond(
                    request_for(state), g, IndexKey("versions", "internal"), reader
                )

        run(state, scenario)


def test_the_document_is_rendered_for_the_accept_header_with_an_etag_and_304(state):
    hosted = repository(state, "hosted")

    async def scenario():
        await upload(state, hosted, "alpha", "1.0", b"a1")
        repo, key = fresh(state, hosted), IndexKey("versions", "alpha")
        response = await state.engine.index.respond(request_for(state), repo, key, ADMIN)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/vnd.notes+json")
        assert json.loads(response.body)["base"] == f"http://127.0.0.1:1/repository/{repo.name}/"
        text = await state.engine.index.respond(request_for(state, accept="text/plain"), repo, key, ADMIN)
        assert text.body == b"1.0" and "Accept" in text.headers["vary"]
        etag = response.headers["etag"]
        again = await state.engine.index.respond(request_for(state, etag=etag), repo, key, ADMIN)
        assert again.status_code == 304

    run(state, scenario)


def test_a_deleted_file_is_never_stored_again_under_allow_once(state):
    hosted = repository(state, "hosted", write_policy="allow_once")

    async def scenario():
        await upload(state, hosted, "alpha", "1.0", b"first")
        await state.engine.delete(fresh(state, hosted), "files/alpha/1.0.txt", ADMIN)
        with pytest.raises(WritePolicyViolation):
            await upload(state, fresh(state, hosted), "alpha", "1.0", b"second")

    run(state, scenario)


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "a/json"),
        ("*/*", "a/json"),
        ("text/html", "a/json"),
        ("text/html, b/html;q=0.5", "b/html"),
        ("a/json;q=0.1, b/html", "b/html"),
        ("b/*", "b/html"),
        ("a/json;q=0, */*;q=0.1", "b/html"),
    ],
)
def test_negotiation(accept, chosen):
    assert negotiate(accept, ("a/json", "b/html")) == chosen


def test_a_group_listing_leaves_out_what_its_proxies_hold_of_a_hosted_name_and_the_index_cache(state):
    body = b"lookalike"
    with running() as upstream:
        upstream.put(
            "index/internal.json",
            json.dumps({"versions": {"99.0": hashlib.sha256(body).hexdigest()}}).encode(),
        )
        upstream.put("blobs/99.0", body)
        proxy = repository(state, "proxy", url=upstream.url)
        hosted = repository(state, "hosted")
        group = repository(state, "group", members=[proxy.name, hosted.name])

        async def scenario():
            engine = state.engine
            assert await engine.get(proxy, "files/internal/99.0.txt", ADMIN, stream=False) is not None
            before = await engine.listing(fresh(state, group), "files/internal/", ADMIN)
            assert [e.name for e in before] == ["99.0.txt"]  # nothing guards the name yet
            await upload(state, hosted, "internal", "1.0", b"i1")
            after = await engine.listing(fresh(state, group), "files/internal/", ADMIN)
            assert [e.name for e in after] == ["1.0.txt"]
            assert ".index" not in [e.name for e in await engine.listing(fresh(state, proxy), "", ADMIN)]

        run(state, scenario)


def test_upstream_credentials_go_to_the_upstream_only_never_to_a_file_url_it_lists_elsewhere(state):
    data = b"cdn bytes"
    with running() as upstream, running() as cdn:
        cdn.put("blobs/1.0", data)
        # The document names its file on another host (as an index names a CDN).
        document = {"versions": {"1.0": hashlib.sha256(data).hexdigest()}}
        upstream.put("index/lib.json", json.dumps(document).encode())
        upstream.auth["index/"] = ("robot", "s3cret")
        proxy = repository(state, "proxy", url=upstream.url, username="robot", password="s3cret")
        fmt = state.formats["notes-test"]
        original = fmt.parse

        def elsewhere(key, body, url):
            parsed = original(key, body, url)
            files = {
                p: FileRef(cdn.url + "blobs/" + p.rsplit("/", 1)[1][:-4], r.digests)
                for p, r in parsed.files.items()
            }
            return Parsed(parsed.model, files)

        fmt.parse = elsewhere

        async def scenario():
            try:
                found = await state.engine.get(proxy, "files/lib/1.0.txt", ADMIN, stream=False)
                assert found is not None and found.sha256 == hashlib.sha256(data).hexdigest()
            finally:
                del fmt.parse

        run(state, scenario)
        assert "authorization" in upstream.headers_of("index/lib.json")[0]
        assert cdn.count("blobs/1.0") == 1 and "authorization" not in cdn.headers_of("blobs/1.0")[0]


def test_a_streamed_file_failing_its_declared_digest_is_cut_off_never_cached_and_fetched_again(state):
    good, bad = os.urandom(300 * 1024), os.urandom(300 * 1024)
    with running() as upstream:
        upstream.put(
            "index/lib.json", json.dumps({"versions": {"1.0": hashlib.sha256(good).hexdigest()}}).encode()
        )
        upstream.put("blobs/1.0", bad)
        proxy = repository(state, "proxy", url=upstream.url)

        async def scenario():
            for _attempt in range(2):
                content = await state.engine.get(proxy, "files/lib/1.0.txt", ADMIN, stream=True)
                received = bytearray()
                with pytest.raises(Exception):  # noqa: B017 - the stream breaks before its last byte
                    async for chunk in content.chunks:
                        received += chunk
                assert len(received) < len(bad)  # never a complete-looking file
                await asyncio.sleep(0.2)  # the fetch's own bookkeeping finishes in the background
            assert upstream.hits[("GET", "blobs/1.0")] == 2
            upstream.put("blobs/1.0", good)
            stored = await state.engine.get(proxy, "files/lib/1.0.txt", ADMIN, stream=False)
            assert stored.sha256 == hashlib.sha256(good).hexdigest()

        run(state, scenario)


# -- the answer cache: a warm document is answered without a rebuild, and never stale ---------------
class _App:
    """What `request.app` must offer `base_url` (the application's state)."""

    def __init__(self, state):
        self.state = type("S", (), {"artifactory": state})()


def request_to(state, host="127.0.0.1:1", accept=None, encoding=None, etag=None, method="GET"):
    """A request reaching the server under `host`: the repository URL is built from it."""
    headers = [(b"host", host.encode())]
    for name, value in ((b"accept", accept), (b"accept-encoding", encoding), (b"if-none-match", etag)):
        if value:
            headers.append((name, value.encode()))
    scope = {
        "type": "http",
        "method": method,
        "path": "/",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": headers,
        "server": ("127.0.0.1", 1),
        "artifactory.state": state,
        "app": _App(state),
    }
    return Request(scope)


async def answer(state, repo, key, principal=ADMIN, **request):
    return await state.engine.index.respond(request_to(state, **request), repo, key, principal)


def versions_of(response):
    return set(json.loads(response.body)["versions"])


def test_a_warm_hosted_document_is_the_same_answer_until_its_name_changes_and_then_never_stale(state):
    hosted = repository(state, "hosted", write_policy="allow")
    fmt = state.formats["notes-test"]
    key = IndexKey("versions", "alpha")

    async def scenario():
        await upload(state, hosted, "alpha", "1.0", b"a1")
        first = await answer(state, fresh(state, hosted), key)
        builds = fmt.builds
        again = await answer(state, fresh(state, hosted), key)
        assert again.body is first.body and again.headers["etag"] == first.headers["etag"]
        await upload(state, fresh(state, hosted), "beta", "1.0", b"b1")  # another name moves the revision
        other = await answer(state, fresh(state, hosted), key)
        assert other.body is first.body and fmt.builds == builds  # checked, not rebuilt
        await upload(state, fresh(state, hosted), "alpha", "2.0", b"a2")  # stored
        assert versions_of(await answer(state, fresh(state, hosted), key)) == {"1.0", "2.0"}
        await upload(state, fresh(state, hosted), "alpha", "2.0", b"a2 again")  # updated in place
        updated = await answer(state, fresh(state, hosted), key)
        assert json.loads(updated.body)["versions"]["2.0"] == hashlib.sha256(b"a2 again").hexdigest()
        await state.engine.delete(fresh(state, hosted), "files/alpha/1.0.txt", ADMIN)  # deleted
        assert versions_of(await answer(state, fresh(state, hosted), key)) == {"2.0"}
        await state.engine.delete(fresh(state, hosted), "files/alpha/2.0.txt", ADMIN)
        with pytest.raises(NotFound):
            await answer(state, fresh(state, hosted), key)

    run(state, scenario)


def test_a_change_made_by_another_node_is_answered_once_this_node_sees_the_revision(state):
    hosted = repository(state, "hosted")
    other = AppState.build(state.settings)  # a second worker or node on the same database
    other.formats.add(Notes())
    key = IndexKey("versions", "alpha")

    async def scenario():
        try:
            await upload(state, hosted, "alpha", "1.0", b"a1")
            stale = fresh(state, hosted)
            assert versions_of(await answer(state, stale, key)) == {"1.0"}
            await upload(other, other.engine.repository(hosted.name), "alpha", "2.0", b"a2")
            # Until this node's snapshot is re-read (cache_seconds), its revision is the old one ...
            assert versions_of(await answer(state, stale, key)) == {"1.0"}
            state.engine.repos.forget(hosted.name)  # ... then the new revision is seen
            assert versions_of(await answer(state, fresh(state, hosted), key)) == {"1.0", "2.0"}
            # and the other node, which answered nothing yet, agrees byte for byte
            mine = await answer(state, fresh(state, hosted), key)
            theirs = await answer(other, other.engine.repository(hosted.name), key)
            assert mine.body == theirs.body and mine.headers["etag"] == theirs.headers["etag"]
        finally:
            await other.engine.close()
            other.db.dispose()

    run(state, scenario)


def test_a_group_answer_follows_its_members_contents_and_membership(state):
    first, second = repository(state, "hosted"), repository(state, "hosted")
    group = repository(state, "group", members=[first.name])
    key = IndexKey("versions", "lib")

    async def scenario():
        await upload(state, first, "lib", "1.0", b"one")
        assert versions_of(await answer(state, fresh(state, group), key)) == {"1.0"}
        await upload(state, fresh(state, first), "lib", "1.1", b"one-one")  # a member's content
        assert versions_of(await answer(state, fresh(state, group), key)) == {"1.0", "1.1"}
        await upload(state, second, "lib", "2.0", b"two")
        assert versions_of(await answer(state, fresh(state, group), key)) == {"1.0", "1.1"}
        state.engine.repos.update(
            group.name,
            {
                "name": group.name,
                "format": "notes-test",
                "type": "group",
                "members": [first.name, second.name],
            },
        )  # membership
        state.engine.repos.forget(group.name)
        assert versions_of(await answer(state, fresh(state, group), key)) == {"1.0", "1.1", "2.0"}
        await state.engine.delete(fresh(state, first), "files/lib/1.0.txt", ADMIN)
        state.engine.repos.forget(first.name)
        assert versions_of(await answer(state, fresh(state, group), key)) == {"1.1", "2.0"}

    run(state, scenario)


def test_a_proxy_answer_follows_its_revalidated_upstream_copy(state):
    with running() as upstream:
        upstream.put("index/lib.json", json.dumps({"versions": {"1.0": "ab" * 32}}).encode())
        proxy = repository(state, "proxy", url=upstream.url, metadata_ttl_seconds=3600)
        revalidating = repository(state, "proxy", url=upstream.url, metadata_ttl_seconds=0)
        key = IndexKey("versions", "lib")

        async def scenario():
            assert versions_of(await answer(state, proxy, key)) == {"1.0"}
            first = await answer(state, revalidating, key)
            assert versions_of(first) == {"1.0"}
            await state.engine.proxy.landed(revalidating)  # its copy is stored
            fetched = upstream.count("index/lib.json")
            same = await answer(state, revalidating, key)  # revalidated (304 upstream), same answer
            assert versions_of(same) == {"1.0"} and upstream.count("index/lib.json") == fetched + 1
            assert same.body is first.body  # the same document: the copy's bytes did not change
            await state.engine.proxy.landed(revalidating)
            upstream.put(
                "index/lib.json", json.dumps({"versions": {"1.0": "ab" * 32, "2.0": "cd" * 32}}).encode()
            )
            assert versions_of(await answer(state, revalidating, key)) == {"1.0", "2.0"}
            assert versions_of(await answer(state, proxy, key)) == {"1.0"}  # still fresh: not asked

        run(state, scenario)


def test_the_answer_varies_with_accept_encoding_host_and_conditional_get(state):
    hosted = repository(state, "hosted")
    key = IndexKey("versions", "big")

    async def scenario():
        for i in range(40):  # a document over the gzip threshold
            await upload(state, hosted if i == 0 else fresh(state, hosted), "big", f"1.{i}", b"%d" % i)
        repo = fresh(state, hosted)
        plain = await answer(state, repo, key)
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert plain.headers["content-length"] == str(len(plain.body))
        assert (
            plain.headers["cache-control"] == "no-cache"
            and plain.headers["vary"] == "Accept, Accept-Encoding"
        )
        zipped = await answer(state, repo, key, encoding="gzip, br")
        assert zipped.headers["content-encoding"] == "gzip" and gzip.decompress(zipped.body) == plain.body
        assert zipped.headers["content-length"] == str(len(zipped.body))
        assert zipped.headers["etag"] == plain.headers["etag"]
        text = await answer(state, repo, key, accept="text/plain")
        assert text.headers["content-type"] == "text/plain; charset=utf-8" and b"1.39" in text.body
        preferred = await answer(state, repo, key, accept="text/plain;q=0.5, application/*")
        assert preferred.body == plain.body and preferred.headers["etag"] == plain.headers["etag"]
        assert text.headers["etag"] != plain.headers["etag"]
        elsewhere = await answer(state, repo, key, host="mirror.test:8080")
        assert json.loads(elsewhere.body)["base"] == f"http://mirror.test:8080/repository/{repo.name}/"
        assert json.loads(plain.body)["base"] == f"http://127.0.0.1:1/repository/{repo.name}/"
        for etag in (plain.headers["etag"], f"W/{plain.headers['etag']}", "*"):
            unchanged = await answer(state, repo, key, etag=etag, encoding="gzip")
            assert unchanged.status_code == 304 and unchanged.body == b""
            assert unchanged.headers["etag"] == plain.headers["etag"]
            assert "content-length" not in unchanged.headers
        changed = await answer(state, repo, key, etag=text.headers["etag"])
        assert changed.status_code == 200 and changed.body == plain.body
        head = await answer(state, repo, key, method="HEAD")
        assert head.body == b"" and head.headers["content-length"] == str(len(plain.body))
        await upload(state, repo, "big", "2.0", b"new")
        stale = await answer(state, fresh(state, hosted), key, etag=plain.headers["etag"])
        assert stale.status_code == 200 and "2.0" in versions_of(stale)

    run(state, scenario)


def test_behind_a_trusted_reverse_proxy_the_answer_follows_its_forwarded_host(state):
    hosted = repository(state, "hosted")
    key = IndexKey("versions", "alpha")
    state.settings.trusted_proxies = ["*"]

    async def scenario():
        await upload(state, hosted, "alpha", "1.0", b"a1")
        repo = fresh(state, hosted)
        for forwarded in ("one.test", "two.test", "one.test"):
            request = request_to(state)
            request.scope["headers"].append((b"x-forwarded-host", forwarded.encode()))
            response = await state.engine.index.respond(request, repo, key, ADMIN)
            assert json.loads(response.body)["base"] == f"http://{forwarded}/repository/{repo.name}/"

    run(state, scenario)


class Located(Notes):
    """Notes whose files live where the upstream's "site" document says (Cargo's config.json `dl`):
    a versions document needs the site document to declare its files."""

    id = "located-test"
    SITE = IndexKey("site", whole_repository=True)

    def upstream_document(self, key):
        if key == self.SITE:
            return UpstreamDocument("site.json", accept="application/json")
        return UpstreamDocument(f"index/{key.name}.json", accept="application/json", needs=(self.SITE,))

    def parse(self, key, body, url, needed=None):
        if key == self.SITE:
            return Parsed(model=json.loads(body)["files_at"])
        if self.SITE not in needed:
            raise ValueError("no site document: the files cannot be located")
        versions = json.loads(body)["versions"]
        files = {
            f"files/{key.name}/{v}.txt": FileRef(f"{needed[self.SITE]}/{v}", {"sha256": d})
            for v, d in versions.items()
        }
        return Parsed(model=dict(versions), files=files)


def test_a_document_that_needs_another_is_parsed_with_its_model_and_again_when_it_changes(state):
    """A format declares what else of the upstream `parse` needs (`UpstreamDocument.needs`): the
    engine fetches and caches it through the same proxy and hands its model over, with no state
    of the format's own; a change to the needed document re-parses what depends on it."""
    one = b"first home"
    with running() as upstream:
        upstream.put("site.json", json.dumps({"files_at": f"{upstream.url}/one"}).encode())
        upstream.put(
            "index/lib.json", json.dumps({"versions": {"1.0": hashlib.sha256(one).hexdigest()}}).encode()
        )
        upstream.put("one/1.0", one)
        if "located-test" not in state.formats:
            state.formats.add(Located())
        name = f"proxy{os.urandom(4).hex()}"
        state.engine.repos.create(
            {
                "name": name,
                "format": "located-test",
                "type": "proxy",
                "url": upstream.url,
                "metadata_ttl_seconds": 0,
            }
        )
        proxy = state.engine.repository(name)

        async def scenario():
            # The file first, in a process that has read neither document: the engine reads both.
            found = await state.engine.get(proxy, "files/lib/1.0.txt", ADMIN, stream=False)
            assert found is not None and found.sha256 == hashlib.sha256(one).hexdigest()
            await state.engine.proxy.landed(proxy)
            # The site moves; the versions document is the same bytes, yet its files are now elsewhere.
            upstream.put("site.json", json.dumps({"files_at": f"{upstream.url}/two"}).encode())
            ref = await state.engine.index.file_ref(proxy, "files/lib/1.0.txt")
            assert ref is not None and ref.url == f"{upstream.url}/two/1.0"
            assert upstream.hits[("GET", "site.json")] >= 2

        run(state, scenario)
