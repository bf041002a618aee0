"""Bad input, each case on its own: the spec's error code and status, never a 500, and nothing stored."""

import base64
import hashlib
import json

import httpx
import pytest

from artifactory.testing.stored import stored
from tests.formats.oci.images import OCI_INDEX, OCI_MANIFEST, digest, image, push_blob


def code(response):
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()["errors"][0]["code"]


def nothing_stored(server, data: bytes):
    return not stored(server, data)


def no_temporaries(server):
    temp = server.data_dir / "blobs" / "tmp"
    return not temp.exists() or not [p for p in temp.iterdir() if p.stat().st_size]


@pytest.mark.parametrize(
    "bad_name",
    ["UPPER/img", "repo/UPPER", "repo/-dash", "repo/a//b", "repo/a..b", "repo/" + "a" * 300, "repo_only"],
)
def test_invalid_names_answer_name_invalid(anon, hosted, bad_name):
    name = bad_name.replace("repo", hosted, 1) if bad_name.startswith("repo") else bad_name
    response = anon.get(f"/v2/{name}/manifests/latest")
    assert response.status_code in (400, 404)
    assert code(response) in ("NAME_INVALID", "NAME_UNKNOWN")
    if "/" in name and name.split("/", 1)[0] == hosted:
        assert code(response) == "NAME_INVALID"


@pytest.mark.parametrize(
    "bad_digest",
    [
        "sha256:abc",  # wrong length
        "sha256:" + "g" * 64,  # not hex
        "sha256:" + "A" * 64,  # upper case
        "md5:" + "0" * 32,  # unknown algorithm
        "sha999:" + "0" * 64,
        "sha512:" + "0" * 64,  # wrong length for sha512
        "nocolon" + "0" * 64,
    ],
)
def test_malformed_or_unknown_digests_answer_400_digest_invalid_never_500(admin, anon, name, bad_digest):
    blob = anon.get(f"/v2/{name}/blobs/{bad_digest}")
    if ":" not in bad_digest:
        assert blob.status_code in (400, 404)
        return
    assert blob.status_code == 400 and code(blob) == "DIGEST_INVALID"
    assert anon.get(f"/v2/{name}/manifests/{bad_digest}").status_code == 400
    assert anon.get(f"/v2/{name}/referrers/{bad_digest}").status_code == 400
    upload = admin.post(f"/v2/{name}/blobs/uploads/", params={"digest": bad_digest}, content=b"x")
    assert upload.status_code == 400 and code(upload) == "DIGEST_INVALID"


