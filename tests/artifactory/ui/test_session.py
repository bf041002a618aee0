"""Signing in to the web UI, on SQLite and PostgreSQL: the session cookie, CSRF on every form, the
sign-in limits, the audit log, and sessions that end when they must."""

from __future__ import annotations

import json
import uuid
from http.cookies import SimpleCookie

import httpx
import pytest
from sqlalchemy import create_engine, text

from artifactory.testing.server import ADMIN_PASSWORD, LiveServer
from tests.artifactory.ui.conftest import Browser, api, create_repo, create_user


def audit(server: LiveServer, action: str, actor: str) -> list[dict]:
    url = server.database_url or f"sqlite:///{server.data_dir / 'artifactory.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT actor, action, details FROM audit_event WHERE action = :a AND actor = :u"),
                {"a": action, "u": actor},
            ).all()
    finally:
        engine.dispose()
    return [
        {"actor": r[0], "action": r[1], "details": json.loads(r[2]) if isinstance(r[2], str) else r[2]}
        for r in rows
    ]


def cookie_of(response: httpx.Response) -> SimpleCookie:
    jar = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    return jar


def signed_in_as(browser: Browser) -> str | None:
    page = browser.get("/ui/")
    if 'action="/ui/logout"' not in page.text:
        return None
    return page.text.split('<div class="who">', 1)[1].split("<span>", 1)[1].split("</span>", 1)[0]


def test_signing_in_sets_an_httponly_samesite_cookie_for_the_ui_only(browser):
    response = browser.login()
    assert response.status_code == 303 and response.headers["location"] == "/ui/"
    morsel = cookie_of(response)["artifactory_ui"]
    assert morsel["httponly"] and morsel["samesite"].lower() == "lax" and morsel["path"] == "/ui/"
    assert not morsel["secure"]  # plain HTTP here; see the next test
    assert signed_in_as(browser) == "admin"
    # The API does not take the session: it keeps Basic and Bearer.
    with httpx.Client(base_url=browser.server.url, cookies={"artifactory_ui": morsel.value}) as other:
        assert other.get("/api/v1/whoami").json()["anonymous"] is True


def test_the_cookie_is_secure_when_the_request_came_over_https(ui_server):
    browser = Browser(ui_server)
    browser.http.headers["X-Forwarded-Proto"] = "https"
    try:
        response = browser.http.get("/ui/login")
        assert response.status_code == 200
        assert cookie_of(response)["artifactory_ui"]["secure"]
        # httpx, like a browser, does not send a Secure cookie over plain HTTP: no session, no form.
        assert browser.post("/ui/login", {"username": "admin", "password": ADMIN_PASSWORD}).status_code == 403
    finally:
        browser.close()


def test_signing_out_ends_the_session_even_for_a_copy_of_its_cookie(ui_server, browser):
    browser.login()
    stolen = browser.http.cookies["artifactory_ui"]
    assert browser.post("/ui/logout").status_code == 303
    assert signed_in_as(browser) is None
    replay = Browser(ui_server)
    try:
        replay.http.cookies.set("artifactory_ui", stolen, path="/ui/")
        assert signed_in_as(replay) is None
        assert replay.get("/ui/admin/users").status_code == 303  # sent to sign in
    finally:
        replay.close()
    assert audit(ui_server, "ui.logout", "admin")


def test_a_forged_or_tampered_cookie_is_a_visitor(ui_server, browser):
    browser.login()
    value = browser.http.cookies["artifactory_ui"]
    body, _, signature = value.partition(".")
    forged = Browser(ui_server)
    try:
        forged.http.cookies.set("artifactory_ui", body + "." + signature[::-1], path="/ui/")
        assert signed_in_as(forged) is None
        forged.http.cookies.set("artifactory_ui", "eyJ9." + signature, path="/ui/")
        assert signed_in_as(forged) is None
    finally:
        forged.close()


