"""The spec's pull and push workflows, written from the distribution spec 1.1 as our own conformance suite."""

import hashlib
import json

from tests.formats.oci.images import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    digest,
    image,
    index,
    push,
    push_blob,
)


def test_version_check_answers_200_with_api_version_header_for_a_user(admin):
    response = admin.get("/v2/")
    assert response.status_code == 200
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_every_v2_response_carries_the_api_version_header_even_errors(anon, admin, name):
    for response in (
        anon.get("/v2/"),
        anon.get(f"/v2/{name}/manifests/nope"),
        anon.get("/v2/no-such-endpoint"),
        admin.post("/v2/_catalog"),
    ):
        assert response.headers["docker-distribution-api-version"] == "registry/2.0", response.url


def test_pushed_image_pulls_back_byte_for_byte_by_tag_and_digest(admin, anon, name):
    img = image("pull", layers=2, pretty=True)
    pushed = push(admin, name, "v1", img)
    assert pushed.status_code == 201
    assert pushed.headers["docker-content-digest"] == img.digest
    assert pushed.headers["location"].endswith(f"/v2/{name}/manifests/{img.digest}")
    for ref in ("v1", img.digest):
        response = anon.get(f"/v2/{name}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200
        assert response.content == img.manifest  # never re-serialised
        assert response.headers["content-type"] == OCI_MANIFEST
        assert response.headers["docker-content-digest"] == img.digest
    for blob in img.blobs:
        response = anon.get(f"/v2/{name}/blobs/{digest(blob)}")
        assert response.status_code == 200
        assert response.content == blob
        assert response.headers["docker-content-digest"] == digest(blob)


def test_head_of_manifest_and_blob_gives_length_and_digest_without_body(admin, anon, name):
    img = image("head")
    push(admin, name, "v1", img)
    manifest = anon.head(f"/v2/{name}/manifests/v1")
    assert manifest.status_code == 200 and manifest.content == b""
    assert manifest.headers["content-length"] == str(len(img.manifest))
    assert manifest.headers["docker-content-digest"] == img.digest
    blob = anon.head(f"/v2/{name}/blobs/{digest(img.layers[0])}")
    assert blob.status_code == 200 and blob.content == b""
    assert blob.headers["content-length"] == str(len(img.layers[0]))


def test_missing_manifest_and_blob_answer_404_with_spec_codes(anon, name, hosted):
    missing = "sha256:" + "0" * 64
    manifest = anon.get(f"/v2/{name}/manifests/nope")
    assert manifest.status_code == 404
    assert manifest.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    blob = anon.get(f"/v2/{name}/blobs/{missing}")
    assert blob.status_code == 404
    assert blob.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert anon.head(f"/v2/{name}/blobs/{missing}").status_code == 404
    unknown_repo = anon.get("/v2/no-such-repo-x/img/manifests/v1")
    assert unknown_repo.status_code == 404
    assert unknown_repo.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_blob_range_requests_return_the_slice(admin, anon, name):
    data = bytes(range(256)) * 64
    push_blob(admin, name, data)
    response = anon.get(f"/v2/{name}/blobs/{digest(data)}", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == data[100:200]
    assert response.headers["content-range"] == f"bytes 100-199/{len(data)}"


def test_docker_schema2_manifest_keeps_its_media_type(admin, anon, name):
    img = image("docker", media_type=DOCKER_MANIFEST)
    assert push(admin, name, "d1", img, media_type=DOCKER_MANIFEST).status_code == 201
    response = anon.get(f"/v2/{name}/manifests/d1")
    assert response.headers["content-type"] == DOCKER_MANIFEST
    assert response.content == img.manifest


def test_index_is_accepted_once_its_child_manifests_exist(admin, anon, name):
    amd = image("amd")
    arm = image("arm")
    push(admin, name, amd.digest, amd)
    body = index([amd.manifest, arm.manifest])
    refused = admin.put(f"/v2/{name}/manifests/multi", content=body, headers={"Content-Type": OCI_INDEX})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    push(admin, name, arm.digest, arm)
    accepted = admin.put(f"/v2/{name}/manifests/multi", content=body, headers={"Content-Type": OCI_INDEX})
    assert accepted.status_code == 201
    response = anon.get(f"/v2/{name}/manifests/multi")
    assert response.headers["content-type"] == OCI_INDEX
    assert response.content == body


def test_manifest_put_by_digest_reference_is_stored_untagged(admin, anon, name):
    img = image("bydigest")
    response = push(admin, name, img.digest, img)
    assert response.status_code == 201
    assert anon.get(f"/v2/{name}/manifests/{img.digest}").content == img.manifest
    assert anon.get(f"/v2/{name}/tags/list").json()["tags"] == []


def test_monolithic_post_with_digest_answers_201_with_location(admin, anon, name):
    data = b"monolithic"
    response = admin.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest(data)}, content=data)
    assert response.status_code == 201
    assert response.headers["location"].endswith(f"/v2/{name}/blobs/{digest(data)}")
    assert anon.get(response.headers["location"]).content == data