@pytest.mark.parametrize("bad_tag", ["-lead", ".dot", "a" * 129, "with space", "x!"])
def test_invalid_tag_on_put_is_manifest_invalid_and_on_get_unknown(admin, anon, name, bad_tag):
    img = image("badtag")
    for blob in img.blobs:
        push_blob(admin, name, blob)
    put = admin.put(
        f"/v2/{name}/manifests/{bad_tag}", content=img.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status_code in (400, 404)
    if put.status_code == 400:
        assert code(put) == "MANIFEST_INVALID"
    get = anon.get(f"/v2/{name}/manifests/{bad_tag}")
    assert get.status_code in (400, 404)
    assert anon.get(f"/v2/{name}/manifests/{img.digest}").status_code == 404


def test_manifest_that_is_not_json_is_refused_and_not_stored(server, admin, anon, name):
    body = b"this is not json {"
    response = admin.put(f"/v2/{name}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400 and code(response) == "MANIFEST_INVALID"
    assert anon.get(f"/v2/{name}/manifests/v1").status_code == 404
    assert nothing_stored(server, body)


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"schemaVersion": 1, "mediaType": OCI_MANIFEST},
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []},
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:x"}, "layers": []},
        {"schemaVersion": 2, "mediaType": "application/x-unknown", "layers": []},
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": "nope"},
    ],
)
def test_structurally_invalid_manifests_are_manifest_invalid(server, admin, name, document):
    body = json.dumps(document).encode()
    response = admin.put(f"/v2/{name}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400 and code(response) == "MANIFEST_INVALID"
    assert nothing_stored(server, body)


def test_media_type_disagreeing_with_content_type_is_refused(server, admin, anon, name):
    img = image("disagree")
    for blob in img.blobs:
        push_blob(admin, name, blob)
    response = admin.put(
        f"/v2/{name}/manifests/v1", content=img.manifest, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status_code == 400 and code(response) == "MANIFEST_INVALID"
    assert anon.get(f"/v2/{name}/manifests/{img.digest}").status_code == 404
    assert nothing_stored(server, img.manifest)


def test_manifest_over_the_size_limit_is_refused_with_413(server, admin, name):
    repo = server.create_repo("oci", max_manifest_bytes=4096)
    img = image("big", annotations={"padding": "x" * 5000})
    response = admin.put(
        f"/v2/{repo}/app/manifests/v1", content=img.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 413 and code(response) == "SIZE_INVALID"
    assert nothing_stored(server, img.manifest)


def test_manifest_referencing_a_missing_blob_is_manifest_blob_unknown(server, admin, anon, name):
    img = image("missing-layer", layers=2)
    push_blob(admin, name, img.config)
    push_blob(admin, name, img.layers[0])
    response = admin.put(
        f"/v2/{name}/manifests/v1", content=img.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400 and code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert response.json()["errors"][0]["detail"]["digest"] == digest(img.layers[1])
    assert anon.get(f"/v2/{name}/manifests/v1").status_code == 404
    assert nothing_stored(server, img.manifest)


def test_manifest_put_with_a_digest_reference_that_does_not_match_is_digest_invalid(server, admin, name):
    img = image("wrong-ref")
    for blob in img.blobs:
        push_blob(admin, name, blob)
    wrong = "sha256:" + "1" * 64
    response = admin.put(
        f"/v2/{name}/manifests/{wrong}", content=img.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400 and code(response) == "DIGEST_INVALID"
    assert nothing_stored(server, img.manifest)


def test_monolithic_blob_whose_bytes_do_not_match_the_digest_is_refused(server, admin, anon, name):
    data = b"these bytes"
    claimed = "sha256:" + hashlib.sha256(b"other bytes").hexdigest()
    response = admin.post(f"/v2/{name}/blobs/uploads/", params={"digest": claimed}, content=data)
    assert response.status_code == 400 and code(response) == "DIGEST_INVALID"
    assert anon.get(f"/v2/{name}/blobs/{claimed}").status_code == 404
    assert nothing_stored(server, data)


def test_session_blob_whose_bytes_do_not_match_the_digest_is_refused_and_the_session_dropped(
    server, admin, name
):
    data = b"session bytes that lie"
    location = admin.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    admin.patch(location, content=data)
    claimed = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    response = admin.put(location, params={"digest": claimed})
    assert response.status_code == 400 and code(response) == "DIGEST_INVALID"
    assert admin.get(location).status_code == 404
    assert nothing_stored(server, data)


def test_put_without_digest_is_digest_invalid(admin, name):
    location = admin.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    response = admin.put(location, content=b"x")
    assert response.status_code == 400 and code(response) == "DIGEST_INVALID"


def test_chunks_out_of_order_are_refused_with_416_and_nothing_appended(admin, name):
    location = admin.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    response = admin.patch(location, content=b"later", headers={"Content-Range": "10-14"})
    assert response.status_code == 416 and code(response) == "BLOB_UPLOAD_INVALID"
    assert admin.get(location).headers["range"] == "0-0"


def test_content_range_that_disagrees_with_the_body_is_refused(admin, name):
    location = admin.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    response = admin.patch(location, content=b"four", headers={"Content-Range": "0-9"})
    assert response.status_code == 416 and code(response) == "BLOB_UPLOAD_INVALID"


def test_unknown_upload_session_is_blob_upload_unknown(admin, name):
    for session in ("0" * 32, "not-a-session"):
        response = admin.patch(f"/v2/{name}/blobs/uploads/{session}", content=b"x")
        assert response.status_code == 404 and code(response) == "BLOB_UPLOAD_UNKNOWN"


def test_upload_session_of_another_image_is_not_reachable(admin, hosted, name):
    location = admin.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    session = location.rsplit("/", 1)[-1]
    response = admin.get(f"/v2/{hosted}/other/blobs/uploads/{session}")
    assert response.status_code == 404 and code(response) == "BLOB_UPLOAD_UNKNOWN"


def test_unsupported_method_answers_405_unsupported(admin, name):
    response = admin.post(f"/v2/{name}/manifests/latest")
    assert response.status_code == 405 and code(response) == "UNSUPPORTED"


def test_bad_pagination_number_is_refused(anon, admin, name):
    img = image("page")
    from tests.formats.oci.images import push

    push(admin, name, "v1", img)
    response = anon.get(f"/v2/{name}/tags/list", params={"n": "-1"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "nested",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
    ids=["arrays", "objects"],
)
def test_a_manifest_nested_100k_deep_is_manifest_invalid_not_500(server, admin, anon, name, nested):
    response = admin.put(f"/v2/{name}/manifests/v1", content=nested, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400 and code(response) == "MANIFEST_INVALID", response.text
    assert "nested" in response.json()["errors"][0]["message"]
    assert anon.get(f"/v2/{name}/manifests/v1").status_code == 404
    assert nothing_stored(server, nested)


def test_a_bearer_token_with_a_deeply_nested_header_is_401_not_500(server):
    header = base64.urlsafe_b64encode(b'{"kid":' + b"[" * 3000).rstrip(b"=").decode()
    response = httpx.get(f"{server.url}/v2/", headers={"Authorization": f"Bearer {header}.e30.x"})
    assert response.status_code == 401, response.text


def test_a_deeply_nested_token_payload_is_never_parsed_before_its_signature(server):
    from artifactory_formats.oci.auth import KEY_ID, InvalidToken, verify

    head = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": KEY_ID}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(b"[" * 100_000).rstrip(b"=")
    with pytest.raises(InvalidToken):
        verify(b"secret", f"{head.decode()}.{payload.decode()}.AAAA")
    response = httpx.get(f"{server.url}/v2/", headers={"Authorization": f"Bearer {head.decode()}.e30.AAAA"})
    assert response.status_code == 401


def test_the_oauth_token_form_is_bounded_and_must_be_a_form(server):
    big = httpx.post(
        f"{server.url}/v2/token",
        content=b"grant_type=password&scope=" + b"x" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413 and code(big) == "SIZE_INVALID"
    wrong = httpx.post(f"{server.url}/v2/token", json={"grant_type": "password"})
    assert wrong.status_code == 400, wrong.text