@pytest.mark.parametrize(
    "path, data",
    [
        ("/ui/admin/repositories/new", {"name": "csrf-repo", "format": "raw", "type": "hosted"}),
        ("/ui/admin/settings", {}),
        ("/ui/admin/users", {"username": "csrf-user", "password": "x"}),
        ("/ui/admin/roles", {"name": "csrf-role", "privileges": "*: read"}),
        ("/ui/tokens", {"name": "csrf-token"}),
        ("/ui/logout", {}),
    ],
)
def test_forms_without_a_valid_csrf_token_answer_403_and_change_nothing(ui_server, admin_browser, path, data):
    other = Browser(ui_server)
    try:
        other.get("/ui/login")
        foreign = other.csrf
    finally:
        other.close()
    for token in (None, "", "x" * 43, foreign):
        body = dict(data)
        if token is not None:
            body["csrf"] = token
        response = admin_browser.http.post(path, data=body)
        assert response.status_code == 403, (path, token, response.text)
        assert "did not come from this site" in response.text
    with api(ui_server) as admin:
        assert admin.get("/api/v1/repositories/csrf-repo").status_code == 404
        assert admin.get("/api/v1/settings").json()["anonymous_read"] is True
        assert "csrf-user" not in admin.get("/api/v1/users").text
        assert "csrf-role" not in admin.get("/api/v1/roles").text
    assert signed_in_as(admin_browser) == "admin"


