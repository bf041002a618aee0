"""Tag lists and referrers as the engine's index documents: revalidated from a proxy's upstream,
refused when malformed, merged by groups behind the dependency-confusion guard, answered with ETag
and 304, rebuilt when a push changes them; and a group never serves a proxied file whose bytes do
not match its digest."""

import json
import time

import httpx
import pytest

from tests.formats.oci.images import OCI_INDEX, OCI_MANIFEST, digest, image, index, push
from tests.formats.oci.stub import StubRegistry


@pytest.fixture
def stub():
    registry = StubRegistry().start()
    try:
        yield registry
    finally:
        registry.stop()


def _tags(*tags):
    return ("application/json", json.dumps({"name": "app", "tags": list(tags)}).encode())


def _asked(stub, path):
    return sum(1 for seen, _headers in stub.seen if seen == path)


def test_hosted_tag_list_answers_304_while_unchanged_and_changes_with_a_push(admin, anon, name):
    push(admin, name, "v1", image("etag-one"))
    first = anon.get(f"/v2/{name}/tags/list")
    assert first.json() == {"name": name, "tags": ["v1"]}
    etag = first.headers["etag"]
    assert first.headers["docker-distribution-api-version"] == "registry/2.0"
    unchanged = anon.get(f"/v2/{name}/tags/list", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    push(admin, name, "v2", image("etag-two"))
    changed = anon.get(f"/v2/{name}/tags/list", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["tags"] == ["v1", "v2"]
    admin.delete(f"/v2/{name}/manifests/v1")
    assert anon.get(f"/v2/{name}/tags/list").json()["tags"] == ["v2"]


def test_a_proxy_revalidates_its_tag_list_and_keeps_the_last_good_copy_over_a_malformed_one(
    server, anon, stub
):
    stub.answers["/v2/app/tags/list"] = _tags("b", "a")
    proxy = server.create_repo("oci", "proxy", url=stub.url, metadata_ttl_seconds=0)
    listed = anon.get(f"/v2/{proxy}/app/tags/list")
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"name": f"{proxy}/app", "tags": ["a", "b"]}
    stub.answers["/v2/app/tags/list"] = ("application/json", b"{not json")
    time.sleep(1.1)
    kept = anon.get(f"/v2/{proxy}/app/tags/list")
    assert kept.status_code == 200 and kept.json()["tags"] == ["a", "b"]
    stub.answers["/v2/app/tags/list"] = _tags("c")
    time.sleep(1.1)
    assert anon.get(f"/v2/{proxy}/app/tags/list").json()["tags"] == ["c"]


def test_a_malformed_upstream_tag_list_is_502_in_the_spec_shape_and_is_asked_again(server, anon, stub):
    stub.answers["/v2/app/tags/list"] = ("application/json", b'{"tags": "not a list"}')
    proxy = server.create_repo("oci", "proxy", url=stub.url)
    for attempt in (1, 2):
        refused = anon.get(f"/v2/{proxy}/app/tags/list")
        assert refused.status_code == 502
        assert refused.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert _asked(stub, "/v2/app/tags/list") == attempt
    stub.answers["/v2/app/tags/list"] = _tags("fixed")
    assert anon.get(f"/v2/{proxy}/app/tags/list").json()["tags"] == ["fixed"]


def test_a_group_lists_no_proxy_tag_for_an_image_a_hosted_member_holds(server, admin, anon, stub):
    hosted = server.create_repo("oci")
    proxy = server.create_repo("oci", "proxy", url=stub.url)
    group = server.create_repo("oci", "group", members=[proxy, hosted])  # the proxy comes first
    push(admin, f"{hosted}/app", "local", image("guarded-local"))
    stub.answers["/v2/app/tags/list"] = _tags("planted")
    stub.answers["/v2/other/tags/list"] = _tags("remote")
    assert anon.get(f"/v2/{group}/app/tags/list").json() == {"name": f"{group}/app", "tags": ["local"]}
    assert anon.get(f"/v2/{group}/other/tags/list").json()["tags"] == ["remote"]
    paged = anon.get(f"/v2/{group}/app/tags/list", params={"n": 1})
    assert paged.json() == {"name": f"{group}/app", "tags": ["local"]}


def test_a_group_merges_hosted_referrers_with_a_proxy_s_referrers_tag(server, admin, anon, stub):
    hosted = server.create_repo("oci")
    proxy = server.create_repo("oci", "proxy", url=stub.url)
    group = server.create_repo("oci", "group", members=[hosted, proxy])
    subject = image("merged-fallback-subject")
    referrer = image("merged-fallback-ref", subject=subject.manifest, artifact_type="application/x.sbom")
    stub.answers[f"/v2/app/manifests/{subject.digest.replace(':', '-')}"] = (
        OCI_INDEX,
        index([referrer.manifest]),
    )
    response = anon.get(f"/v2/{group}/app/referrers/{subject.digest}")
    assert response.status_code == 200
    assert response.headers["content-type"] == OCI_INDEX
    assert [d["digest"] for d in response.json()["manifests"]] == [referrer.digest]
    filtered = anon.get(
        f"/v2/{group}/app/referrers/{subject.digest}", params={"artifactType": "application/x.other"}
    )
    assert filtered.json()["manifests"] == [] and filtered.headers["oci-filters-applied"] == "artifactType"


def _refused(response):
    """502 in the spec's shape, or a transfer the server cut (its headers were already sent)."""
    if response is None:
        return True
    assert "docker-content-digest" not in response.headers
    assert response.status_code == 502, response.text
    return response.request.method == "HEAD" or response.json()["errors"][0]["code"] == "UNAVAILABLE"


def _get(client, url):
    try:
        return client.get(url)
    except httpx.HTTPError:
        return None


def test_a_group_never_serves_nor_caches_proxied_bytes_that_do_not_match_their_digest(server, anon, stub):
    real_blob, fake_blob = b"group: the real bytes", b"group: the fake bytes"
    real, fake = image("group-real"), image("group-fake")
    blob_path, manifest_path = f"/v2/app/blobs/{digest(real_blob)}", f"/v2/app/manifests/{real.digest}"
    stub.answers[blob_path] = ("application/octet-stream", fake_blob)
    stub.answers[manifest_path] = (OCI_MANIFEST, fake.manifest)
    hosted = server.create_repo("oci")
    proxy = server.create_repo("oci", "proxy", url=stub.url)
    group = server.create_repo("oci", "group", members=[hosted, proxy])
    blob_url = f"/v2/{group}/app/blobs/{digest(real_blob)}"
    manifest_url = f"/v2/{group}/app/manifests/{real.digest}"
    for attempt in (1, 2):  # nothing cached, nothing remembered as a miss: each try asks again
        assert _refused(_get(anon, blob_url))
        assert _refused(_get(anon, manifest_url))
        assert _asked(stub, blob_path) == attempt and _asked(stub, manifest_path) == attempt
    stub.answers[blob_path] = ("application/octet-stream", real_blob)
    stub.answers[manifest_path] = (OCI_MANIFEST, real.manifest)
    assert anon.get(blob_url).content == real_blob
    assert anon.get(manifest_url).content == real.manifest


def test_a_proxy_configured_with_the_v2_url_reaches_the_same_layout(server, anon, stub):
    img = image("v2-url")
    stub.answers["/v2/app/manifests/v1"] = (OCI_MANIFEST, img.manifest)
    stub.answers["/v2/app/tags/list"] = _tags("v1")
    proxy = server.create_repo("oci", "proxy", url=f"{stub.url}/v2")
    assert anon.get(f"/v2/{proxy}/app/manifests/v1").content == img.manifest
    assert anon.get(f"/v2/{proxy}/app/tags/list").json()["tags"] == ["v1"]
    assert {path for path, _headers in stub.seen} == {"/v2/app/manifests/v1", "/v2/app/tags/list"}
