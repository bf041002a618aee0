"""The OpenAPI document describes exactly the admin API's routes, and what they really answer."""

import json
import re
import uuid

import pytest
from starlette.routing import Route

from artifactory.api.openapi import OPENAPI
from artifactory.api.routes import routes

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def route_operations() -> set[tuple[str, str]]:
    found = set()
    for route in routes:
        assert isinstance(route, Route)
        # Starlette answers HEAD for every GET route by itself; the document lists the GET.
        for method in route.methods or ():
            if method != "HEAD":
                found.add((route.path_format, method.lower()))
    return found


def documented_operations() -> set[tuple[str, str]]:
    return {(path, method) for path, item in OPENAPI["paths"].items() for method in item if method in METHODS}


def test_every_route_is_documented_and_every_documented_operation_is_a_route():
    assert route_operations() == documented_operations()


def test_document_is_valid_openapi_3_1():
    validator = pytest.importorskip("openapi_spec_validator")
    assert OPENAPI["openapi"].startswith("3.1")
    validator.validate(OPENAPI)


def test_every_path_parameter_is_declared_and_operation_ids_are_unique():
    ids = []
    for path, item in OPENAPI["paths"].items():
        in_path = set(re.findall(r"{([^}]+)}", path))
        for method in set(item) & METHODS:
            operation = item[method]
            ids.append(operation["operationId"])
            params = item.get("parameters", []) + operation.get("parameters", [])
            assert {p["name"] for p in params if p["in"] == "path"} == in_path, (path, method)
            assert operation["responses"], (path, method)
    assert len(ids) == len(set(ids))


def test_security_schemes_are_basic_and_bearer():
    schemes = OPENAPI["components"]["securitySchemes"]
    assert schemes["basic"] == {**schemes["basic"], "type": "http", "scheme": "basic"}
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}


def test_server_serves_the_document(server):
    with server.client(auth=None) as anonymous:
        response = anonymous.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(OPENAPI))


# -- the document against real answers ------------------------------------------------------------
REPOS, REPO, INVALIDATE = (
    "/api/v1/repositories",
    "/api/v1/repositories/{name}",
    "/api/v1/repositories/{name}/invalidate",
)
USERS, USER, ROLES, ROLE = "/api/v1/users", "/api/v1/users/{name}", "/api/v1/roles", "/api/v1/roles/{name}"
TOKENS, TOKEN, SETTINGS = "/api/v1/tokens", "/api/v1/tokens/{token_id}", "/api/v1/settings"


def validate(schema, instance):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator({**schema, "components": OPENAPI["components"]}).validate(instance)


class Documented:
    """Calls an operation of the document and checks both sides against it: the answer's status is
    one the operation lists and its body matches that response's schema; a body the server accepted
    (2xx) matches the operation's request schema."""

    def __init__(self, client):
        self.client = client

    def __call__(self, method, template, json=None, params=None, **path_params):
        operation = OPENAPI["paths"][template][method]
        response = self.client.request(method, template.format(**path_params), json=json, params=params)
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {template}: undocumented {status} {response.text}"
        documented = operation["responses"][status]
        if "$ref" in documented:
            documented = OPENAPI["components"]["responses"][documented["$ref"].rsplit("/", 1)[-1]]
        if "content" in documented:
            validate(documented["content"]["application/json"]["schema"], response.json())
        else:
            assert response.content == b""
        if json is not None and response.is_success:
            validate(operation["requestBody"]["content"]["application/json"]["schema"], json)
        return response


