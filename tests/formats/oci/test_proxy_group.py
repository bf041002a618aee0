"""Proxy repositories of a registry (a second server with token auth on, and a stub without the
referrers API) and group repositories over hosted and proxy members."""

import time
import uuid

import httpx
import pytest

from artifactory.testing.server import ADMIN_PASSWORD, LiveServer
from tests.formats.oci.images import OCI_INDEX, OCI_MANIFEST, digest, image, index, push
from tests.formats.oci.stub import StubRegistry


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """Another server hosting an oci repository, with anonymous access off: it answers 401 with a
    Bearer challenge, as public registries do."""
    live = LiveServer(tmp_path_factory.mktemp("upstream") / "data").start()
    with live.client() as admin:
        admin.put("/api/v1/settings", json={"anonymous_read": False})
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def up_repo(upstream):
    return upstream.create_repo("oci", name="library")


@pytest.fixture(scope="module")
def up_admin(upstream):
    with upstream.client() as client:
        yield client


def make_proxy(server, upstream, **config):
    return server.create_repo(
        "oci", "proxy", url=upstream.url, username="admin", password=ADMIN_PASSWORD, **config
    )


def test_upstream_really_demands_a_bearer_token(upstream, up_repo, up_admin):
    push(up_admin, f"{up_repo}/check", "v1", image("check"))
    response = httpx.get(f"{upstream.url}/v2/{up_repo}/check/manifests/v1")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer realm=")


