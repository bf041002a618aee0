"""The admin pages, on SQLite and PostgreSQL: each change lands exactly as the admin API would make
it, and is refused with the API's own message when the API would refuse it."""

from __future__ import annotations

import uuid

import httpx

from tests.artifactory.ui.conftest import api, create_repo


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stored(server, name: str) -> dict:
    with api(server) as admin:
        response = admin.get(f"/api/v1/repositories/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def test_create_edit_and_delete_a_hosted_repository(ui_server, admin_browser):
    name = unique("py")
    created = admin_browser.post(
        "/ui/admin/repositories/new",
        {"name": name, "format": "pypi", "type": "hosted", "write_policy": "allow_once", "url": "ignored"},
    )
    assert created.status_code == 303 and created.headers["location"] == f"/ui/repository/{name}/"
    assert stored(ui_server, name) | {"revision": 0} == {
        "name": name,
        "format": "pypi",
        "type": "hosted",
        "write_policy": "allow_once",
        "revision": 0,
    }
    form = admin_browser.get(f"/ui/admin/repositories/{name}")
    assert form.status_code == 200 and "<option selected>allow_once</option>" in form.text
    edited = admin_browser.post(
        f"/ui/admin/repositories/{name}", {"write_policy": "deny", "max_upload_bytes": "1000"}
    )
    assert edited.status_code == 303, edited.text
    assert (
        stored(ui_server, name)["write_policy"] == "deny"
        and stored(ui_server, name)["max_upload_bytes"] == 1000
    )
    unconfirmed = admin_browser.post(f"/ui/admin/repositories/{name}/delete", {"confirm": "nope"})
    assert unconfirmed.status_code == 400 and stored(ui_server, name)
    deleted = admin_browser.post(f"/ui/admin/repositories/{name}/delete", {"confirm": name})
    assert deleted.status_code == 303
    with api(ui_server) as admin:
        assert admin.get(f"/api/v1/repositories/{name}").status_code == 404


def test_repository_forms_are_refused_with_the_apis_messages(ui_server, admin_browser):
    taken = create_repo(ui_server, "raw")
    cases = [
        ({"name": "../x", "format": "raw", "type": "hosted"}, 400, "name must be"),
        ({"name": unique("p"), "format": "raw", "type": "proxy"}, 400, "a proxy needs url"),
        (
            {"name": unique("p"), "format": "raw", "type": "proxy", "url": "ftp://h/"},
            400,
            "a proxy needs url",
        ),
        (
            {"name": unique("g"), "format": "raw", "type": "group", "members": "missing"},
            400,
            "does not exist",
        ),
        ({"name": unique("h"), "format": "nope", "type": "hosted"}, 400, "unknown format"),
        (
            {"name": unique("h"), "format": "raw", "type": "hosted", "max_upload_bytes": "lots"},
            400,
            "must be an integer",
        ),
        (
            {"name": unique("h"), "format": "raw", "type": "hosted", "extra": '{"colour": 1}'},
            400,
            "unknown settings",
        ),
        ({"name": unique("h"), "format": "raw", "type": "hosted", "extra": "{"}, 400, "JSON object"),
        ({"name": taken, "format": "raw", "type": "hosted"}, 409, "already exists"),
    ]
    for data, status, fragment in cases:
        response = admin_browser.post("/ui/admin/repositories/new", data)
        assert response.status_code == status and fragment in response.text, (data, response.text[-2000:])
        if data["name"] != taken:
            with api(ui_server) as admin:
                assert admin.get(f"/api/v1/repositories/{data['name']}").status_code in (404, 400)
        assert (
            f'value="{data["name"]}"' in response.text or data["name"] == "../x"
        )  # the form keeps what was typed


def test_proxy_and_group_settings_and_a_kept_upstream_password(ui_server, admin_browser):
    proxy = unique("proxy")
    response = admin_browser.post(
        "/ui/admin/repositories/new",
        {
            "name": proxy,
            "format": "raw",
            "type": "proxy",
            "url": "http://127.0.0.1:9/files/",
            "username": "up-user",
            "password": "up-secret",
            "metadata_ttl_seconds": "60",
            "timeout_seconds": "2.5",
            "exclude": "private/*\n*.tmp",
            "offline": "on",
        },
    )
    assert response.status_code == 303, response.text
    view = stored(ui_server, proxy)
    assert view["metadata_ttl_seconds"] == 60 and view["timeout_seconds"] == 2.5 and view["offline"] is True
    assert view["exclude"] == ["private/*", "*.tmp"] and view["password"] == "********"
    form = admin_browser.get(f"/ui/admin/repositories/{proxy}")
    assert "up-secret" not in form.text and 'placeholder="unchanged"' in form.text
    kept = admin_browser.post(
        f"/ui/admin/repositories/{proxy}", {"url": "http://127.0.0.1:9/files/", "username": "up-user"}
    )
    assert kept.status_code == 303, kept.text
    after = stored(ui_server, proxy)
    assert after["password"] == "********" and after["offline"] is False and after["exclude"] == []
    member = create_repo(ui_server, "raw")
    group = unique("group")
    created = admin_browser.post(
        "/ui/admin/repositories/new",
        {
            "name": group,
            "format": "raw",
            "type": "group",
            "members": f"{member}\n{proxy}",
            "write_member": member,
        },
    )
    assert created.status_code == 303, created.text
    assert stored(ui_server, group)["members"] == [member, proxy]
    assert stored(ui_server, group)["write_member"] == member
    in_use = admin_browser.post(f"/ui/admin/repositories/{member}/delete", {"confirm": member})
    assert in_use.status_code == 409 and group in in_use.text


def test_users_and_roles_are_managed_through_forms(ui_server, admin_browser):
    role = unique("team")
    made = admin_browser.post(
        "/ui/admin/roles", {"name": role, "privileges": "team-*: read, write\nshared: read"}
    )
    assert made.status_code == 303, made.text
    with api(ui_server) as admin:
        roles = {r["name"]: r for r in admin.get("/api/v1/roles").json()}
    assert roles[role]["privileges"] == [
        {"repositories": "team-*", "actions": ["read", "write"]},
        {"repositories": "shared", "actions": ["read"]},
    ]
    bad = admin_browser.post("/ui/admin/roles", {"name": unique("r"), "privileges": "x: fly"})
    assert bad.status_code == 400 and "actions must be" in bad.text
    assert admin_browser.post("/ui/admin/roles/admin", {"privileges": "*: read"}).status_code in (400, 404)

    user = unique("dev")
    created = admin_browser.post("/ui/admin/users", {"username": user, "password": "pw-1", "roles": [role]})
    assert created.status_code == 303, created.text
    assert admin_browser.post("/ui/admin/users", {"username": user, "password": "pw"}).status_code == 409
    with httpx.Client(base_url=ui_server.url, auth=(user, "pw-1")) as client:
        assert client.get("/api/v1/whoami").json()["roles"] == [role]
    changed = admin_browser.post(f"/ui/admin/users/{user}", {"roles": []})
    assert changed.status_code == 303
    with api(ui_server) as admin:
        users = {u["username"]: u for u in admin.get("/api/v1/users").json()}
    assert users[user]["roles"] == []
    assert admin_browser.post(f"/ui/admin/users/{user}/delete").status_code == 303
    assert admin_browser.post("/ui/admin/users/admin/delete").status_code == 400
    assert admin_browser.post(f"/ui/admin/roles/{role}/delete").status_code == 303
    with api(ui_server) as admin:
        assert user not in admin.get("/api/v1/users").text and role not in admin.get("/api/v1/roles").text


def test_the_anonymous_read_setting(ui_server, admin_browser):
    try:
        assert admin_browser.post("/ui/admin/settings", {}).status_code == 200
        with api(ui_server) as admin:
            assert admin.get("/api/v1/settings").json()["anonymous_read"] is False
        page = admin_browser.get("/ui/admin/settings")
        assert 'name="anonymous_read" checked' not in page.text
        assert admin_browser.post("/ui/admin/settings", {"anonymous_read": "on"}).status_code == 200
        with api(ui_server) as admin:
            assert admin.get("/api/v1/settings").json()["anonymous_read"] is True
    finally:
        with api(ui_server) as admin:
            admin.put("/api/v1/settings", json={"anonymous_read": True})