def test_repository_calls_answer_what_the_document_says(server):
    hosted, proxy, group = (f"oa-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("hosted", "proxy", "group"))
    bodies = [
        {"name": hosted, "format": "raw", "type": "hosted", "write_policy": "allow_once"},
        {"name": proxy, "format": "raw", "type": "proxy", "url": "http://127.0.0.1:9/", "password": "pw"},
        {"name": group, "format": "raw", "type": "group", "members": [hosted, proxy]},
    ]
    with server.client() as admin_client, server.client(auth=None) as anonymous_client:
        admin, anonymous = Documented(admin_client), Documented(anonymous_client)
        for body in bodies:
            assert admin("post", REPOS, json=body).status_code == 201
        assert admin("post", REPOS, json=bodies[0]).status_code == 409
        assert admin("post", REPOS, json={"name": "x", "format": "raw", "type": "proxy"}).status_code == 400
        assert anonymous("post", REPOS, json=bodies[0]).status_code == 401
        assert {r["name"] for r in anonymous("get", REPOS).json()} >= {hosted, proxy, group}

        fetched = admin("get", REPO, name=proxy).json()
        assert fetched["password"] == "********" and fetched["offline"] is False and "status" in fetched
        changed = {**fetched, "metadata_ttl_seconds": 60}
        assert admin("put", REPO, json=changed, name=proxy).json()["metadata_ttl_seconds"] == 60
        assert admin("put", REPO, json={**changed, "name": "missing-x"}, name="missing-x").status_code == 404
        assert admin("put", REPO, json={**changed, "type": "hosted"}, name=proxy).status_code == 400
        assert admin("get", REPO, name="missing-x").status_code == 404
        assert admin("get", REPO, name=group).json()["members"] == [hosted, proxy]

        assert admin("post", INVALIDATE, json={"prefix": "a/"}, name=proxy).json() == {"invalidated": "a/"}
        assert admin("post", INVALIDATE, name=proxy).json() == {"invalidated": "*"}
        assert admin("post", INVALIDATE, name=hosted).status_code == 400
        assert admin("post", INVALIDATE, name="missing-x").status_code == 404
        assert anonymous("post", INVALIDATE, name=proxy).status_code == 401

        assert admin("delete", REPO, name=hosted).status_code == 409
        for name in (group, hosted, proxy):
            assert admin("delete", REPO, name=name).status_code == 204
        assert admin("delete", REPO, name=hosted).status_code == 404


def test_security_calls_answer_what_the_document_says(server):
    role, user = f"oa-role-{uuid.uuid4().hex[:6]}", f"oa-user-{uuid.uuid4().hex[:6]}"
    new_role = {"name": role, "privileges": [{"repositories": "oa-*", "actions": ["read", "write"]}]}
    new_user = {"username": user, "password": "pw-1", "roles": [role]}
    read_all = {"privileges": [{"repositories": "*", "actions": ["read"]}]}
    with server.client() as admin_client:
        admin = Documented(admin_client)
        assert admin("post", ROLES, json=new_role).status_code == 201
        assert admin("post", ROLES, json=new_role).status_code == 409
        assert admin("put", ROLE, json=read_all, name=role).json()["privileges"] == read_all["privileges"]
        assert admin("put", ROLE, json=read_all, name="admin").status_code == 400
        assert {r["name"]: r["builtin"] for r in admin("get", ROLES).json()}[role] is False
        assert admin("post", USERS, json=new_user).status_code == 201
        assert admin("post", USERS, json=new_user).status_code == 409
        assert admin("post", USERS, json={**new_user, "username": "bad name"}).status_code == 400
        assert {"username": user, "roles": [role], "disabled": False} in admin("get", USERS).json()

        with server.client(auth=(user, "pw-1")) as member_client, server.client(auth=(user, "no")) as wrong:
            member = Documented(member_client)
            assert member("get", USERS).status_code == 403
            assert member("get", "/api/v1/whoami").json()["username"] == user
            token = member("post", TOKENS, json={"name": "ci", "expires_in_seconds": 60}).json()
            assert token["expires_at"] is not None
            assert member("post", TOKENS).json()["expires_at"] is None
            assert member("post", TOKENS, json={"expires_in_seconds": 0}).status_code == 400
            assert token["id"] in [t["id"] for t in member("get", TOKENS).json()]
            assert member("delete", TOKEN, token_id=token["id"]).status_code == 204
            assert member("delete", TOKEN, token_id=token["id"]).status_code == 404
            assert Documented(wrong)("get", "/api/v1/whoami").status_code == 401

        assert admin("delete", USER, name=user).status_code == 204
        assert admin("delete", USER, name=user).status_code == 404
        assert admin("delete", USER, name="admin").status_code == 400
        assert admin("delete", ROLE, name=role).status_code == 204
        assert admin("delete", ROLE, name=role).status_code == 404
        assert admin("delete", ROLE, name="anonymous").status_code == 400


def test_server_calls_answer_what_the_document_says(server):
    repo = server.create_repo("raw")
    with server.client() as admin_client, server.client(auth=None) as anonymous_client:
        admin, anonymous = Documented(admin_client), Documented(anonymous_client)
        assert anonymous("get", "/api/v1/status").json()["status"] == "ok"
        assert anonymous("get", "/api/v1/whoami").json()["anonymous"] is True
        assert admin_client.put(f"/repository/{repo}/docs/readme.txt", content=b"hello").status_code == 201
        found = admin("get", "/api/v1/search", params={"q": "README", "repository": repo}).json()["items"]
        assert [(c["name"], [a["size"] for a in c["assets"]]) for c in found] == [("docs/readme.txt", [5])]
        assert admin("get", "/api/v1/search", params={"limit": "x"}).status_code == 400

        settings = admin("get", SETTINGS).json()
        assert admin("put", SETTINGS, json=settings).json() == settings
        assert admin("put", SETTINGS, json={"colour": "red"}).status_code == 400
        assert anonymous("get", SETTINGS).status_code == 401
