"""Group repositories end to end: ordered members, permissions, the dependency-confusion guard, writes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from artifactory.testing.server import LiveServer
from tests.artifactory.repository.upstream import Upstream, running

SETTLE = 0.3  # LiveServer caches config and roles for 0.2 s


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running() as up:
        yield up


@pytest.fixture
def admin(any_server: LiveServer) -> Iterator[httpx.Client]:
    with any_server.client() as client:
        yield client


@pytest.fixture
def root() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def private(any_server: LiveServer, admin: httpx.Client) -> Iterator[None]:
    """Anonymous read off, so that a user reads only what its roles grant."""
    assert admin.put("/api/v1/settings", json={"anonymous_read": False}).status_code == 200
    time.sleep(SETTLE)
    try:
        yield
    finally:
        admin.put("/api/v1/settings", json={"anonymous_read": True})
        time.sleep(SETTLE)


def hosted(any_server: LiveServer, admin: httpx.Client, files: dict[str, bytes]) -> str:
    name = any_server.create_repo("raw")
    for path, data in files.items():
        assert admin.put(f"/repository/{name}/{path}", content=data).status_code == 201
    return name


def proxy(any_server: LiveServer, upstream: Upstream, **config: Any) -> str:
    return any_server.create_repo("raw", "proxy", url=upstream.url, **config)


def group(any_server: LiveServer, *members: str, **config: Any) -> str:
    return any_server.create_repo("raw", "group", members=list(members), **config)


def user_reading(any_server: LiveServer, admin: httpx.Client, *repositories: str) -> tuple[str, str]:
    role = f"role-{uuid.uuid4().hex[:8]}"
    privileges = [{"repositories": r, "actions": ["read"]} for r in repositories]
    response = admin.post("/api/v1/roles", json={"name": role, "privileges": privileges})
    assert response.status_code == 201, response.text
    username, password = f"user-{uuid.uuid4().hex[:8]}", "user-password"
    response = admin.post("/api/v1/users", json={"username": username, "password": password, "roles": [role]})
    assert response.status_code == 201, response.text
    time.sleep(SETTLE)
    return username, password


def body(client: httpx.Client, url: str) -> tuple[int, bytes]:
    response = client.get(url)
    return response.status_code, response.content


# -- reading -----------------------------------------------------------------------------------
def test_the_first_member_holding_a_path_wins(any_server, admin, root):
    first = hosted(any_server, admin, {f"{root}/same.txt": b"from first"})
    second = hosted(
        any_server, admin, {f"{root}/same.txt": b"from second", f"{root}/only.txt": b"only second"}
    )
    forward, backward = group(any_server, first, second), group(any_server, second, first)
    assert body(admin, f"/repository/{forward}/{root}/same.txt") == (200, b"from first")
    assert body(admin, f"/repository/{backward}/{root}/same.txt") == (200, b"from second")
    assert body(admin, f"/repository/{forward}/{root}/only.txt") == (200, b"only second")
    assert admin.get(f"/repository/{forward}/{root}/nowhere.txt").status_code == 404


def test_a_member_the_caller_may_not_read_is_skipped(any_server, admin, root, private):
    secret = hosted(any_server, admin, {f"{root}/same.txt": b"secret copy"})
    public = hosted(any_server, admin, {f"{root}/same.txt": b"public copy"})
    both = group(any_server, secret, public)
    username, password = user_reading(any_server, admin, both, public)
    with any_server.client(auth=(username, password)) as user:
        assert body(user, f"/repository/{both}/{root}/same.txt") == (200, b"public copy")
        assert user.get(f"/repository/{secret}/{root}/same.txt").status_code == 403
    assert body(admin, f"/repository/{both}/{root}/same.txt") == (200, b"secret copy")


def test_a_group_fetches_through_its_proxy_member_and_caches_there(any_server, upstream, admin, root):
    local = hosted(any_server, admin, {f"{root}/local.txt": b"local"})
    remote = proxy(any_server, upstream)
    both = group(any_server, local, remote)
    upstream.put(f"{root}/remote.bin", b"remote bytes" * 1000)
    for _ in range(3):
        assert body(admin, f"/repository/{both}/{root}/remote.bin") == (200, b"remote bytes" * 1000)
    assert body(admin, f"/repository/{remote}/{root}/remote.bin") == (200, b"remote bytes" * 1000)
    assert body(admin, f"/repository/{both}/{root}/local.txt") == (200, b"local")
    assert upstream.count(f"{root}/remote.bin") == 1
    assert upstream.count(f"{root}/local.txt") == 0  # the hosted member came first


def test_a_failing_proxy_member_does_not_hide_a_later_member(any_server, upstream, admin, root):
    remote = proxy(any_server, upstream, timeout_seconds=0.5)
    local = hosted(any_server, admin, {f"{root}/here.txt": b"hosted copy"})
    both = group(any_server, remote, local)
    upstream.fail[f"{root}/here.txt"] = "500"
    upstream.fail[f"{root}/gone.txt"] = "500"
    assert body(admin, f"/repository/{both}/{root}/here.txt") == (200, b"hosted copy")
    # Nobody has it and the upstream failed: a 502, not a 404 that tells clients it does not exist.
    response = admin.get(f"/repository/{both}/{root}/gone.txt")
    assert response.status_code == 502
    assert "error" in response.json()


# -- the dependency-confusion guard -------------------------------------------------------------
def test_a_path_held_by_a_hosted_member_is_never_served_from_an_earlier_proxy(
    any_server, upstream, admin, root
):
    internal = f"{root}/internal/lib.txt"
    upstream.put(internal, b"attacker's lookalike")
    upstream.put(f"{root}/public/tool.txt", b"public tool")
    remote = proxy(any_server, upstream)
    local = hosted(any_server, admin, {internal: b"our own lib"})
    guarded = group(any_server, remote, local)
    assert body(admin, f"/repository/{guarded}/{internal}") == (200, b"our own lib")
    assert upstream.count(internal) == 0
    assert body(admin, f"/repository/{guarded}/{root}/public/tool.txt") == (200, b"public tool")


def test_allow_proxy_shadowing_lets_an_earlier_proxy_win(any_server, upstream, admin, root):
    internal = f"{root}/internal/lib.txt"
    upstream.put(internal, b"upstream copy")
    remote = proxy(any_server, upstream)
    local = hosted(any_server, admin, {internal: b"our own lib"})
    shadowing = group(any_server, remote, local, allow_proxy_shadowing=True)
    assert body(admin, f"/repository/{shadowing}/{internal}") == (200, b"upstream copy")
    assert upstream.count(internal) == 1


def test_the_guard_holds_for_a_caller_who_may_not_read_the_hosted_member(
    any_server, upstream, admin, root, private
):
    internal = f"{root}/internal/lib.txt"
    upstream.put(internal, b"attacker's lookalike")
    remote = proxy(any_server, upstream)
    local = hosted(any_server, admin, {internal: b"our own lib"})
    guarded = group(any_server, remote, local)
    username, password = user_reading(any_server, admin, guarded, remote)
    with any_server.client(auth=(username, password)) as user:
        response = user.get(f"/repository/{guarded}/{internal}")
    assert response.status_code == 404
    assert b"attacker" not in response.content
    assert upstream.count(internal) == 0


def test_the_guard_holds_for_a_proxy_inside_a_nested_group(any_server, upstream, admin, root):
    internal = f"{root}/internal/lib.txt"
    upstream.put(internal, b"attacker's lookalike")
    remote = proxy(any_server, upstream)
    inner = group(any_server, remote)
    local = hosted(any_server, admin, {internal: b"our own lib"})
    outer = group(any_server, inner, local)
    assert body(admin, f"/repository/{outer}/{internal}") == (200, b"our own lib")
    assert upstream.count(internal) == 0


def test_the_guard_holds_for_a_hosted_member_inside_a_nested_group(any_server, upstream, admin, root):
    internal = f"{root}/internal/lib.txt"
    upstream.put(internal, b"attacker's lookalike")
    remote = proxy(any_server, upstream)
    local = hosted(any_server, admin, {internal: b"our own lib"})
    outer = group(any_server, remote, group(any_server, local))
    assert body(admin, f"/repository/{outer}/{internal}") == (200, b"our own lib")
    assert upstream.count(internal) == 0


# -- administration and writes ------------------------------------------------------------------
def test_deleting_a_repository_a_group_uses_answers_409_naming_the_group(any_server, admin, root):
    member = hosted(any_server, admin, {f"{root}/a.txt": b"a"})
    users = group(any_server, member)
    response = admin.delete(f"/api/v1/repositories/{member}")
    assert response.status_code == 409
    assert users in response.json()["error"]
    assert body(admin, f"/repository/{users}/{root}/a.txt") == (200, b"a")
    assert admin.delete(f"/api/v1/repositories/{users}").status_code == 204
    assert admin.delete(f"/api/v1/repositories/{member}").status_code == 204


def test_a_write_to_a_group_goes_to_its_write_member_or_is_refused(any_server, admin, root):
    first = hosted(any_server, admin, {})
    second = hosted(any_server, admin, {})
    readonly = group(any_server, first, second)
    response = admin.put(f"/repository/{readonly}/{root}/up.txt", content=b"refused")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"
    assert "error" in response.json()
    writable = group(any_server, first, second, write_member=second)
    assert admin.put(f"/repository/{writable}/{root}/up.txt", content=b"stored").status_code == 201
    assert body(admin, f"/repository/{second}/{root}/up.txt") == (200, b"stored")
    assert admin.get(f"/repository/{first}/{root}/up.txt").status_code == 404
    assert body(admin, f"/repository/{writable}/{root}/up.txt") == (200, b"stored")


def test_a_group_never_writes_into_a_proxy_write_member(any_server, upstream, admin, root):
    remote = proxy(any_server, upstream)
    local = hosted(any_server, admin, {})
    response = admin.post(
        "/api/v1/repositories",
        json={
            "name": f"g-{root}",
            "format": "raw",
            "type": "group",
            "members": [remote, local],
            "write_member": remote,
        },
    )
    if response.status_code == 201:
        put = admin.put(f"/repository/g-{root}/{root}/planted.txt", content=b"planted")
        assert put.status_code in (400, 405)
    assert admin.get(f"/repository/{remote}/{root}/planted.txt").status_code != 200
