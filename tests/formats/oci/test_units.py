"""The pure parts: names, references, digests, manifests, pagination, tokens, challenges, GC planning."""

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from artifactory_formats.oci import auth, gc
from artifactory_formats.oci.coordinates import (
    IMAGE,
    InvalidDigest,
    locate,
    parse_digest,
    parse_name,
)
from artifactory_formats.oci.errors import OCIError
from artifactory_formats.oci.metadata import paginate, parse_manifest, references_of
from artifactory_formats.oci.upstream import RegistryAuth, parse_challenge, registry_url
from hypothesis import given
from hypothesis import strategies as st

from artifactory.plugin import Grant, Principal, StoredAsset
from tests.formats.oci.images import OCI_INDEX, OCI_MANIFEST, image, index

component = st.builds(
    lambda parts, sep: sep.join(parts),
    st.lists(st.text("abcxyz0189", min_size=1, max_size=6), min_size=1, max_size=3),
    st.sampled_from([".", "_", "__", "-", "--"]),
)


@given(st.lists(component, min_size=1, max_size=4))
def test_every_spec_image_name_parses_with_its_repository(parts):
    image_name = "/".join(parts)
    parsed = parse_name(f"repo/{image_name}")
    if len(image_name) + 5 <= 255:
        assert parsed is not None and parsed.repository == "repo" and parsed.image == image_name


@given(st.text(min_size=1, max_size=60))
def test_name_parsing_never_accepts_what_the_spec_grammar_refuses(text):
    parsed = parse_name(f"repo/{text}")
    assert parsed is None or IMAGE.match(parsed.image)


@given(st.binary(max_size=64))
def test_real_digests_parse_and_anything_else_is_invalid_digest(data):
    assert str(parse_digest("sha256:" + hashlib.sha256(data).hexdigest())).startswith("sha256:")
    assert parse_digest("sha512:" + hashlib.sha512(data).hexdigest()).algorithm == "sha512"
    with pytest.raises(InvalidDigest):
        parse_digest("sha256:" + hashlib.sha256(data).hexdigest()[:-1])


@given(st.text(max_size=80))
def test_digest_parser_raises_only_invalid_digest(text):
    try:
        parse_digest(text)
    except InvalidDigest:
        pass


def test_paths_locate_back_to_image_kind_and_reference():
    assert locate("a/b/manifests/v1").image == "a/b"
    assert locate("a/b/blobs/sha256:00").kind == "blob"
    assert locate("a/tags/list").kind == "tags"
    assert locate("a/b/referrers/sha256:00").kind == "referrers"
    assert locate("nothing-here") is None


@given(st.lists(st.from_regex(r"\A[a-z0-9]{1,6}\Z", fullmatch=True), max_size=30), st.integers(1, 7))
def test_pages_walked_with_last_cover_every_name_once_in_order(names, n):
    seen, last = [], None
    while True:
        page = paginate(names, n, last)
        seen.extend(page.items)
        if page.next_last is None:
            break
        last = page.next_last
    assert seen == sorted(set(names))


def test_parse_manifest_finds_blobs_children_subject_and_artifact_type():
    subject = image("s")
    img = image(
        "x", layers=2, subject=subject.manifest, artifact_type="application/x.t", annotations={"a": "b"}
    )
    parsed = parse_manifest(img.manifest, OCI_MANIFEST)
    assert len(parsed.blobs) == 3 and str(parsed.subject) == subject.digest
    assert parsed.attributes(img.digest, len(img.manifest))["oci"]["artifactType"] == "application/x.t"
    idx = parse_manifest(index([img.manifest]), f"{OCI_INDEX}; charset=utf-8")
    assert [str(d) for d in idx.children] == [img.digest]


@pytest.mark.parametrize("body", [b"", b"null", b"[1]", b'{"schemaVersion": 2}', b"\xff\xfe"])
def test_parse_manifest_refuses_garbage_with_manifest_invalid(body):
    with pytest.raises(OCIError) as caught:
        parse_manifest(body, OCI_MANIFEST)
    assert caught.value.code == "MANIFEST_INVALID"


def test_tokens_round_trip_and_refuse_other_secrets_and_expiry():
    principal = Principal("alice", frozenset({"dev"}))
    access = [auth.Access("repository", "r/i", frozenset({"pull"}))]
    token = auth.issue(b"secret", principal, access, "svc", seconds=60, now=1000)
    assert auth.is_ours(token)
    checked = auth.verify(b"secret", token, now=1001)
    assert checked.username == "alice" and checked.roles == {"dev"}
    assert checked.grants("r/i", "read") and not checked.grants("r/i", "write")
    assert not checked.grants("r/other", "read")
    with pytest.raises(auth.InvalidToken):
        auth.verify(b"other", token, now=1001)
    with pytest.raises(auth.InvalidToken):
        auth.verify(b"secret", token, now=2000)
    assert not auth.is_ours("art_0123456789abcdef_secret")


