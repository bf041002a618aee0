"""Folders are matched exactly: a raw listing and a group's folder probe tell `A/` from `a/` and take
LIKE's wildcards literally, on SQLite (whose LIKE ignores ASCII case) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from artifactory.testing.server import LiveServer


@pytest.fixture(scope="module")
def repos(any_server: LiveServer) -> Iterator[tuple[str, str]]:
    hosted = any_server.create_repo("raw")
    with any_server.client() as admin:
        for path in ["A/x", "a_b/y", "axb/z", "é/w"]:
            assert admin.put(f"/repository/{hosted}/{path}", content=b"data").status_code == 201
    yield hosted, any_server.create_repo("raw", "group", members=[hosted])


@pytest.fixture
def client(any_server: LiveServer) -> Iterator[httpx.Client]:
    with any_server.client(follow_redirects=False) as client:
        yield client


@pytest.mark.parametrize("kind", ["hosted", "group"])
def test_a_folder_of_another_case_is_not_found(
    client: httpx.Client, repos: tuple[str, str], kind: str
) -> None:
    name = repos[0] if kind == "hosted" else repos[1]
    assert client.get(f"/repository/{name}/a/").status_code == 404
    assert client.get(f"/repository/{name}/a").status_code == 404  # not redirected to a folder
    listing = client.get(f"/repository/{name}/A/")
    assert listing.status_code == 200 and ">x<" in listing.text
    assert client.get(f"/repository/{name}/A").status_code == 301
    assert client.get(f"/repository/{name}/%C3%89/").status_code == 404
    assert client.get(f"/repository/{name}/%C3%A9/").status_code == 200


@pytest.mark.parametrize("kind", ["hosted", "group"])
def test_a_folder_with_a_like_wildcard_lists_only_itself(
    client: httpx.Client, repos: tuple[str, str], kind: str
) -> None:
    name = repos[0] if kind == "hosted" else repos[1]
    listing = client.get(f"/repository/{name}/a_b/")
    assert listing.status_code == 200 and ">y<" in listing.text and ">z<" not in listing.text
    assert client.get(f"/repository/{name}/a_/").status_code == 404
    assert client.get(f"/repository/{name}/a_").status_code == 404
    root = client.get(f"/repository/{name}/")
    assert root.status_code == 200
    assert all(f">{folder}/<" in root.text for folder in ["A", "a_b", "axb", "é"])
