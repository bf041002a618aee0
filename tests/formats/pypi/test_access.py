"""Access with anonymous read off, on SQLite and PostgreSQL: the PyPI admin API tells a caller nothing
about a repository it may not see (issue 9 item 9), and a group's pages keep the dependency-confusion
guard for a hosted member the caller may not read (issue 10 item 9)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from artifactory.testing.server import LiveServer
from tests.formats.pypi.conftest import post_upload
from tests.formats.pypi.dists import wheel_bytes
from tests.formats.pypi.fake_index import FakeFile, FakeIndex

JSON = "application/vnd.pypi.simple.v1+json"
WHEEL = "thing-1.0-py3-none-any.whl"


@dataclass
class World:
    server: LiveServer
    user: tuple[str, str]
    index: FakeIndex
    repos: dict[str, str]


@pytest.fixture(scope="module")
def world(any_server: LiveServer) -> Iterator[World]:
    """`user` may read and write py-a and read raw-a, the proxy and the group; nothing else."""
    server = any_server
    index = FakeIndex().start()
    names = {
        "py-a": server.create_repo("pypi"),
        "py-b": server.create_repo("pypi"),
        "raw-a": server.create_repo("raw"),
        "raw-b": server.create_repo("raw"),
        "internal": server.create_repo("pypi"),
        "proxy": server.create_repo("pypi", "proxy", url=index.index_url),
    }
    names["group"] = server.create_repo("pypi", "group", members=[names["internal"], names["proxy"]])
    for repo in ("py-a", "py-b"):
        assert post_upload(server, names[repo], WHEEL, wheel_bytes("thing", "1.0")).status_code == 200
    role = f"role-{names['py-a']}"
    grants = [{"repositories": names["py-a"], "actions": ["read", "write"]}]
    grants += [{"repositories": names[r], "actions": ["read"]} for r in ("raw-a", "proxy", "group")]
    with server.client() as admin:
        assert admin.put("/api/v1/settings", json={"anonymous_read": False}).status_code == 200
        assert admin.post("/api/v1/roles", json={"name": role, "privileges": grants}).status_code == 201
    user = server.create_user([role])
    try:
        yield World(server, user, index, names)
    finally:
        index.stop()
        with server.client() as admin:
            admin.put("/api/v1/settings", json={"anonymous_read": True})


ENDPOINTS = [
    ("PUT", "/api/v1/pypi/{repo}/projects/thing/versions/1.0/yank"),
    ("DELETE", "/api/v1/pypi/{repo}/projects/thing/versions/1.0/yank"),
    ("PUT", "/api/v1/pypi/{repo}/projects/thing/files/" + WHEEL + "/yank"),
    ("DELETE", "/api/v1/pypi/{repo}/projects/thing/files/" + WHEEL + "/yank"),
    ("DELETE", "/api/v1/pypi/{repo}/projects/thing"),
    ("DELETE", "/api/v1/pypi/{repo}/projects/thing/versions/1.0"),
    ("DELETE", "/api/v1/pypi/{repo}/projects/thing/files/" + WHEEL),
]


@pytest.mark.parametrize("method, route", ENDPOINTS)
def test_the_pypi_admin_api_answers_404_alike_for_a_repository_the_caller_may_not_see(world, method, route):
    answers = {}
    with httpx.Client(base_url=world.server.url, auth=world.user) as client:
        for name in (world.repos["py-b"], world.repos["raw-b"], world.repos["raw-a"], "no-such-repository"):
            response = client.request(method, route.format(repo=name), json={"reason": "x"})
            answers[name] = (response.status_code, response.json()["error"].replace(name, "NAME"))
    assert set(answers.values()) == {(404, "pypi repository 'NAME' not found")}, answers
    with httpx.Client(base_url=world.server.url) as anonymous:  # no user: 401 for every name alike
        for name in (world.repos["py-b"], "no-such-repository"):
            assert anonymous.request(method, route.format(repo=name)).status_code == 401
    # Nothing was changed in the repository the caller may not see.
    with world.server.client() as admin:
        page = admin.get(f"/repository/{world.repos['py-b']}/simple/thing/", headers={"Accept": JSON})
    assert page.json()["files"][0]["yanked"] is False


def test_a_visible_repository_still_answers_403_and_400_and_allowed_calls_work(world):
    with httpx.Client(base_url=world.server.url, auth=world.user) as client:
        py_a = world.repos["py-a"]
        assert client.delete(f"/api/v1/pypi/{py_a}/projects/thing").status_code == 403  # no delete
        assert client.put(f"/api/v1/pypi/{py_a}/projects/thing/versions/1.0/yank").status_code == 200
        assert client.delete(f"/api/v1/pypi/{py_a}/projects/thing/versions/1.0/yank").status_code == 200
        proxy = client.put(f"/api/v1/pypi/{world.repos['proxy']}/projects/thing/versions/1.0/yank")
        assert proxy.status_code in (400, 403)  # a proxy it may read: not a hosted one (or no write)


def eventually(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_a_group_page_never_offers_a_proxys_files_for_a_project_an_unreadable_hosted_member_holds(world):
    server, repos, index = world.server, world.repos, world.index
    index.projects["secretpkg"] = [
        FakeFile("secretpkg-99.0-py3-none-any.whl", wheel_bytes("secretpkg", "99.0"), "99.0")
    ]
    index.projects["latepkg"] = [
        FakeFile("latepkg-99.0-py3-none-any.whl", wheel_bytes("latepkg", "99.0"), "99.0")
    ]
    index.projects["publicpkg"] = [
        FakeFile("publicpkg-1.0-py3-none-any.whl", wheel_bytes("publicpkg", "1.0"), "1.0")
    ]
    held = post_upload(
        server, repos["internal"], "secretpkg-1.0-py3-none-any.whl", wheel_bytes("secretpkg", "1.0")
    )
    assert held.status_code == 200
    group = server.repo_url(repos["group"])

    with httpx.Client(auth=world.user) as client:
        # Neither the hosted files (unreadable) nor the proxy's lookalikes (guarded): 404 everywhere.
        assert client.get(f"{group}simple/secretpkg/", headers={"Accept": JSON}).status_code == 404
        assert client.get(f"{group}simple/secretpkg/").status_code == 404
        assert client.get(f"{group}pypi/secretpkg/json").status_code == 404
        assert client.get(f"{group}packages/secretpkg/secretpkg-99.0-py3-none-any.whl").status_code == 404
        public = client.get(f"{group}simple/publicpkg/", headers={"Accept": JSON})
        assert [f["filename"] for f in public.json()["files"]] == ["publicpkg-1.0-py3-none-any.whl"]
        # A page seen before a hosted member took the name is not served from a cache after it.
        late = client.get(f"{group}simple/latepkg/", headers={"Accept": JSON})
        assert [f["filename"] for f in late.json()["files"]] == ["latepkg-99.0-py3-none-any.whl"]
    assert index.fetched("secretpkg-99.0-py3-none-any.whl") == 0
    with server.client() as admin:  # who may read the hosted member sees its files only
        page = admin.get(f"{group}simple/secretpkg/", headers={"Accept": JSON}).json()
        assert [f["filename"] for f in page["files"]] == ["secretpkg-1.0-py3-none-any.whl"]
    taken = post_upload(
        server, repos["internal"], "latepkg-1.0-py3-none-any.whl", wheel_bytes("latepkg", "1.0")
    )
    assert taken.status_code == 200
    with httpx.Client(auth=world.user) as client:
        eventually(lambda: client.get(f"{group}simple/latepkg/", headers={"Accept": JSON}).status_code == 404)
        assert client.get(f"{group}simple/latepkg/").status_code == 404