def test_scopes_parse_several_and_skip_garbage():
    scopes = auth.parse_scopes(["repository:r/a:pull,push", "repository:r/b:pull registry:catalog:*", "junk"])
    assert [(s.type, s.name, sorted(s.actions)) for s in scopes] == [
        ("repository", "r/a", ["pull", "push"]),
        ("repository", "r/b", ["pull"]),
        ("registry", "catalog", ["*"]),
    ]


def test_challenge_round_trips_through_the_upstream_parser():
    header = auth.challenge("https://h/v2/token", "h", "repository:a/b:pull", "insufficient_scope")
    scheme, params = parse_challenge(header)
    assert scheme == "bearer"
    assert params == {
        "realm": "https://h/v2/token",
        "service": "h",
        "scope": "repository:a/b:pull",
        "error": "insufficient_scope",
    }


def test_upstream_urls_follow_the_v2_layout_and_default_namespace():
    config = {"url": "https://registry.example.test/", "default_namespace": "library"}
    assert (
        registry_url(config, "alpine/manifests/3")
        == "https://registry.example.test/v2/library/alpine/manifests/3"
    )
    assert (
        registry_url(config, "me/app/blobs/sha256:00")
        == "https://registry.example.test/v2/me/app/blobs/sha256:00"
    )
    assert registry_url({"url": "http://h:5000/v2"}, "a/tags/list") == "http://h:5000/v2/a/tags/list"


@pytest.mark.parametrize(
    ("url", "asked", "sent"),
    [
        ("https://r.test", "https://r.test/app/manifests/v1", "https://r.test/v2/library/app/manifests/v1"),
        ("https://r.test/v2", "https://r.test/v2/me/app/tags/list", "https://r.test/v2/me/app/tags/list"),
        (
            "https://r.test/",
            "https://r.test/app/referrers/sha256:00",
            "https://r.test/v2/library/app/referrers/sha256:00",
        ),
        # a redirect: already in the /v2/ layout, elsewhere on the host, or on another host
        ("https://r.test", "https://r.test/v2/x/blobs/sha256:00", "https://r.test/v2/x/blobs/sha256:00"),
        ("https://r.test", "https://r.test/storage/blob?sig=1", "https://r.test/storage/blob?sig=1"),
        ("https://r.test", "https://cdn.test/app/blobs/sha256:00", "https://cdn.test/app/blobs/sha256:00"),
    ],
)
def test_a_proxy_asks_the_registry_s_v2_layout_for_each_repository_path(url, asked, sent):
    auth = RegistryAuth({"url": url, "default_namespace": "library"})
    request = httpx.Request("GET", asked)
    flow = auth.async_auth_flow(request)
    prepared = asyncio.run(flow.__anext__())
    assert str(prepared.url) == sent


def _asset(path, data, attributes=None, age=3600):
    return StoredAsset(
        repository="r",
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        md5="",
        sha1="",
        sha512="",
        content_type="",
        updated_at=datetime.now(UTC) - timedelta(seconds=age),
        attributes=attributes or {},
    )


def _sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _facts(*images):
    """What gc knows of each manifest, read from its bytes as it would for a proxy's cache."""
    return {hashlib.sha256(m).hexdigest(): gc.Facts(*references_of(m)) for m in images}


def test_gc_plan_keeps_tagged_content_and_referrers_and_drops_the_rest_after_grace():
    kept, dropped = image("kept"), image("dropped")
    signature = image("signature", subject=kept.manifest)
    manifests = {
        "v1": _asset("i/manifests/v1", kept.manifest),
        kept.digest: _asset(f"i/manifests/{kept.digest}", kept.manifest),
        dropped.digest: _asset(f"i/manifests/{dropped.digest}", dropped.manifest),
        signature.digest: _asset(f"i/manifests/{signature.digest}", signature.manifest),
    }
    blobs = {
        _sha(b): _asset(f"i/blobs/{_sha(b)}", b) for b in (*kept.blobs, *dropped.blobs, *signature.blobs)
    }
    young = b"just uploaded"
    blobs[_sha(young)] = _asset("i/blobs/young", young, age=1)
    facts = _facts(kept.manifest, dropped.manifest, signature.manifest)
    doomed = gc.plan(
        gc.Image(manifests, blobs), facts, datetime.now(UTC) - timedelta(seconds=60), cache=False
    )
    expected = {f"i/manifests/{dropped.digest}"} | {f"i/blobs/{_sha(b)}" for b in dropped.blobs}
    assert set(doomed) == expected
    json.dumps(doomed)


def test_gc_plan_follows_manifests_cached_by_tag_only_through_indexes_and_referrers():
    """A proxy caches `manifests/<tag>` with no digest twin and no attributes of ours."""
    arm, amd = image("arm"), image("amd")
    multi = index([arm.manifest, amd.manifest])
    signature = image("signature", subject=multi)
    manifests = {
        "v1": _asset("i/manifests/v1", multi),
        arm.digest: _asset(f"i/manifests/{arm.digest}", arm.manifest),
        signature.digest: _asset(f"i/manifests/{signature.digest}", signature.manifest),
    }
    blobs = {_sha(b): _asset(f"i/blobs/{_sha(b)}", b) for b in (*arm.blobs, *signature.blobs)}
    stray = b"fetched on its own"
    blobs[_sha(stray)] = _asset(f"i/blobs/{_sha(stray)}", stray)
    facts = _facts(multi, arm.manifest, signature.manifest)
    cutoff = datetime.now(UTC)
    assert gc.plan(gc.Image(manifests, blobs), facts, cutoff, cache=True) == [f"i/blobs/{_sha(stray)}"]
    # The same assets in a hosted repository: the tagged index keeps its child and its referrer.
    hosted = gc.plan(gc.Image(manifests, blobs), facts, cutoff, cache=False)
    assert hosted == [f"i/blobs/{_sha(stray)}"]