def test_sign_in_itself_needs_the_csrf_token_of_the_visitors_own_cookie(ui_server):
    visitor = Browser(ui_server)
    try:
        response = visitor.http.post("/ui/login", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert response.status_code == 403 and "set-cookie" in response.headers
        assert signed_in_as(visitor) is None
    finally:
        visitor.close()


def test_wrong_passwords_and_tokens_are_refused_and_audited(ui_server, browser):
    user, password = create_user(ui_server, [])
    refused = browser.post("/ui/login", {"username": user, "password": "wrong"})
    assert refused.status_code == 403 and "Wrong username or password" in refused.text
    assert signed_in_as(browser) is None
    with httpx.Client(base_url=ui_server.url, auth=(user, password)) as client:
        token = client.post("/api/v1/tokens", json={"name": "not-for-the-ui"}).json()["token"]
    assert browser.post("/ui/login", {"username": user, "password": token}).status_code == 403
    failures = audit(ui_server, "ui.login_failed", user)
    assert len(failures) == 2 and all(f["details"]["address"] == browser.address for f in failures)
    assert browser.login(user, password).status_code == 303
    assert audit(ui_server, "ui.login", user)


def test_sign_in_is_limited_per_user_from_any_address(ui_server):
    user, password = create_user(ui_server, [])
    for _ in range(5):
        attacker = Browser(ui_server)
        assert attacker.post("/ui/login", {"username": user, "password": "guess"}).status_code == 403
        attacker.close()
    owner = Browser(ui_server)
    try:
        response = owner.login(user, password)
        assert response.status_code == 429 and "Too many failed sign-ins" in response.text
        assert signed_in_as(owner) is None
        assert owner.login().status_code == 303  # another user from the same address is not affected
    finally:
        owner.close()


def test_sign_in_is_limited_per_address_for_any_user(ui_server):
    attacker = Browser(ui_server)
    neighbour = Browser(ui_server)
    try:
        for _ in range(20):
            name = f"nobody-{uuid.uuid4().hex[:6]}"
            assert attacker.post("/ui/login", {"username": name, "password": "guess"}).status_code == 403
        assert attacker.login().status_code == 429  # even the right password, from there
        assert neighbour.login().status_code == 303
    finally:
        attacker.close()
        neighbour.close()


def test_after_sign_in_only_pages_of_this_ui_are_followed(browser):
    for target in (
        "https://evil.invalid/",
        "//evil.invalid/ui/",
        "/ui/../../x",
        "/api/v1/users",
        "/ui\\@evil",
    ):
        browser.get("/ui/login")
        response = browser.post(
            "/ui/login", {"username": "admin", "password": ADMIN_PASSWORD, "next": target}
        )
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith("/ui/") and "evil" not in location, (target, location)
        browser.post("/ui/logout")
    browser.get("/ui/login")
    back = browser.post(
        "/ui/login", {"username": "admin", "password": ADMIN_PASSWORD, "next": "/ui/search?q=x"}
    )
    assert back.headers["location"] == "/ui/search?q=x"


def test_a_password_change_or_disabling_the_user_ends_their_sessions(ui_server, admin_browser):
    user, password = create_user(ui_server, [])
    member = Browser(ui_server)
    try:
        assert member.login(user, password).status_code == 303
        assert signed_in_as(member) == user
        changed = admin_browser.post(f"/ui/admin/users/{user}", {"password": "new-password-1"})
        assert changed.status_code == 303, changed.text
        assert signed_in_as(member) is None
        assert member.login(user, "new-password-1").status_code == 303
        disabled = admin_browser.post(f"/ui/admin/users/{user}", {"disabled": "on"})
        assert disabled.status_code == 303, disabled.text
        assert signed_in_as(member) is None
        assert member.login(user, "new-password-1").status_code == 403
    finally:
        member.close()


def test_signed_out_visitors_are_sent_to_sign_in_and_users_without_admin_get_403(ui_server, browser):
    for path in ("/ui/admin/", "/ui/admin/users", "/ui/tokens", "/ui/admin/repositories/new"):
        response = browser.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next=")
    user, password = create_user(ui_server, [])
    browser.login(user, password)
    assert browser.get("/ui/admin/users").status_code == 403
    assert (
        browser.post(
            "/ui/admin/repositories/new", {"name": "x", "format": "raw", "type": "hosted"}
        ).status_code
        == 403
    )
    assert browser.get("/ui/tokens").status_code == 200


def test_tokens_page_creates_a_scoped_expiring_token_shown_once_and_revokes_it(ui_server):
    repo = create_repo(ui_server, "raw")
    role = f"rw-{uuid.uuid4().hex[:6]}"
    with api(ui_server) as admin:
        admin.post(
            "/api/v1/roles",
            json={"name": role, "privileges": [{"repositories": "*", "actions": ["read", "write"]}]},
        )
    user, password = create_user(ui_server, [role])
    browser = Browser(ui_server)
    try:
        browser.login(user, password)
        created = browser.post(
            "/ui/tokens",
            {
                "name": "ci",
                "expires_days": "7",
                "access": "scoped",
                "repositories": repo,
                "actions": ["read"],
            },
        )
        assert created.status_code == 201, created.text
        token = created.text.split('<code id="token-value">', 1)[1].split("</code>", 1)[0]
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.put(f"{ui_server.repo_url(repo)}f.txt", content=b"x", headers=bearer).status_code == 403
        with api(ui_server) as admin:
            admin.put(f"/repository/{repo}/f.txt", content=b"x")
        assert httpx.get(f"{ui_server.repo_url(repo)}f.txt", headers=bearer).status_code == 200
        listed = browser.get("/ui/tokens")
        assert token not in listed.text and f"{repo}: read" in listed.text and ">ci<" in listed.text
        token_id = listed.text.split('action="/ui/tokens/', 1)[1].split("/revoke", 1)[0]
        assert browser.post(f"/ui/tokens/{token_id}/revoke").status_code == 303
        assert httpx.get(f"{ui_server.url}/api/v1/whoami", headers=bearer).status_code == 401
        refused = browser.post("/ui/tokens", {"name": "x" * 300})
        assert refused.status_code == 400 and "at most 200" in refused.text
    finally:
        browser.close()


def test_a_form_larger_than_a_mebibyte_is_refused_with_413(browser):
    browser.get("/ui/login")
    response = browser.post("/ui/login", {"username": "admin", "password": "x" * (1024 * 1024 + 1)})
    assert response.status_code == 413
