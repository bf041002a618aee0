"""The admin API of CONTRACT.md, over HTTP against a real server, on SQLite and PostgreSQL."""

import uuid

import httpx
import pytest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_status_answers_ok_without_credentials(any_server):
    response = httpx.get(f"{any_server.url}/api/v1/status")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_create_repository_answers_201_with_stored_object_and_get_returns_it(any_server):
    name = unique("files")
    with any_server.client() as admin:
        created = admin.post("/api/v1/repositories", json={"name": name, "format": "raw", "type": "hosted"})
        assert created.status_code == 201
        assert created.json()["name"] == name
        assert created.json()["type"] == "hosted"
        fetched = admin.get(f"/api/v1/repositories/{name}")
    assert fetched.status_code == 200
    assert fetched.json() == created.json()


def test_duplicate_repository_answers_409(any_server):
    name = any_server.create_repo("raw")
    with any_server.client() as admin:
        response = admin.post("/api/v1/repositories", json={"name": name, "format": "raw", "type": "hosted"})
    assert response.status_code == 409
    assert "already exists" in response.json()["error"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"name": "x", "format": "nope", "type": "hosted"}, "unknown format"),
        ({"name": "x", "format": "raw", "type": "mirror"}, "type must be"),
        ({"name": "../x", "format": "raw", "type": "hosted"}, "name must be"),
        ({"name": "x", "format": "raw", "type": "proxy"}, "url"),
        ({"name": "x", "format": "raw", "type": "proxy", "url": "ftp://h/"}, "url"),
        ({"name": "x", "format": "raw", "type": "group", "members": ["missing"]}, "does not exist"),
        ({"name": "x", "format": "raw", "type": "hosted", "write_policy": "sometimes"}, "write_policy"),
        ({"name": "x", "format": "raw", "type": "hosted", "colour": "blue"}, "unknown settings"),
        ([1, 2], "JSON object"),
    ],
)
def test_invalid_repository_definition_answers_400_naming_the_problem(server, body, fragment):
    with server.client() as admin:
        response = admin.post("/api/v1/repositories", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_malformed_json_answers_400_naming_the_problem(server):
    with server.client() as admin:
        response = admin.post(
            "/api/v1/repositories", content=b'{"name": ', headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_put_accepts_what_get_returned_and_keeps_name_and_format_fixed(any_server):
    name = any_server.create_repo("raw")
    with any_server.client() as admin:
        body = admin.get(f"/api/v1/repositories/{name}").json()
        body["write_policy"] = "allow_once"
        updated = admin.put(f"/api/v1/repositories/{name}", json=body)
        assert updated.status_code == 200, updated.text
        assert updated.json()["write_policy"] == "allow_once"
        assert updated.json()["revision"] > body["revision"]
        renamed = admin.put(f"/api/v1/repositories/{name}", json={**body, "format": "npm"})
    assert renamed.status_code == 400


def test_get_of_proxy_always_includes_offline_and_masks_password(server):
    name = server.create_repo("raw", "proxy", url="http://127.0.0.1:9/", username="u", password="s3cret")
    with server.client() as admin:
        view = admin.get(f"/api/v1/repositories/{name}").json()
        assert view["offline"] is False
        assert view["password"] == "********"
        assert "s3cret" not in admin.get("/api/v1/repositories").text


def test_unknown_repository_answers_404_json(server):
    with server.client() as admin:
        assert admin.get("/api/v1/repositories/none-such").status_code == 404
        response = admin.get("/repository/none-such/file.txt")
    assert response.status_code == 404
    assert "not found" in response.json()["error"]


def test_deleting_a_repository_a_group_uses_answers_409_naming_the_group(server):
    member = server.create_repo("raw")
    group = server.create_repo("raw", "group", members=[member])
    with server.client() as admin:
        response = admin.delete(f"/api/v1/repositories/{member}")
        assert response.status_code == 409
        assert group in response.json()["error"]
        assert admin.delete(f"/api/v1/repositories/{group}").status_code == 204
        assert admin.delete(f"/api/v1/repositories/{member}").status_code == 204
        assert admin.get(f"/api/v1/repositories/{member}").status_code == 404


def test_deleted_repository_stops_serving_its_files(server):
    name = server.create_repo("raw")
    with server.client() as admin:
        assert admin.put(f"/repository/{name}/a.txt", content=b"a").status_code == 201
        assert admin.delete(f"/api/v1/repositories/{name}").status_code == 204
        assert admin.get(f"/repository/{name}/a.txt").status_code == 404


def test_group_cycles_are_refused(server):
    inner = server.create_repo("raw", "group", members=[server.create_repo("raw")])
    outer = server.create_repo("raw", "group", members=[inner])
    with server.client() as admin:
        body = admin.get(f"/api/v1/repositories/{inner}").json()
        response = admin.put(f"/api/v1/repositories/{inner}", json={**body, "members": [outer]})
    assert response.status_code == 400
    assert "cycle" in response.json()["error"]


def test_search_lists_matching_components_with_assets(any_server):
    name = any_server.create_repo("raw")
    marker = uuid.uuid4().hex[:10]
    with any_server.client() as admin:
        admin.put(f"/repository/{name}/tools/{marker}-1.0.tar.gz", content=b"tool")
        found = admin.get("/api/v1/search", params={"q": marker, "format": "raw"}).json()["items"]
        assert [item["name"] for item in found] == [f"tools/{marker}-1.0.tar.gz"]
        assert found[0]["assets"][0]["size"] == 4
        assert found[0]["repository"] == name
        other = admin.get("/api/v1/search", params={"q": marker, "repository": "elsewhere"}).json()["items"]
    assert other == []


def test_cli_lists_repositories_created_through_the_api(server, tmp_path):
    import subprocess
    import sys

    name = server.create_repo("raw")
    result = subprocess.run(
        [sys.executable, "-m", "artifactory", "repo", "list", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert name in result.stdout


def test_changing_a_proxy_upstream_host_requires_the_password_again(server):
    name = server.create_repo("raw", "proxy", url="http://127.0.0.1:9/", username="u", password="s3cret")
    with server.client() as admin:
        view = admin.get(f"/api/v1/repositories/{name}").json()
        same_host = admin.put(
            f"/api/v1/repositories/{name}", json={**view, "url": "http://127.0.0.1:9/other/"}
        )
        assert same_host.status_code == 200
        moved = admin.put(f"/api/v1/repositories/{name}", json={**view, "url": "http://127.0.0.2:9/"})
        assert moved.status_code == 400 and "password" in moved.json()["error"]
        resent = admin.put(
            f"/api/v1/repositories/{name}", json={**view, "url": "http://127.0.0.2:9/", "password": "new"}
        )
    assert resent.status_code == 200


def test_a_method_a_route_does_not_take_is_a_405_naming_every_method_it_does(server):
    with server.client() as admin:
        response = admin.patch("/api/v1/repositories")
        assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD, POST"
        response = admin.post("/api/v1/status")
        assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"
