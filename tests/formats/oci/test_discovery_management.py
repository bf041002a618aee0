"""Content discovery (tags, catalog, referrers) and content management (deletion) workflows."""

import json
import time
import uuid

import httpx

from artifactory.testing.server import ADMIN_PASSWORD
from tests.formats.oci.images import (
    EMPTY_JSON,
    OCI_INDEX,
    digest,
    image,
    index,
    push,
    push_blob,
)


def test_tags_list_is_sorted_and_paginates_with_n_last_and_link(admin, anon, name):
    img = image("tags")
    for tag in ("b", "a", "d", "c", "e"):
        assert push(admin, name, tag, img).status_code == 201
    full = anon.get(f"/v2/{name}/tags/list")
    assert full.json() == {"name": name, "tags": ["a", "b", "c", "d", "e"]}
    assert "link" not in full.headers
    first = anon.get(f"/v2/{name}/tags/list", params={"n": 2})
    assert first.json()["tags"] == ["a", "b"]
    assert first.headers["link"] == f'</v2/{name}/tags/list?n=2&last=b>; rel="next"'
    second = anon.get(f"/v2/{name}/tags/list", params={"n": 2, "last": "b"})
    assert second.json()["tags"] == ["c", "d"]
    last = anon.get(f"/v2/{name}/tags/list", params={"n": 2, "last": "d"})
    assert last.json()["tags"] == ["e"] and "link" not in last.headers
    assert anon.get(f"/v2/{name}/tags/list", params={"n": 0}).json()["tags"] == []
    for odd in ("²", "٣"):  # not ASCII digits: refused in the OCI error shape, never a 500
        refused = anon.get(f"/v2/{name}/tags/list", params={"n": odd})
        assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_tags_list_of_an_unknown_image_is_name_unknown(anon, name):
    response = anon.get(f"/v2/{name}/tags/list")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_catalog_lists_repository_image_names_with_pagination(server, admin, anon):
    repo = server.create_repo("oci")
    img = image("catalog")
    for image_name in ("zeta", "alpha", "mid/nested"):
        push(admin, f"{repo}/{image_name}", "v1", img)
    listed = [n for n in anon.get("/v2/_catalog").json()["repositories"] if n.startswith(f"{repo}/")]
    assert listed == [f"{repo}/alpha", f"{repo}/mid/nested", f"{repo}/zeta"]
    page = anon.get("/v2/_catalog", params={"n": 1, "last": f"{repo}/alpha"})
    assert page.json()["repositories"] == [f"{repo}/mid/nested"]
    assert page.headers["link"] == f'</v2/_catalog?n=1&last={repo}%2Fmid%2Fnested>; rel="next"'


def _catalog_of(server, **kwargs):
    response = httpx.get(f"{server.url}/v2/_catalog", **kwargs)
    assert response.status_code == 200, response.text
    return set(response.json()["repositories"])


