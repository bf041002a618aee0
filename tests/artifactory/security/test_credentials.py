"""What one credential may do, decided once in the security service (issue: security defects 1, 5-8, 11, 12).

Every test runs on SQLite and on PostgreSQL, against a server with two worker processes so that
per-process caches are exercised the way a deployment meets them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import ADMIN_PASSWORD, LiveServer

CACHE_SECONDS = 0.2  # ARTIFACTORY_CONFIG_CACHE_SECONDS of the test servers
ADMIN = ("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module", params=DATABASES)
def live(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    with live_server(request, "cred", workers=2) as server:
        yield server


def _token(server: LiveServer, auth: tuple[str, str] | str, **body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {auth}"} if isinstance(auth, str) else {}
    basic = auth if isinstance(auth, tuple) else None
    with server.client(auth=basic, headers=headers) as client:
        return client.post("/api/v1/tokens", json=body)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_scoped_token_reads_only_its_repositories_and_never_administers(live):
    mine = live.create_repo("raw", name=f"scope-a-{uuid.uuid4().hex[:6]}")
    other = live.create_repo("raw")
    with live.client() as admin:
        assert admin.put(f"/repository/{mine}/f.txt", content=b"mine").status_code == 201
        assert admin.put(f"/repository/{other}/f.txt", content=b"other").status_code == 201
    created = _token(live, ADMIN, scope={"repositories": mine, "actions": ["read"]})
    assert created.status_code == 201, created.text
    assert created.json()["scope"] == {"repositories": mine, "actions": ["read"]}
    token = created.json()["token"]
    with live.client(auth=None, headers=_bearer(token)) as scoped:
        assert scoped.get(f"/repository/{mine}/f.txt").content == b"mine"
        assert scoped.put(f"/repository/{mine}/g.txt", content=b"x").status_code == 403
        assert scoped.delete(f"/repository/{mine}/f.txt").status_code == 403
        # anonymous reads are on, but a token's scope is a ceiling: it reads nothing else
        assert scoped.get(f"/repository/{other}/f.txt").status_code == 403
        new_user = {"username": f"u-{uuid.uuid4().hex[:6]}", "password": "p", "roles": ["admin"]}
        assert scoped.post("/api/v1/users", json=new_user).status_code == 403
        assert scoped.put("/api/v1/settings", json={"anonymous_read": False}).status_code == 403
        assert scoped.get("/api/v1/users").status_code == 403


def test_a_token_cannot_mint_a_token_beyond_its_own_scope_or_life(live):
    repo = f"mint-{uuid.uuid4().hex[:6]}"
    parent = _token(
        live,
        ADMIN,
        expires_in_seconds=600,
        scope={"repositories": repo, "actions": ["read", "write"]},
    ).json()
    wider = _token(live, parent["token"], scope={"repositories": "*", "actions": ["read"]})
    assert wider.status_code == 400
    stronger = _token(live, parent["token"], scope={"repositories": repo, "actions": ["delete"]})
    assert stronger.status_code == 400
    longer = _token(live, parent["token"], expires_in_seconds=3600)
    assert longer.status_code == 400
    unscoped = _token(live, parent["token"])
    assert unscoped.status_code == 201, unscoped.text
    child = unscoped.json()
    assert child["scope"] == {"repositories": repo, "actions": ["read", "write"]}
    assert child["expires_at"] is not None and child["expires_at"] <= parent["expires_at"]
    narrower = _token(live, parent["token"], scope={"repositories": repo, "actions": ["read"]})
    assert narrower.status_code == 201


def test_token_expiry_is_exact_even_when_the_credential_is_cached(live):
    token = _token(live, ADMIN, expires_in_seconds=2).json()["token"]
    deadline = time.time() + 2
    with live.client(auth=None, headers=_bearer(token)) as client:
        while time.time() < deadline - 0.5:
            assert client.get("/api/v1/whoami").json()["username"] == "admin"
            time.sleep(0.1)
        time.sleep(max(0.0, deadline - time.time()) + 0.05)
        answers = {client.get("/api/v1/whoami").status_code for _ in range(20)}
    assert answers == {401}


def test_revoked_token_stops_working_on_every_worker_within_the_cache_time(live):
    created = _token(live, ADMIN).json()
    with live.client(auth=None, headers=_bearer(created["token"])) as client:
        for _ in range(40):  # warm both workers' credential caches
            assert client.get("/api/v1/users").status_code == 200
        with live.client() as admin:
            assert admin.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
        time.sleep(CACHE_SECONDS + 0.3)
        answers = [client.get("/api/v1/users").status_code for _ in range(100)]
    assert set(answers) == {401}


def test_deleted_and_disabled_users_stop_working_on_every_worker_within_the_cache_time(live):
    gone = live.create_user(roles=["admin"])
    off = live.create_user(roles=["admin"])
    for auth in (gone, off):
        with live.client(auth=auth) as client:
            assert all(client.get("/api/v1/users").status_code == 200 for _ in range(20))
    with live.client() as admin:
        assert admin.delete(f"/api/v1/users/{gone[0]}").status_code == 204
        response = admin.put(f"/api/v1/users/{off[0]}", json={"disabled": True})
        assert response.status_code == 200 and response.json()["disabled"] is True
    time.sleep(CACHE_SECONDS + 0.3)
    for auth in (gone, off):
        with live.client(auth=auth) as client:
            assert {client.get("/api/v1/users").status_code for _ in range(40)} == {401}


def test_user_changes_own_password_only_with_the_current_one_and_admin_changes_roles(live):
    username, password = live.create_user(roles=[])
    with live.client(auth=(username, password)) as user:
        assert user.put(f"/api/v1/users/{username}", json={"password": "new-pw"}).status_code == 403
        wrong = {"password": "new-pw", "current_password": "nope"}
        assert user.put(f"/api/v1/users/{username}", json=wrong).status_code == 403
        escalate = {"roles": ["admin"], "current_password": password}
        assert user.put(f"/api/v1/users/{username}", json=escalate).status_code == 403
        assert (
            user.put("/api/v1/users/admin", json={"password": "x", "current_password": password}).status_code
            == 403
        )
        good = {"password": "new-pw", "current_password": password}
        assert user.put(f"/api/v1/users/{username}", json=good).status_code == 200
    time.sleep(CACHE_SECONDS + 0.3)
    assert httpx.get(f"{live.url}/api/v1/whoami", auth=(username, password)).status_code == 401
    assert httpx.get(f"{live.url}/api/v1/whoami", auth=(username, "new-pw")).json()["username"] == username
    with live.client() as admin:
        changed = admin.put(f"/api/v1/users/{username}", json={"roles": ["admin"]})
        assert changed.json() == {"username": username, "roles": ["admin"], "disabled": False}
        assert admin.put(f"/api/v1/users/{username}", json={"name": "x"}).status_code == 400
        assert admin.put("/api/v1/users/nobody-here", json={"disabled": True}).status_code == 404


def test_anonymous_never_writes_even_when_the_anonymous_role_grants_it(live):
    repo = live.create_repo("raw")
    with live.client() as admin:
        response = admin.put(
            "/api/v1/roles/anonymous",
            json={"privileges": [{"repositories": "*", "actions": ["read", "write", "delete"]}]},
        )
        assert response.status_code == 200
        assert admin.put(f"/repository/{repo}/keep.txt", content=b"keep").status_code == 201
    try:
        time.sleep(CACHE_SECONDS + 0.3)
        assert httpx.put(f"{live.repo_url(repo)}evil.txt", content=b"x").status_code == 401
        assert httpx.delete(f"{live.repo_url(repo)}keep.txt").status_code == 401
        assert httpx.get(f"{live.repo_url(repo)}keep.txt").content == b"keep"
    finally:
        with live.client() as admin:
            admin.put(
                "/api/v1/roles/anonymous", json={"privileges": [{"repositories": "*", "actions": ["read"]}]}
            )


def test_admin_api_bodies_are_bounded_and_bad_values_are_400_not_500(live):
    with live.client() as admin:
        huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        assert (
            admin.post(
                "/api/v1/tokens", content=huge, headers={"Content-Type": "application/json"}
            ).status_code
            == 413
        )
        deep = b"[" * 100_000 + b"]" * 100_000
        response = admin.post("/api/v1/tokens", content=deep, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and "error" in response.json()
        assert admin.post("/api/v1/tokens", json={"expires_in_seconds": 10**18}).status_code == 400
        assert admin.post("/api/v1/tokens", json={"name": "n" * 201}).status_code == 400
        assert (
            admin.post(
                "/api/v1/tokens", json={"scope": {"repositories": "*", "actions": ["own"]}}
            ).status_code
            == 400
        )
        for body in (
            {"name": "x1", "format": {}, "type": "hosted"},
            {"name": "x2", "format": "raw", "type": []},
            {
                "name": "x3",
                "format": "raw",
                "type": "proxy",
                "url": "http://h/",
                "negative_cache_seconds": 10**18,
            },
            {"name": "x4", "format": "raw", "type": "proxy", "url": "http://h:99999/"},
            {"name": "x5", "format": "raw", "type": "proxy", "url": "http://h/", "timeout_seconds": 0},
        ):
            response = admin.post("/api/v1/repositories", json=body)
            assert response.status_code == 400, (body, response.text)
            assert "error" in response.json()
        chunked = admin.post(
            "/api/v1/users", content=iter([b'{"username": "', b"y" * (2 * 1024 * 1024), b'"}'])
        )
        assert chunked.status_code == 413


def test_proxy_url_credentials_move_into_masked_settings_and_only_admins_see_the_account(live):
    name = f"cred-proxy-{uuid.uuid4().hex[:6]}"
    with live.client() as admin:
        created = admin.post(
            "/api/v1/repositories",
            json={
                "name": name,
                "format": "raw",
                "type": "proxy",
                "url": "http://bob:s3cret@127.0.0.1:9/files/",
            },
        )
        assert created.status_code == 201, created.text
        view = admin.get(f"/api/v1/repositories/{name}").json()
        assert view["url"] == "http://127.0.0.1:9/files/"
        assert view["username"] == "bob" and view["password"] == "********"
        assert "s3cret" not in admin.get(f"/api/v1/repositories/{name}").text
    anonymous = httpx.get(f"{live.url}/api/v1/repositories/{name}").json()
    assert "username" not in anonymous and "password" not in anonymous
    assert "bob" not in httpx.get(f"{live.url}/api/v1/repositories/{name}").text


def test_every_html_response_carries_a_content_security_policy(live):
    repo = live.create_repo("raw")
    with live.client() as admin:
        admin.put(f"/repository/{repo}/dir/a.txt", content=b"a")
    listing = httpx.get(f"{live.repo_url(repo)}dir/")
    assert listing.headers["content-type"].startswith("text/html")
    policy = listing.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy


def test_a_token_scoped_to_a_group_reads_its_members_through_it_and_nothing_else(live):
    member = live.create_repo("raw")
    other = live.create_repo("raw")
    group = live.create_repo("raw", "group", members=[member])
    with live.client() as admin:
        assert admin.put(f"/repository/{member}/m.txt", content=b"member").status_code == 201
        assert admin.put(f"/repository/{other}/o.txt", content=b"other").status_code == 201
    token = _token(live, ADMIN, scope={"repositories": group, "actions": ["read"]}).json()["token"]
    with live.client(auth=None, headers=_bearer(token)) as scoped:
        assert scoped.get(f"/repository/{group}/m.txt").content == b"member"
        assert scoped.get(f"/repository/{member}/m.txt").status_code == 403
        assert scoped.get(f"/repository/{other}/o.txt").status_code == 403
    member_only = _token(live, ADMIN, scope={"repositories": member, "actions": ["read"]}).json()["token"]
    response = httpx.get(f"{live.repo_url(group)}m.txt", headers=_bearer(member_only))
    assert response.status_code in (403, 404)


def test_a_token_scoped_to_a_group_reads_through_a_nested_group_too(live):
    """The scope names the outer group; what is inside it, nested groups included, is read as the
    user's roles allow: by GET and in the group's listing alike."""
    member = live.create_repo("raw")
    inner = live.create_repo("raw", "group", members=[member])
    outer = live.create_repo("raw", "group", members=[inner])
    with live.client() as admin:
        assert admin.put(f"/repository/{member}/dir/n.txt", content=b"nested").status_code == 201
    token = _token(live, ADMIN, scope={"repositories": outer, "actions": ["read"]}).json()["token"]
    with live.client(auth=None, headers=_bearer(token)) as scoped:
        assert scoped.get(f"/repository/{outer}/dir/n.txt").content == b"nested"
        assert "n.txt" in scoped.get(f"/repository/{outer}/dir/").text
        assert scoped.get(f"/repository/{inner}/dir/n.txt").status_code == 403


def test_a_bare_api_token_is_read_as_a_bearer_token_and_nothing_else_without_a_scheme(live):
    """Cargo sends the token it was given as the whole Authorization header."""
    repo = live.create_repo("raw")
    created = _token(live, ADMIN, scope={"repositories": repo, "actions": ["read", "write"]})
    token = created.json()["token"]
    bare = httpx.put(f"{live.url}/repository/{repo}/bare.txt", content=b"x", headers={"Authorization": token})
    assert bare.status_code == 201, bare.text
    altered = token[:-1] + ("1" if token.endswith("0") else "0")  # one character off
    for header in (altered, "art_", "whatever", f"{token} extra"):
        refused = httpx.put(
            f"{live.url}/repository/{repo}/no.txt", content=b"x", headers={"Authorization": header}
        )
        assert refused.status_code == 401, header