def test_proxy_pulls_manifests_and_blobs_through_the_bearer_challenge(
    server, anon, upstream, up_repo, up_admin
):
    img = image("proxied", layers=2)
    push(up_admin, f"{up_repo}/app", "v1", img)
    proxy = make_proxy(server, upstream)
    name = f"{proxy}/{up_repo}/app"
    by_tag = anon.get(f"/v2/{name}/manifests/v1")
    assert by_tag.status_code == 200, by_tag.text
    assert by_tag.content == img.manifest
    assert by_tag.headers["content-type"] == OCI_MANIFEST
    assert by_tag.headers["docker-content-digest"] == img.digest
    assert anon.get(f"/v2/{name}/manifests/{img.digest}").content == img.manifest
    for blob in img.blobs:
        response = anon.get(f"/v2/{name}/blobs/{digest(blob)}")
        assert response.status_code == 200 and response.content == blob
        # Streamed as it arrives, before it is verified: no digest header for it.
        assert "docker-content-digest" not in response.headers
        cached = anon.get(f"/v2/{name}/blobs/{digest(blob)}")
        assert cached.content == blob and cached.headers["docker-content-digest"] == digest(blob)
    head = anon.head(f"/v2/{name}/blobs/{digest(img.layers[1])}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(img.layers[1]))


def test_digests_are_cached_for_good_and_tags_for_the_ttl(server, anon, upstream, up_repo, up_admin):
    first, second = image("ttl-first"), image("ttl-second")
    image_name = f"ttl{uuid.uuid4().hex[:6]}"
    push(up_admin, f"{up_repo}/{image_name}", "v1", first)
    cached = make_proxy(server, upstream, metadata_ttl_seconds=3600)
    fresh = make_proxy(server, upstream, metadata_ttl_seconds=0)
    for proxy in (cached, fresh):
        assert anon.get(f"/v2/{proxy}/{up_repo}/{image_name}/manifests/v1").status_code == 200
        assert anon.get(f"/v2/{proxy}/{up_repo}/{image_name}/manifests/{first.digest}").status_code == 200
        assert anon.get(f"/v2/{proxy}/{up_repo}/{image_name}/blobs/{digest(first.config)}").status_code == 200
    push(up_admin, f"{up_repo}/{image_name}", "v1", second)  # the tag moves upstream
    up_admin.delete(f"/v2/{up_repo}/{image_name}/manifests/{first.digest}")
    up_admin.delete(f"/v2/{up_repo}/{image_name}/blobs/{digest(first.config)}")
    time.sleep(1.1)
    moved = anon.get(f"/v2/{fresh}/{up_repo}/{image_name}/manifests/v1")
    assert moved.headers["docker-content-digest"] == second.digest
    kept = anon.get(f"/v2/{cached}/{up_repo}/{image_name}/manifests/v1")
    assert kept.headers["docker-content-digest"] == first.digest
    for proxy in (cached, fresh):  # gone upstream, still served from the cache
        assert anon.get(f"/v2/{proxy}/{up_repo}/{image_name}/manifests/{first.digest}").status_code == 200
        assert anon.get(f"/v2/{proxy}/{up_repo}/{image_name}/blobs/{digest(first.config)}").status_code == 200


def test_default_namespace_maps_single_segment_names(server, anon, upstream, up_repo, up_admin):
    img = image("namespaced")
    push(up_admin, f"{up_repo}/busy", "v1", img)
    proxy = make_proxy(server, upstream, default_namespace=up_repo)
    assert anon.get(f"/v2/{proxy}/busy/manifests/v1").content == img.manifest
    assert anon.get(f"/v2/{proxy}/{up_repo}/busy/manifests/v1").content == img.manifest  # two segments: as is


def test_proxy_tags_list_and_referrers_come_from_upstream(server, anon, upstream, up_repo, up_admin):
    subject = image("up-subject")
    push(up_admin, f"{up_repo}/refs", "v1", subject)
    push(up_admin, f"{up_repo}/refs", "v2", subject)
    signature = image("up-sig", subject=subject.manifest, artifact_type="application/x.sig")
    push(up_admin, f"{up_repo}/refs", signature.digest, signature)
    proxy = make_proxy(server, upstream)
    tags = anon.get(f"/v2/{proxy}/{up_repo}/refs/tags/list")
    assert tags.json() == {"name": f"{proxy}/{up_repo}/refs", "tags": ["v1", "v2"]}
    referrers = anon.get(f"/v2/{proxy}/{up_repo}/refs/referrers/{subject.digest}")
    assert [d["digest"] for d in referrers.json()["manifests"]] == [signature.digest]
    assert referrers.json()["manifests"][0]["artifactType"] == "application/x.sig"


def test_push_into_a_proxy_is_denied(server, admin, upstream):
    proxy = make_proxy(server, upstream)
    response = admin.post(f"/v2/{proxy}/app/blobs/uploads/")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"


@pytest.fixture
def stub():
    registry = StubRegistry().start()
    try:
        yield registry
    finally:
        registry.stop()


def test_proxy_sends_the_manifest_accept_header_upstream(server, anon, stub):
    img = image("accept")
    stub.answers["/v2/app/manifests/v1"] = (OCI_MANIFEST, img.manifest)
    proxy = server.create_repo("oci", "proxy", url=stub.url)
    assert anon.get(f"/v2/{proxy}/app/manifests/v1").status_code == 200
    accept = [h.get("accept", "") for path, h in stub.seen if path == "/v2/app/manifests/v1"][0]
    assert OCI_MANIFEST in accept and OCI_INDEX in accept
    assert "application/vnd.docker.distribution.manifest.v2+json" in accept


def test_referrers_fall_back_to_the_tag_schema_when_upstream_lacks_the_api(server, anon, stub):
    subject = image("fallback-subject")
    referrer = image("fallback-ref", subject=subject.manifest, artifact_type="application/x.sbom")
    fallback = index([referrer.manifest])
    stub.answers[f"/v2/app/manifests/{subject.digest.replace(':', '-')}"] = (OCI_INDEX, fallback)
    proxy = server.create_repo("oci", "proxy", url=stub.url)
    response = anon.get(f"/v2/{proxy}/app/referrers/{subject.digest}")
    assert response.status_code == 200
    assert [d["digest"] for d in response.json()["manifests"]] == [referrer.digest]


def _get(client, url, method="GET"):
    """The response, or None when the server aborted the transfer (headers were already sent)."""
    try:
        return client.request(method, url)
    except httpx.HTTPError:
        return None


def _refused(response):
    if response is None:
        return True
    assert "docker-content-digest" not in response.headers
    assert response.status_code == 502, response.text
    return response.request.method == "HEAD" or response.json()["errors"][0]["code"] == "UNAVAILABLE"


def test_bytes_that_do_not_match_their_digest_are_never_served_nor_cached(server, anon, stub):
    real_blob, fake_blob = b"the real bytes", b"the fake bytes"  # the same length
    real, fake = image("real-manifest"), image("fake-manifest")
    blob_path, manifest_path = f"/v2/app/blobs/{digest(real_blob)}", f"/v2/app/manifests/{real.digest}"
    stub.answers[blob_path] = ("application/octet-stream", fake_blob)
    stub.answers[manifest_path] = (OCI_MANIFEST, fake.manifest)
    proxy = server.create_repo("oci", "proxy", url=stub.url)
    blob_url = f"/v2/{proxy}/app/blobs/{digest(real_blob)}"
    manifest_url = f"/v2/{proxy}/app/manifests/{real.digest}"

    def asked(path):
        return sum(1 for seen, _headers in stub.seen if seen == path)

    for attempt in range(1, 3):  # nothing is cached, nor remembered as a miss: each try asks again
        assert _refused(_get(anon, blob_url))
        assert _refused(_get(anon, blob_url, "HEAD"))
        assert _refused(_get(anon, manifest_url))
        assert asked(blob_path) == 2 * attempt and asked(manifest_path) == attempt
    stub.answers[blob_path] = ("application/octet-stream", real_blob)
    stub.answers[manifest_path] = (OCI_MANIFEST, real.manifest)
    assert anon.get(blob_url).content == real_blob
    assert anon.get(manifest_url).content == real.manifest
    head = anon.head(blob_url)
    assert head.status_code == 200 and head.headers["docker-content-digest"] == digest(real_blob)


def test_group_pulls_across_members_in_order_and_refuses_pushes(
    server, admin, anon, upstream, up_repo, up_admin
):
    hosted = server.create_repo("oci")
    proxy = make_proxy(server, upstream)
    group = server.create_repo("oci", "group", members=[hosted, proxy])
    local, remote = image("group-local"), image("group-remote")
    push(admin, f"{hosted}/{up_repo}/mixed", "local", local)
    push(up_admin, f"{up_repo}/remote-only", "v1", remote)
    assert anon.get(f"/v2/{group}/{up_repo}/mixed/manifests/local").content == local.manifest
    assert anon.get(f"/v2/{group}/{up_repo}/remote-only/manifests/v1").content == remote.manifest
    assert (
        anon.get(f"/v2/{group}/{up_repo}/remote-only/blobs/{digest(remote.config)}").content == remote.config
    )
    assert anon.get(f"/v2/{group}/{up_repo}/mixed/tags/list").json()["tags"] == ["local"]
    refused = admin.post(f"/v2/{group}/x/blobs/uploads/")
    assert refused.status_code == 403
    error = refused.json()["errors"][0]
    assert error["code"] == "DENIED" and hosted in error["message"]
    refused_manifest = admin.put(
        f"/v2/{group}/x/manifests/v1", content=local.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert refused_manifest.status_code == 403


def test_a_group_with_a_write_member_still_refuses_pushes_and_names_it(server, admin):
    """A push names the repository its image lives in: through a group it would land elsewhere."""
    member = server.create_repo("oci")
    group = server.create_repo("oci", "group", members=[member], write_member=member)
    refused = admin.post(f"/v2/{group}/x/blobs/uploads/")
    assert refused.status_code == 403
    error = refused.json()["errors"][0]
    assert error["code"] == "DENIED" and f"push to {member}" in error["message"]


def test_deleting_through_a_group_is_unsupported_and_leaves_the_member_alone(server, admin, anon):
    member = server.create_repo("oci")
    group = server.create_repo("oci", "group", members=[member])
    img = image("group-delete")
    push(admin, f"{member}/app", "v1", img)
    for path in ("manifests/v1", f"manifests/{img.digest}", f"blobs/{digest(img.config)}"):
        response = admin.delete(f"/v2/{group}/app/{path}")
        assert response.status_code == 405, path
        assert response.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert anon.get(f"/v2/{group}/app/manifests/v1").content == img.manifest
    assert anon.get(f"/v2/{member}/app/blobs/{digest(img.config)}").content == img.config


def test_deleting_a_manifest_that_is_not_there_is_manifest_unknown(server, admin):
    repo = server.create_repo("oci")
    response = admin.delete(f"/v2/{repo}/app/manifests/{image('never-pushed').digest}")
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_group_merges_referrers_of_its_members(server, admin, anon):
    first, second = server.create_repo("oci"), server.create_repo("oci")
    group = server.create_repo("oci", "group", members=[first, second])
    subject = image("merged-subject")
    one = image("merged-one", subject=subject.manifest, artifact_type="application/x.one")
    two = image("merged-two", subject=subject.manifest, artifact_type="application/x.two")
    push(admin, f"{first}/app", one.digest, one)
    push(admin, f"{second}/app", two.digest, two)
    listed = anon.get(f"/v2/{group}/app/referrers/{subject.digest}").json()["manifests"]
    assert {d["digest"] for d in listed} == {one.digest, two.digest}
