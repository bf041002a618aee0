"""The docker token flow: challenges, the token endpoint, scoped tokens, and Basic auth sent directly."""

import base64
import json
import time
import uuid

import httpx
import pytest

from artifactory.testing.server import ADMIN_PASSWORD
from tests.formats.oci.images import digest, image, push, push_blob


@pytest.fixture(scope="module")
def writer(server, admin, hosted):
    role = f"writer-{hosted}"
    admin.post(
        "/api/v1/roles",
        json={"name": role, "privileges": [{"repositories": hosted, "actions": ["read", "write"]}]},
    )
    return server.create_user([role])


def token_for(server, auth, *scopes):
    response = httpx.get(f"{server.url}/v2/token", params={"service": "x", "scope": list(scopes)}, auth=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] > 0
    return body["token"]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_anonymous_version_check_answers_401_with_an_absolute_bearer_realm(server, anon):
    response = anon.get("/v2/")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="{server.url}/v2/token"')
    assert 'service="127.0.0.1:' in challenge
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_login_flow_gives_a_token_that_passes_the_version_check(server, writer):
    token = token_for(server, writer)
    assert httpx.get(f"{server.url}/v2/", headers=bearer(token)).status_code == 200


def test_wrong_password_at_the_token_endpoint_answers_401(server, writer):
    response = httpx.get(f"{server.url}/v2/token", params={"service": "x"}, auth=(writer[0], "wrong"))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_push_with_a_scoped_token_and_pull_with_an_anonymous_token(server, writer, hosted):
    name = f"{hosted}/tokens/app"
    token = token_for(server, writer, f"repository:{name}:pull,push")
    img = image("tokens")
    with httpx.Client(base_url=server.url, headers=bearer(token)) as client:
        assert push(client, name, "v1", img).status_code == 201
    anonymous = token_for(server, None, f"repository:{name}:pull")
    response = httpx.get(f"{server.url}/v2/{name}/manifests/v1", headers=bearer(anonymous))
    assert response.status_code == 200 and response.content == img.manifest


def test_token_without_push_scope_gets_401_insufficient_scope_naming_the_scope(server, writer, hosted):
    name = f"{hosted}/tokens/pullonly"
    token = token_for(server, writer, f"repository:{name}:pull")
    response = httpx.post(f"{server.url}/v2/{name}/blobs/uploads/", headers=bearer(token))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert f'scope="repository:{name}:pull,push"' in challenge
    assert 'error="insufficient_scope"' in challenge


def test_token_for_one_image_does_not_open_another(server, writer, admin, hosted):
    push(admin, f"{hosted}/tokens/secret", "v1", image("secret"))
    token = token_for(server, writer, f"repository:{hosted}/tokens/other:pull,push")
    response = httpx.get(f"{server.url}/v2/{hosted}/tokens/secret/manifests/v1", headers=bearer(token))
    assert response.status_code == 401


def test_token_grants_only_what_the_user_may_do(server, writer, hosted):
    token = token_for(server, writer, f"repository:{hosted}/x:pull,push,delete")
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert payload["access"] == [{"type": "repository", "name": f"{hosted}/x", "actions": ["pull", "push"]}]
    assert payload["exp"] - payload["iat"] > 0


def test_tampered_or_expired_tokens_are_refused(server, writer, hosted):
    token = token_for(server, writer, f"repository:{hosted}/x:pull")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = httpx.get(f"{server.url}/v2/", headers=bearer(f"{header}.{forged}.{signature}"))
    assert response.status_code == 401
    claims["exp"] = int(time.time()) - 10
    expired = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert (
        httpx.get(f"{server.url}/v2/", headers=bearer(f"{header}.{expired}.{signature}")).status_code == 401
    )


def test_basic_auth_sent_directly_is_accepted(server, writer, hosted):
    with httpx.Client(base_url=server.url, auth=writer) as client:
        assert client.get("/v2/").status_code == 200
        assert push(client, f"{hosted}/basic/app", "v1", image("basic")).status_code == 201