def test_post_then_put_uploads_a_blob(admin, anon, name):
    data = b"post then put"
    started = admin.post(f"/v2/{name}/blobs/uploads/")
    assert started.status_code == 202
    assert started.headers["location"].startswith("http://")
    assert started.headers["range"] == "0-0"
    done = admin.put(started.headers["location"], params={"digest": digest(data)}, content=data)
    assert done.status_code == 201
    assert anon.get(f"/v2/{name}/blobs/{digest(data)}").content == data


def test_chunked_upload_with_content_range_and_status_between_chunks(admin, anon, name):
    data = b"0123456789" * 100
    started = admin.post(f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"})
    location = started.headers["location"]
    first = admin.patch(location, content=data[:400], headers={"Content-Range": "0-399"})
    assert first.status_code == 202
    assert first.headers["range"] == "0-399"
    assert first.headers["location"] == location  # a stable session URL
    status = admin.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-399"
    second = admin.patch(location, content=data[400:900], headers={"Content-Range": "400-899"})
    assert second.headers["range"] == "0-899"
    done = admin.put(
        location, params={"digest": digest(data)}, content=data[900:], headers={"Content-Range": "900-999"}
    )
    assert done.status_code == 201
    assert anon.get(f"/v2/{name}/blobs/{digest(data)}").content == data


def test_replayed_or_out_of_order_chunk_gets_416_and_an_earlier_location_stays_valid(admin, name):
    data = b"abcdefghij"
    location = admin.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    out_of_order = admin.patch(location, content=data[5:], headers={"Content-Range": "5-9"})
    assert out_of_order.status_code == 416
    assert out_of_order.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    admin.patch(location, content=data[:5], headers={"Content-Range": "0-4"})
    replay = admin.patch(location, content=data[:5], headers={"Content-Range": "0-4"})
    assert replay.status_code == 416
    assert replay.headers["range"] == "0-4"
    status = admin.get(location)  # the Location from before the PATCH
    assert status.status_code == 204 and status.headers["range"] == "0-4"
    assert admin.put(location, params={"digest": digest(data)}, content=data[5:]).status_code == 201


def test_streamed_patch_without_content_range_is_accepted(admin, anon, name):
    data = b"streamed like skopeo" * 1000

    def body():
        for i in range(0, len(data), 4096):
            yield data[i : i + 4096]

    location = admin.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    patched = admin.patch(location, content=body())
    assert patched.status_code == 202
    assert patched.headers["range"] == f"0-{len(data) - 1}"
    assert admin.put(patched.headers["location"], params={"digest": digest(data)}).status_code == 201
    assert anon.get(f"/v2/{name}/blobs/{digest(data)}").content == data


def test_cancelled_upload_is_gone(admin, name):
    location = admin.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    admin.patch(location, content=b"partial")
    assert admin.delete(location).status_code == 204
    gone = admin.get(location)
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_cross_repository_mount_links_a_readable_blob_without_upload(server, admin, anon, name):
    other = server.create_repo("oci")
    data = b"mount me"
    push_blob(admin, f"{other}/base", data)
    response = admin.post(
        f"/v2/{name}/blobs/uploads/", params={"mount": digest(data), "from": f"{other}/base"}
    )
    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == digest(data)
    assert anon.get(f"/v2/{name}/blobs/{digest(data)}").content == data


def test_mount_without_from_or_of_a_missing_blob_answers_202_with_a_session(admin, name):
    data_digest = "sha256:" + hashlib.sha256(b"not anywhere").hexdigest()
    without_from = admin.post(f"/v2/{name}/blobs/uploads/", params={"mount": data_digest})
    assert without_from.status_code == 202 and "/blobs/uploads/" in without_from.headers["location"]
    missing = admin.post(
        f"/v2/{name}/blobs/uploads/", params={"mount": data_digest, "from": f"{name.split('/')[0]}/nothing"}
    )
    assert missing.status_code == 202


def test_mount_from_a_repository_the_caller_may_not_read_answers_202(server, admin):
    private = server.create_repo("oci")
    mine = server.create_repo("oci")
    data = b"secret layer"
    push_blob(admin, f"{private}/base", data)
    role = f"writer-{mine}"
    admin.post(
        "/api/v1/roles",
        json={"name": role, "privileges": [{"repositories": mine, "actions": ["read", "write"]}]},
    )
    admin.put("/api/v1/settings", json={"anonymous_read": False})
    try:
        user = server.create_user([role])
        with server.client(auth=user) as client:
            response = client.post(
                f"/v2/{mine}/app/blobs/uploads/", params={"mount": digest(data), "from": f"{private}/base"}
            )
            assert response.status_code == 202
            assert client.get(f"/v2/{mine}/app/blobs/{digest(data)}").status_code == 404
    finally:
        admin.put("/api/v1/settings", json={"anonymous_read": True})


def test_manifest_with_missing_subject_is_accepted_with_oci_subject_header(admin, name):
    ghost = image("ghost-subject")
    referrer = image("sig", subject=ghost.manifest, artifact_type="application/example.sig")
    response = push(admin, name, referrer.digest, referrer)
    assert response.status_code == 201
    assert response.headers["oci-subject"] == ghost.digest


def test_repushing_the_same_tag_and_blob_is_idempotent(admin, anon, name):
    img = image("again")
    assert push(admin, name, "v1", img).status_code == 201
    assert push(admin, name, "v1", img).status_code == 201
    assert anon.get(f"/v2/{name}/manifests/v1").content == img.manifest


def test_tag_moves_to_a_new_manifest(admin, anon, name):
    first, second = image("first"), image("second")
    push(admin, name, "latest", first)
    push(admin, name, "latest", second)
    response = anon.get(f"/v2/{name}/manifests/latest")
    assert response.headers["docker-content-digest"] == second.digest
    assert anon.get(f"/v2/{name}/manifests/{first.digest}").status_code == 200


def test_allow_once_repository_refuses_to_move_a_tag(server, admin):
    repo = server.create_repo("oci", write_policy="allow_once")
    first, second = image("once-a"), image("once-b")
    assert push(admin, f"{repo}/app", "v1", first).status_code == 201
    moved = push(admin, f"{repo}/app", "v1", second)
    assert moved.status_code in (400, 403)
    assert moved.json()["errors"][0]["code"] == "DENIED"
    assert admin.get(f"/v2/{repo}/app/manifests/v1").content == first.manifest


def test_sha512_blob_digest_is_verified_and_served(admin, anon, name):
    data = b"sha512 content"
    value = "sha512:" + hashlib.sha512(data).hexdigest()
    assert admin.post(f"/v2/{name}/blobs/uploads/", params={"digest": value}, content=data).status_code == 201
    assert anon.get(f"/v2/{name}/blobs/{value}").content == data


def test_artifact_manifest_with_empty_config_is_pulled_back(admin, anon, name):
    sbom = image(
        "sbom", artifact_type="application/spdx+json", config_media_type="application/vnd.oci.empty.v1+json"
    )
    assert push(admin, name, "sbom", sbom).status_code == 201
    assert (
        json.loads(anon.get(f"/v2/{name}/manifests/sbom").content)["artifactType"] == "application/spdx+json"
    )
