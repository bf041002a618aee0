"""Authentication and authorisation: users, roles, tokens, anonymous access."""

import uuid

import httpx
import pytest
from sqlalchemy import create_engine, text


def test_write_without_credentials_answers_401_with_challenge(server):
    name = server.create_repo("raw")
    response = httpx.put(f"{server.repo_url(name)}f.txt", content=b"x")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("basic")


def test_wrong_password_answers_401_even_for_reads(server):
    name = server.create_repo("raw")
    response = httpx.get(f"{server.repo_url(name)}f.txt", auth=("admin", "wrong"))
    assert response.status_code == 401


def test_admin_api_refuses_anonymous_with_401_and_plain_users_with_403(server):
    user = server.create_user(roles=[])
    assert httpx.get(f"{server.url}/api/v1/users").status_code == 401
    with server.client(auth=user) as client:
        assert client.get("/api/v1/users").status_code == 403
        assert (
            client.post(
                "/api/v1/repositories", json={"name": "x", "format": "raw", "type": "hosted"}
            ).status_code
            == 403
        )


def test_role_grants_write_only_on_matching_repository_glob(server):
    prefix = f"team-{uuid.uuid4().hex[:6]}"
    mine = server.create_repo("raw", name=f"{prefix}-a")
    other = server.create_repo("raw")
    role = f"writers-{uuid.uuid4().hex[:6]}"
    with server.client() as admin:
        response = admin.post(
            "/api/v1/roles",
            json={
                "name": role,
                "privileges": [{"repositories": f"{prefix}-*", "actions": ["read", "write"]}],
            },
        )
        assert response.status_code == 201, response.text
    user = server.create_user(roles=[role])
    with server.client(auth=user) as client:
        assert client.put(f"/repository/{mine}/f.txt", content=b"x").status_code == 201
        assert client.put(f"/repository/{other}/f.txt", content=b"x").status_code == 403
        assert client.delete(f"/repository/{mine}/f.txt").status_code == 403


def test_token_works_as_bearer_and_as_basic_password_and_is_stored_only_as_hash(server):
    user, password = server.create_user(roles=["admin"])
    with server.client(auth=(user, password)) as client:
        created = client.post("/api/v1/tokens", json={"name": "ci"})
    assert created.status_code == 201
    token = created.json()["token"]
    bearer = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert bearer.json()["username"] == user
    basic = httpx.get(f"{server.url}/api/v1/whoami", auth=(user, token))
    assert basic.json()["username"] == user
    assert httpx.get(f"{server.url}/api/v1/whoami", auth=("admin", token)).status_code == 401
    engine = create_engine(f"sqlite:///{server.data_dir / 'artifactory.db'}")
    with engine.connect() as connection:
        stored = [row[0] for row in connection.execute(text("select secret_hash from api_token"))]
    engine.dispose()
    secret = token.rsplit("_", 1)[-1]
    assert stored and all(secret not in value for value in stored)
    assert all(len(value) == 64 for value in stored)


def test_revoked_and_expired_tokens_are_refused(server):
    with server.client() as admin:
        revoked = admin.post("/api/v1/tokens", json={}).json()
        assert admin.delete(f"/api/v1/tokens/{revoked['id']}").status_code == 204
        expiring = admin.post("/api/v1/tokens", json={"expires_in_seconds": 1}).json()
    import time

    time.sleep(1.5)
    for token in (revoked["token"], expiring["token"]):
        response = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


def test_token_creation_needs_a_user(server):
    assert httpx.post(f"{server.url}/api/v1/tokens", json={}).status_code == 401


def test_passwords_are_stored_as_scrypt_hashes(server):
    user, password = server.create_user(roles=[])
    engine = create_engine(f"sqlite:///{server.data_dir / 'artifactory.db'}")
    with engine.connect() as connection:
        stored = connection.execute(
            text("select password_hash from user_account where username = :u"), {"u": user}
        ).scalar_one()
    engine.dispose()
    assert stored.startswith("scrypt$") and password not in stored


@pytest.fixture
def restore_anonymous(server):
    yield
    with server.client() as admin:
        admin.put("/api/v1/settings", json={"anonymous_read": True})
        admin.put(
            "/api/v1/roles/anonymous", json={"privileges": [{"repositories": "*", "actions": ["read"]}]}
        )


def test_anonymous_read_can_be_switched_off(server, restore_anonymous):
    name = server.create_repo("raw")
    with server.client() as admin:
        admin.put(f"/repository/{name}/f.txt", content=b"x")
        assert httpx.get(f"{server.repo_url(name)}f.txt").status_code == 200
        assert admin.put("/api/v1/settings", json={"anonymous_read": False}).status_code == 200
    import time

    time.sleep(0.5)
    response = httpx.get(f"{server.repo_url(name)}f.txt")
    assert response.status_code == 401
    assert "www-authenticate" in response.headers


def test_anonymous_role_is_editable_to_grant_read_per_repository_glob(server, restore_anonymous):
    public = server.create_repo("raw", name=f"public-{uuid.uuid4().hex[:6]}")
    private = server.create_repo("raw")
    with server.client() as admin:
        admin.put(f"/repository/{public}/f.txt", content=b"x")
        admin.put(f"/repository/{private}/f.txt", content=b"x")
        response = admin.put(
            "/api/v1/roles/anonymous",
            json={"privileges": [{"repositories": "public-*", "actions": ["read"]}]},
        )
        assert response.status_code == 200, response.text
    import time

    time.sleep(0.5)
    assert httpx.get(f"{server.repo_url(public)}f.txt").status_code == 200
    assert httpx.get(f"{server.repo_url(private)}f.txt").status_code == 401


def test_admin_role_cannot_be_edited_and_builtin_roles_cannot_be_deleted(server):
    with server.client() as admin:
        assert admin.put("/api/v1/roles/admin", json={"privileges": []}).status_code == 400
        assert admin.delete("/api/v1/roles/anonymous").status_code == 400


def test_user_lifecycle_create_list_delete(server):
    with server.client() as admin:
        name = f"u-{uuid.uuid4().hex[:6]}"
        assert (
            admin.post("/api/v1/users", json={"username": name, "password": "p", "roles": []}).status_code
            == 201
        )
        assert (
            admin.post("/api/v1/users", json={"username": name, "password": "p", "roles": []}).status_code
            == 409
        )
        assert (
            admin.post(
                "/api/v1/users", json={"username": "x", "password": "p", "roles": ["nope"]}
            ).status_code
            == 400
        )
        assert name in [u["username"] for u in admin.get("/api/v1/users").json()]
        assert admin.delete(f"/api/v1/users/{name}").status_code == 204
    assert httpx.get(f"{server.url}/api/v1/whoami", auth=(name, "p")).status_code == 401


def test_a_login_for_an_unknown_user_costs_the_same_scrypt_as_a_known_one():
    from artifactory.security.passwords import TIMING_EQUALISER, hash_password, verify_password

    parameters = hash_password("anything").split("$")[:4]
    assert TIMING_EQUALISER.split("$")[:4] == parameters
    assert not verify_password("timing-equaliser", TIMING_EQUALISER)
