"""Who may do what through npm routes, with anonymous reads off (issue 9, items 2, 3, 7, 11, 12):
reading a group's write member, audit, tokens made by tokens, and hostile login and token bodies."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from tests.formats.npm.helpers import TinyRegistry, escaped, publish_document

AUDIT_PATHS = ["-/npm/v1/security/advisories/bulk", "-/npm/v1/security/audits/quick"]


@contextlib.contextmanager
def anonymous_reads(admin: httpx.Client, enabled: bool) -> Iterator[None]:
    assert admin.put("/api/v1/settings", json={"anonymous_read": enabled}).status_code == 200
    try:
        yield
    finally:
        admin.put("/api/v1/settings", json={"anonymous_read": not enabled})


@pytest.fixture(scope="module", autouse=True)
def anonymous_reads_off(admin) -> Iterator[None]:
    with anonymous_reads(admin, False):
        yield


def user(any_server, admin: httpx.Client, **privileges: list[str]) -> tuple[str, str]:
    """A user whose one role grants `repository=[actions]` and nothing else."""
    if not privileges:
        return any_server.create_user([])
    role = f"role-{uuid.uuid4().hex[:8]}"
    rules = [{"repositories": repo, "actions": actions} for repo, actions in privileges.items()]
    assert admin.post("/api/v1/roles", json={"name": role, "privileges": rules}).status_code in (200, 201)
    return any_server.create_user([role])


def publish(client: httpx.Client, repo: str, name: str, version: str) -> None:
    response = client.put(f"/repository/{repo}/{escaped(name)}", json=publish_document(name, version))
    assert response.status_code == 201, response.text


def deeply_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# -- item 2: a group's write member --------------------------------------------------------
def test_write_true_through_a_group_never_shows_a_write_member_the_caller_cannot_read(any_server, admin):
    shared, secret = any_server.create_repo("npm"), any_server.create_repo("npm")
    publish(admin, secret, "hidden-pkg", "1.0.0")
    group = any_server.create_repo("npm", "group", members=[shared, secret], write_member=secret)
    base = any_server.repo_url(group)
    reader = user(any_server, admin, **{group: ["read"], shared: ["read"]})
    missing = httpx.get(base + "never-published?write=true", auth=reader)
    assert missing.status_code == 404
    for path in ("hidden-pkg", "hidden-pkg?write=true", "hidden-pkg/1.0.0?write=true"):
        response = httpx.get(base + path, auth=reader)
        assert response.status_code == 404, path
        assert response.json() == {"error": f"package hidden-pkg not found in {group}"}
    tags = httpx.get(base + "-/package/hidden-pkg/dist-tags?write=true", auth=reader)
    assert tags.status_code == 404 and "1.0.0" not in tags.text
    # Whoever may read the write member gets its document, _rev included, as npm deprecate needs.
    member_reader = user(any_server, admin, **{group: ["read"], secret: ["read"]})
    document = httpx.get(base + "hidden-pkg?write=true", auth=member_reader)
    assert document.status_code == 200 and document.json()["_rev"].startswith("1-")


# -- item 3: audit -------------------------------------------------------------------------
def test_audit_needs_read_access_like_any_read(any_server, admin):
    hosted = any_server.create_repo("npm")
    stranger, reader = user(any_server, admin), user(any_server, admin, **{hosted: ["read"]})
    for path in AUDIT_PATHS:
        url = any_server.repo_url(hosted) + path
        anonymous = httpx.post(url, json={"left-pad": ["1.0.0"]})
        assert anonymous.status_code == 401 and "error" in anonymous.json()
        assert httpx.post(url, json={"left-pad": ["1.0.0"]}, auth=stranger).status_code == 403
        allowed = httpx.post(url, json={"left-pad": ["1.0.0"]}, auth=reader)
        assert allowed.status_code == 200
        assert allowed.json() == {} if path.endswith("bulk") else allowed.json()["advisories"] == {}


def test_a_proxy_forwards_audits_only_for_a_logged_in_reader(any_server, admin, tiny):
    proxy = any_server.create_repo("npm", "proxy", url=tiny.url)
    group = any_server.create_repo("npm", "group", members=[any_server.create_repo("npm"), proxy])
    outsider = user(any_server, admin, **{group: ["read"]})
    reader = user(any_server, admin, **{group: ["read"], proxy: ["read"]})
    for path in AUDIT_PATHS:
        tiny.serve("/" + path, {"up-lib": []})
        with anonymous_reads(admin, True):
            for repo in (proxy, group):
                response = httpx.post(any_server.repo_url(repo) + path, json={"up-lib": ["1.0.0"]})
                assert response.status_code == 401 and "log" in response.json()["error"]
        # A user who may read the group but not its proxy member gets no upstream audit either.
        empty = httpx.post(any_server.repo_url(group) + path, json={"up-lib": ["1.0.0"]}, auth=outsider)
        assert empty.status_code == 200 and "up-lib" not in empty.json()
        assert tiny.count("/" + path, "POST") == 0
        answered = httpx.post(any_server.repo_url(group) + path, json={"up-lib": ["1.0.0"]}, auth=reader)
        assert answered.status_code == 200 and answered.json() == {"up-lib": []}
        assert tiny.count("/" + path, "POST") == 1


def test_an_audit_body_over_4_mib_is_refused_with_413_and_never_forwarded(any_server, admin, tiny):
    path = AUDIT_PATHS[0]
    tiny.serve("/" + path, {})
    proxy = any_server.create_repo("npm", "proxy", url=tiny.url)
    reader = user(any_server, admin, **{proxy: ["read"]})
    body = b'{"left-pad": ["' + b"1" * (4 * 1024 * 1024) + b'"]}'
    response = httpx.post(
        any_server.repo_url(proxy) + path,
        content=body,
        headers={"Content-Type": "application/json"},
        auth=reader,
    )
    assert response.status_code == 413 and "larger than" in response.json()["error"]
    assert tiny.count("/" + path, "POST") == 0


def test_an_upstream_audit_failure_through_a_group_is_a_502_not_an_empty_report(any_server, admin, tiny):
    proxy = any_server.create_repo("npm", "proxy", url=tiny.url)
    group = any_server.create_repo("npm", "group", members=[any_server.create_repo("npm"), proxy])
    reader = user(any_server, admin, **{group: ["read"], proxy: ["read"]})
    for path in AUDIT_PATHS:
        url = any_server.repo_url(group) + path
        tiny.down = True
        failed = httpx.post(url, json={"up-lib": ["1.0.0"]}, auth=reader)
        assert failed.status_code == 502 and "503" in failed.json()["error"]
        tiny.down = False
        tiny.serve("/" + path, b"<html>maintenance</html>", "text/html")
        garbled = httpx.post(url, json={"up-lib": ["1.0.0"]}, auth=reader)
        assert garbled.status_code == 502 and "not valid JSON" in garbled.json()["error"]
        direct = httpx.post(any_server.repo_url(proxy) + path, json={"up-lib": ["1.0.0"]}, auth=reader)
        assert direct.status_code == 502


# -- item 7: tokens made through npm -------------------------------------------------------
def test_npm_token_create_refuses_a_token_as_the_password(any_server, admin):
    repo = any_server.create_repo("npm")
    username, password = user(any_server, admin)
    with any_server.client(auth=(username, password)) as client:
        token = client.post("/api/v1/tokens", json={"name": "cli"}).json()["token"]
    url = any_server.repo_url(repo) + "-/npm/v1/tokens"
    bearer = {"Authorization": f"Bearer {token}"}
    refused = httpx.post(url, json={"password": token}, headers=bearer)
    assert refused.status_code == 401 and "password" in refused.json()["error"]
    accepted = httpx.post(url, json={"password": password}, headers=bearer)
    assert accepted.status_code == 201 and accepted.json()["token"] != token


def test_a_token_made_through_npm_by_an_expiring_token_expires_no_later_than_it(any_server, admin):
    repo = any_server.create_repo("npm")
    username, password = user(any_server, admin, **{repo: ["read"]})
    with any_server.client(auth=(username, password)) as client:
        short = client.post("/api/v1/tokens", json={"expires_in_seconds": 3600}).json()
    url = any_server.repo_url(repo) + "-/npm/v1/tokens"
    bearer = {"Authorization": f"Bearer {short['token']}"}
    made = httpx.post(url, json={"password": password}, headers=bearer)
    assert made.status_code == 201, made.text
    expires = made.json()["expires"]
    assert expires is not None
    assert datetime.fromisoformat(expires) <= datetime.fromisoformat(short["expires_at"])
    longer = httpx.post(url, json={"password": password, "expires": 30}, headers=bearer)
    assert longer.status_code == 400 and "outlive" in longer.json()["error"]
    whoami = httpx.get(
        any_server.repo_url(repo) + "-/whoami", headers={"Authorization": f"Bearer {made.json()['token']}"}
    )
    assert whoami.status_code == 200 and whoami.json() == {"username": username}


def test_a_read_only_npm_token_reads_but_never_publishes(any_server, admin):
    repo = any_server.create_repo("npm")
    publish(admin, repo, "readable", "1.0.0")
    username, password = user(any_server, admin, **{repo: ["read", "write"]})
    made = httpx.post(
        any_server.repo_url(repo) + "-/npm/v1/tokens",
        json={"password": password, "readonly": True},
        auth=(username, password),
    )
    assert made.status_code == 201 and made.json()["readonly"] is True
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    assert httpx.get(any_server.repo_url(repo) + "readable", headers=bearer).status_code == 200
    refused = httpx.put(
        any_server.repo_url(repo) + "written", json=publish_document("written", "1.0.0"), headers=bearer
    )
    assert refused.status_code == 403
    assert httpx.get(any_server.repo_url(repo) + "written", headers=bearer).status_code == 404
    listed = httpx.get(any_server.repo_url(repo) + "-/npm/v1/tokens", auth=(username, password)).json()
    assert [t["readonly"] for t in listed["objects"]] == [True]


def test_search_and_audit_ask_each_readable_online_proxy_of_nested_groups_once(any_server, admin, tiny):
    """The engine's walk behind search and audit (`Repositories.proxies`): nested groups where they
    stand, a proxy listed twice asked once, a proxy the caller may not read or one set offline
    never asked."""
    search, audit = "/-/v1/search", "/" + AUDIT_PATHS[0]
    other = TinyRegistry()
    try:
        for registry, package in ((tiny, "from-shown"), (other, "from-hidden")):
            found = {"objects": [{"package": {"name": package, "version": "1.0.0"}}], "total": 1}
            registry.serve(search, found)
            registry.serve(audit, {package: []})
        shown = any_server.create_repo("npm", "proxy", url=tiny.url)
        hidden = any_server.create_repo("npm", "proxy", url=other.url)
        offline = any_server.create_repo("npm", "proxy", url=other.url, offline=True)
        hosted = any_server.create_repo("npm")
        inner = any_server.create_repo("npm", "group", members=[hidden, shown, hosted])
        outer = any_server.create_repo("npm", "group", members=[inner, offline, shown])
        reader = user(any_server, admin, **{r: ["read"] for r in (outer, inner, shown, offline, hosted)})
        url = any_server.repo_url(outer)

        def names(answer: httpx.Response) -> list[str]:
            assert answer.status_code == 200, answer.text
            return sorted(o["package"]["name"] for o in answer.json()["objects"])

        assert names(httpx.get(url + search[1:], params={"text": "from"}, auth=reader)) == ["from-shown"]
        assert (tiny.count(search), other.count(search)) == (1, 0)
        as_admin = admin.get(f"/repository/{outer}{search}", params={"text": "from"})
        assert names(as_admin) == ["from-hidden", "from-shown"]
        assert (tiny.count(search), other.count(search)) == (2, 1)  # the offline proxy: never
        # An audit goes to the first of them: for the reader the proxy it may read, behind the one
        # it may not.
        assert httpx.post(url + audit[1:], json={"x": ["1.0.0"]}, auth=reader).json() == {"from-shown": []}
        assert admin.post(f"/repository/{outer}{audit}", json={"x": ["1.0.0"]}).json() == {"from-hidden": []}
        assert (tiny.count(audit, "POST"), other.count(audit, "POST")) == (1, 1)
    finally:
        other.stop()


def test_an_offline_proxy_answers_an_empty_audit_without_asking_its_upstream(any_server, admin, tiny):
    tiny.serve("/" + AUDIT_PATHS[0], {"up-lib": []})
    proxy = any_server.create_repo("npm", "proxy", url=tiny.url, offline=True)
    answer = admin.post(f"/repository/{proxy}/{AUDIT_PATHS[0]}", json={"up-lib": ["1.0.0"]})
    assert answer.status_code == 200 and answer.json() == {}
    search = admin.get(f"/repository/{proxy}/-/v1/search", params={"text": "up-lib"})
    assert search.status_code == 200 and search.json()["objects"] == []
    assert tiny.hits == {}


# -- items 11 and 12: login and token bodies -----------------------------------------------
def test_deeply_nested_json_to_login_and_token_create_is_a_400(any_server, admin):
    repo = any_server.create_repo("npm")
    base = any_server.repo_url(repo)
    login = httpx.put(base + "-/user/org.couchdb.user:someone", content=deeply_nested(100_000))
    assert login.status_code == 400 and "nested" in login.json()["error"]
    username, password = user(any_server, admin)
    token = httpx.post(base + "-/npm/v1/tokens", content=deeply_nested(100_000), auth=(username, password))
    assert token.status_code == 400 and "nested" in token.json()["error"]


def test_login_and_token_bodies_over_1_mib_are_refused_with_413(any_server, admin):
    repo = any_server.create_repo("npm")
    base = any_server.repo_url(repo)
    huge = b'{"name": "someone", "password": "' + b"x" * (1024 * 1024) + b'"}'
    login = httpx.put(base + "-/user/org.couchdb.user:someone", content=huge)
    assert login.status_code == 413
    username, password = user(any_server, admin)
    token = httpx.post(base + "-/npm/v1/tokens", content=huge, auth=(username, password))
    assert token.status_code == 413