def test_api_token_works_as_password_at_the_token_endpoint_and_as_bearer(server, admin, hosted):
    api_token = admin.post("/api/v1/tokens", json={}).json()["token"]
    token = token_for(server, ("admin", api_token), f"repository:{hosted}/api/app:pull,push")
    assert httpx.get(f"{server.url}/v2/", headers=bearer(token)).status_code == 200
    assert httpx.get(f"{server.url}/v2/", headers=bearer(api_token)).status_code == 200


def test_oauth_password_grant_posts_issue_tokens(server, writer, hosted):
    response = httpx.post(
        f"{server.url}/v2/token",
        data={
            "grant_type": "password",
            "username": writer[0],
            "password": writer[1],
            "service": "x",
            "scope": f"repository:{hosted}/oauth:pull",
        },
    )
    assert response.status_code == 200 and response.json()["access_token"]


def test_with_anonymous_read_off_everything_asks_for_a_token(server, admin, hosted):
    push(admin, f"{hosted}/private/app", "v1", image("private"))
    admin.put("/api/v1/settings", json={"anonymous_read": False})
    try:
        time.sleep(0.3)  # the security settings cache
        response = httpx.get(f"{server.url}/v2/{hosted}/private/app/manifests/v1")
        assert response.status_code == 401
        assert f'scope="repository:{hosted}/private/app:pull"' in response.headers["www-authenticate"]
        assert httpx.get(f"{server.url}/v2/token", params={"service": "x"}).status_code == 401
        token = token_for(server, ("admin", ADMIN_PASSWORD), f"repository:{hosted}/private/app:pull")
        assert (
            httpx.get(f"{server.url}/v2/{hosted}/private/app/manifests/v1", headers=bearer(token)).status_code
            == 200
        )
        catalog = httpx.get(f"{server.url}/v2/_catalog")
        assert catalog.status_code == 401
    finally:
        admin.put("/api/v1/settings", json={"anonymous_read": True})


def challenge_scopes(response):
    """The scopes a Bearer challenge asks for (distribution puts several in one, space-separated)."""
    header = response.headers["www-authenticate"]
    value = header.split('scope="', 1)[1].split('"', 1)[0]
    return value.split(" ")


def test_a_pull_token_of_an_admin_opens_nothing_but_pulling_its_image(server, admin, hosted):
    name = f"{hosted}/confined/app"
    img = image("confined")
    assert push(admin, name, "v1", img).status_code == 201
    raw = server.create_repo("raw")
    token = token_for(server, ("admin", ADMIN_PASSWORD), f"repository:{name}:pull")
    headers = bearer(token)
    assert httpx.get(f"{server.url}/v2/{name}/manifests/v1", headers=headers).content == img.manifest

    username = f"intruder-{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{server.url}/api/v1/users",
        json={"username": username, "password": "a-long-password", "roles": ["admin"]},
        headers=headers,
    )
    assert created.status_code == 401, created.text
    assert username not in admin.get("/api/v1/users").text

    stored = httpx.put(f"{server.url}/repository/{raw}/planted.txt", content=b"planted", headers=headers)
    assert stored.status_code == 401, stored.text
    assert admin.get(f"/repository/{raw}/planted.txt").status_code == 404

    minted = httpx.post(f"{server.url}/api/v1/tokens", json={"name": "escape"}, headers=headers)
    assert minted.status_code == 401, minted.text
    assert "token" not in minted.json()
    assert "escape" not in admin.get("/api/v1/tokens").text

    other = f"{hosted}/confined/other"
    for url in (f"/v2/{other}/blobs/uploads/", f"/v2/{name}/blobs/uploads/"):
        pushed = httpx.post(f"{server.url}{url}", headers=headers)
        assert pushed.status_code == 401, pushed.text
        assert 'error="insufficient_scope"' in pushed.headers["www-authenticate"]
    assert admin.get(f"/v2/{other}/tags/list").status_code == 404