def test_catalog_through_a_group_lists_only_members_the_caller_may_read(server, admin):
    prefix = f"cat{uuid.uuid4().hex[:6]}"
    readable = server.create_repo("oci", name=f"{prefix}-open")
    hidden = server.create_repo("oci", name=f"secret{uuid.uuid4().hex[:6]}")
    inner = server.create_repo("oci", "group", name=f"{prefix}-inner", members=[readable, hidden])
    outer = server.create_repo("oci", "group", name=f"{prefix}-outer", members=[inner])
    push(admin, f"{readable}/public-app", "v1", image("catalog-open"))
    push(admin, f"{hidden}/secret-app", "v1", image("catalog-hidden"))
    expected = {f"{repo}/public-app" for repo in (readable, inner, outer)}

    scoped = admin.post(
        "/api/v1/tokens", json={"scope": {"repositories": f"{prefix}-*", "actions": ["read"]}}
    )
    assert scoped.status_code == 201, scoped.text
    listed = _catalog_of(server, headers={"Authorization": f"Bearer {scoped.json()['token']}"})
    # The scope names the groups, so the token reads through them as far as its owner's roles
    # allow (an admin: every member); the hidden member itself is outside the scope.
    through_groups = {f"{group}/{app}" for group in (inner, outer) for app in ("public-app", "secret-app")}
    assert {n for n in listed if n.endswith("-app")} == {f"{readable}/public-app"} | through_groups

    role = f"reader-{prefix}"
    privileges = [{"repositories": f"{prefix}-*", "actions": ["read"]}]
    assert admin.post("/api/v1/roles", json={"name": role, "privileges": privileges}).status_code == 201
    user = server.create_user([role])
    admin.put("/api/v1/settings", json={"anonymous_read": False})
    try:
        time.sleep(0.3)  # the security settings cache
        listed = _catalog_of(server, auth=user)
        assert {n for n in listed if n.endswith("-app")} == expected
        token = httpx.get(
            f"{server.url}/v2/token", params={"service": "x", "scope": "registry:catalog:*"}, auth=user
        ).json()["token"]
        listed = _catalog_of(server, headers={"Authorization": f"Bearer {token}"})
        assert {n for n in listed if n.endswith("-app")} == expected
        assert f"{hidden}/secret-app" in _catalog_of(server, auth=("admin", ADMIN_PASSWORD))
    finally:
        admin.put("/api/v1/settings", json={"anonymous_read": True})


def _referrers_fixture(admin, name):
    subject = image("subject")
    push(admin, name, "v1", subject)
    push_blob(admin, name, b"{}")
    signature = image(
        "signature",
        subject=subject.manifest,
        artifact_type="application/vnd.example.signature",
        config_media_type=EMPTY_JSON,
        annotations={"org.example.kind": "signature"},
    )
    sbom = image(
        "sbom",
        subject=subject.manifest,
        config_media_type="application/vnd.example.sbom.config",  # no artifactType: falls back
        annotations={"org.example.kind": "sbom"},
    )
    for referrer in (signature, sbom):
        response = push(admin, name, referrer.digest, referrer)
        assert response.headers["oci-subject"] == subject.digest
    referring_index = index(
        [sbom.manifest], subject=subject.manifest, artifactType="application/vnd.example.bundle"
    )
    response = admin.put(
        f"/v2/{name}/manifests/{digest(referring_index)}",
        content=referring_index,
        headers={"Content-Type": OCI_INDEX},
    )
    assert response.status_code == 201
    return subject, signature, sbom, referring_index


def test_referrers_list_descriptors_with_annotations_and_artifact_type_fallback(admin, anon, name):
    subject, signature, sbom, referring_index = _referrers_fixture(admin, name)
    response = anon.get(f"/v2/{name}/referrers/{subject.digest}")
    assert response.status_code == 200
    assert response.headers["content-type"] == OCI_INDEX
    document = response.json()
    assert document["mediaType"] == OCI_INDEX and document["schemaVersion"] == 2
    by_digest = {d["digest"]: d for d in document["manifests"]}
    assert set(by_digest) == {signature.digest, sbom.digest, digest(referring_index)}
    assert by_digest[signature.digest]["artifactType"] == "application/vnd.example.signature"
    assert by_digest[signature.digest]["annotations"] == {"org.example.kind": "signature"}
    assert by_digest[signature.digest]["size"] == len(signature.manifest)
    assert by_digest[sbom.digest]["artifactType"] == "application/vnd.example.sbom.config"
    assert by_digest[digest(referring_index)]["mediaType"] == OCI_INDEX
    assert by_digest[digest(referring_index)]["artifactType"] == "application/vnd.example.bundle"


def test_referrers_artifact_type_filter_sets_oci_filters_applied(admin, anon, name):
    subject, signature, _sbom, _index = _referrers_fixture(admin, name)
    response = anon.get(
        f"/v2/{name}/referrers/{subject.digest}", params={"artifactType": "application/vnd.example.signature"}
    )
    assert response.headers["oci-filters-applied"] == "artifactType"
    assert [d["digest"] for d in response.json()["manifests"]] == [signature.digest]