def test_gc_plan_keeps_old_blobs_of_a_manifest_younger_than_the_grace():
    late = image("late")
    manifests = {late.digest: _asset(f"i/manifests/{late.digest}", late.manifest, age=1)}
    blobs = {_sha(b): _asset(f"i/blobs/{_sha(b)}", b, age=3600) for b in late.blobs}
    cutoff = datetime.now(UTC) - timedelta(seconds=60)
    assert gc.plan(gc.Image(manifests, blobs), _facts(late.manifest), cutoff, cache=False) == []
    old = {late.digest: _asset(f"i/manifests/{late.digest}", late.manifest, age=3600)}
    doomed = gc.plan(gc.Image(old, blobs), _facts(late.manifest), cutoff, cache=False)
    assert set(doomed) == {f"i/manifests/{late.digest}", *(f"i/blobs/{_sha(b)}" for b in late.blobs)}


def test_references_of_reads_every_descriptor_and_refuses_what_is_not_a_manifest():
    document = {
        "config": {"digest": "sha256:c"},
        "layers": [{"digest": "sha256:l"}, "junk"],
        "manifests": [{"digest": "sha256:m"}],
        "blobs": [{"digest": "sha256:b"}],
        "fsLayers": [{"blobSum": "sha256:f"}],
        "subject": {"digest": "sha256:s"},
    }
    assert references_of(json.dumps(document).encode()) == (
        ("sha256:c", "sha256:l", "sha256:m", "sha256:b", "sha256:f"),
        "sha256:s",
    )
    for bad in (b"[]", b"not json", b"[" * 100_000):
        with pytest.raises(ValueError):
            references_of(bad)


def test_a_registry_token_proves_a_principal_confined_to_v2_its_repositories_and_its_life():
    principal = Principal("admin", frozenset({"admin"}))
    access = [
        auth.Access("repository", "r/a/b", frozenset({"pull"})),
        auth.Access("repository", "r/c", frozenset({"push", "delete"})),
        auth.Access("repository", "s/x", frozenset({"*"})),
        auth.Access("repository", "t/none", frozenset()),
        auth.Access("registry", "catalog", frozenset({"*"})),
    ]
    token = auth.issue(b"secret", principal, access, "svc", seconds=60, now=1000)
    checked = auth.verify(b"secret", token, now=1001)
    assert checked.only_under == "/v2/" and checked.expires_at == 1060
    assert set(checked.scope or ()) == {
        Grant("r", frozenset({"read", "write", "delete"})),
        Grant("s", frozenset({"read", "write", "delete"})),
    }
    assert not checked.is_admin
    assert checked.scope_grants("r", "read") and not checked.scope_grants("t", "read")


def test_a_challenge_from_a_host_the_registry_redirected_to_gets_no_credentials():
    """The registry sends a blob to another host, which answers 401 naming a token realm of its
    own: neither the proxy's password nor any token request goes there; the 401 stands."""
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if request.url.host == "registry.test":
            return httpx.Response(307, headers={"location": "https://storage.test/blob"})
        if request.url.host == "storage.test":
            challenge = 'Bearer realm="https://collector.test/token",service="x"'
            return httpx.Response(401, headers={"www-authenticate": challenge})
        return httpx.Response(200, json={"token": "t"})

    auth = RegistryAuth({"url": "https://registry.test", "username": "alice", "password": "s3cret"})

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer), follow_redirects=True) as client:
            return await client.get("https://registry.test/v2/team/app/blobs/sha256:" + "a" * 64, auth=auth)

    response = asyncio.run(fetch())
    assert response.status_code == 401
    assert [r.url.host for r in asked] == ["registry.test", "storage.test"]
    assert all("authorization" not in r.headers for r in asked[1:])


def test_a_challenge_from_the_registry_itself_is_answered_with_a_token():
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if request.url.host == "auth.test":
            return httpx.Response(200, json={"token": "t0k"})
        if request.headers.get("authorization") == "Bearer t0k":
            return httpx.Response(200, content=b"blob")
        return httpx.Response(401, headers={"www-authenticate": 'Bearer realm="https://auth.test/token"'})

    auth = RegistryAuth({"url": "https://registry.test", "username": "alice", "password": "s3cret"})

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await client.get("https://registry.test/v2/team/app/blobs/sha256:" + "a" * 64, auth=auth)

    response = asyncio.run(fetch())
    assert response.status_code == 200 and response.content == b"blob"
    assert asked[1].url.host == "auth.test" and asked[1].headers["authorization"].startswith("Basic ")