def test_a_registry_token_cannot_mint_a_wider_or_longer_token(server, writer, hosted):
    token = token_for(server, writer, f"repository:{hosted}/narrow/app:pull")
    response = httpx.get(
        f"{server.url}/v2/token",
        params={
            "service": "x",
            "scope": [f"repository:{hosted}/narrow/app:pull,push", f"repository:{hosted}/x:pull"],
        },
        headers=bearer(token),
    )
    assert response.status_code == 200
    first = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    second = json.loads(base64.urlsafe_b64decode(response.json()["token"].split(".")[1] + "=="))
    assert second["access"] == [
        {"type": "repository", "name": f"{hosted}/narrow/app", "actions": ["pull"]},
        {"type": "repository", "name": f"{hosted}/x", "actions": []},
    ]
    assert second["exp"] <= first["exp"]


def test_a_pull_token_for_a_group_reads_through_its_members(server, admin):
    member = server.create_repo("oci")
    group = server.create_repo("oci", "group", members=[member])
    img = image("group-token")
    push(admin, f"{member}/app", "v1", img)
    token = token_for(server, ("admin", ADMIN_PASSWORD), f"repository:{group}/app:pull")
    response = httpx.get(f"{server.url}/v2/{group}/app/manifests/v1", headers=bearer(token))
    assert response.status_code == 200 and response.content == img.manifest
    blob = httpx.get(f"{server.url}/v2/{group}/app/blobs/{digest(img.config)}", headers=bearer(token))
    assert blob.status_code == 200 and blob.content == img.config
    tags = httpx.get(f"{server.url}/v2/{group}/app/tags/list", headers=bearer(token))
    assert tags.json()["tags"] == ["v1"]
    direct = httpx.get(f"{server.url}/v2/{member}/app/manifests/v1", headers=bearer(token))
    assert direct.status_code == 401  # the member itself was not named


def test_a_pull_token_for_a_group_reads_through_a_nested_group_too(server, admin):
    member = server.create_repo("oci")
    inner = server.create_repo("oci", "group", members=[member])
    outer = server.create_repo("oci", "group", members=[inner])
    img = image("nested-group-token")
    push(admin, f"{member}/app", "v1", img)
    token = token_for(server, ("admin", ADMIN_PASSWORD), f"repository:{outer}/app:pull")
    response = httpx.get(f"{server.url}/v2/{outer}/app/manifests/v1", headers=bearer(token))
    assert response.status_code == 200 and response.content == img.manifest
    blob = httpx.get(f"{server.url}/v2/{outer}/app/blobs/{digest(img.config)}", headers=bearer(token))
    assert blob.status_code == 200 and blob.content == img.config
    tags = httpx.get(f"{server.url}/v2/{outer}/app/tags/list", headers=bearer(token))
    assert tags.json()["tags"] == ["v1"]
    assert httpx.get(f"{server.url}/v2/{inner}/app/manifests/v1", headers=bearer(token)).status_code == 401


def test_cross_repository_mount_succeeds_through_the_token_flow(server, admin):
    source, target = server.create_repo("oci"), server.create_repo("oci")
    layer = b"a layer shared by two repositories"
    assert push_blob(admin, f"{source}/base", layer).status_code == 201
    url = f"{server.url}/v2/{target}/app/blobs/uploads/"
    params = {"mount": digest(layer), "from": f"{source}/base"}
    challenged = httpx.post(url, params=params)
    assert challenged.status_code == 401
    scopes = challenge_scopes(challenged)
    assert set(scopes) == {f"repository:{target}/app:pull,push", f"repository:{source}/base:pull"}
    token = token_for(server, ("admin", ADMIN_PASSWORD), *scopes)
    mounted = httpx.post(url, params=params, headers=bearer(token))
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["docker-content-digest"] == digest(layer)
    assert admin.get(f"/v2/{target}/app/blobs/{digest(layer)}").content == layer