def test_referrers_of_an_unknown_subject_is_an_empty_index(anon, name):
    response = anon.get(f"/v2/{name}/referrers/sha256:{'0' * 64}")
    assert response.status_code == 200
    assert response.json()["manifests"] == []


def test_referrer_pushed_before_its_subject_is_listed(admin, anon, name):
    later = image("later-subject")
    referrer = image("early", subject=later.manifest, artifact_type="application/x.early")
    push(admin, name, referrer.digest, referrer)
    listed = anon.get(f"/v2/{name}/referrers/{later.digest}").json()["manifests"]
    assert [d["digest"] for d in listed] == [referrer.digest]


def test_cosign_style_signature_tag_round_trips(admin, anon, name):
    subject = image("cosigned")
    push(admin, name, "v1", subject)
    tag = subject.digest.replace(":", "-") + ".sig"
    signature = image(
        "cosign-sig",
        config_media_type="application/vnd.oci.image.config.v1+json",
        annotations={"dev.cosignproject.cosign/signature": "MEUCIQ..."},
    )
    assert push(admin, name, tag, signature).status_code == 201
    assert anon.get(f"/v2/{name}/manifests/{tag}").content == signature.manifest
    assert tag in anon.get(f"/v2/{name}/tags/list").json()["tags"]


def test_tag_delete_answers_202_and_keeps_the_manifest_by_digest(admin, anon, name):
    img = image("deltag")
    push(admin, name, "v1", img)
    push(admin, name, "v2", img)
    assert admin.delete(f"/v2/{name}/manifests/v1").status_code == 202
    assert anon.get(f"/v2/{name}/manifests/v1").status_code == 404
    assert anon.get(f"/v2/{name}/manifests/{img.digest}").status_code == 200
    assert anon.get(f"/v2/{name}/tags/list").json()["tags"] == ["v2"]


def test_manifest_delete_by_digest_removes_it_and_its_tags(admin, anon, name):
    img = image("deldigest")
    push(admin, name, "v1", img)
    assert admin.delete(f"/v2/{name}/manifests/{img.digest}").status_code == 202
    assert anon.get(f"/v2/{name}/manifests/{img.digest}").status_code == 404
    assert anon.get(f"/v2/{name}/manifests/v1").status_code == 404
    assert admin.delete(f"/v2/{name}/manifests/{img.digest}").status_code == 404


def test_blob_delete_answers_202_then_get_404(admin, anon, name):
    data = b"delete this blob"
    push_blob(admin, name, data)
    assert admin.delete(f"/v2/{name}/blobs/{digest(data)}").status_code == 202
    response = anon.get(f"/v2/{name}/blobs/{digest(data)}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_deletion_can_be_disabled_per_repository(server, admin):
    repo = server.create_repo("oci", delete_enabled=False)
    img = image("nodelete")
    push(admin, f"{repo}/app", "v1", img)
    for path in ("manifests/v1", f"manifests/{img.digest}", f"blobs/{digest(img.config)}"):
        response = admin.delete(f"/v2/{repo}/app/{path}")
        assert response.status_code == 405
        assert response.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert admin.get(f"/v2/{repo}/app/manifests/v1").status_code == 200


def test_new_hosted_repository_has_deletion_enabled(server, admin):
    repo = server.create_repo("oci")
    assert admin.get(f"/api/v1/repositories/{repo}").json()["delete_enabled"] is True


def test_deleting_needs_the_delete_privilege(server, admin, name):
    img = image("priv")
    push(admin, name, "v1", img)
    repository = name.split("/")[0]
    role = f"pusher-{repository}"
    admin.post(
        "/api/v1/roles",
        json={"name": role, "privileges": [{"repositories": repository, "actions": ["read", "write"]}]},
    )
    user = server.create_user([role])
    with server.client(auth=user) as client:
        response = client.delete(f"/v2/{name}/manifests/v1")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"
    assert json.loads(admin.get(f"/v2/{name}/manifests/v1").content) is not None
