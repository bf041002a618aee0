"""GET /api/v1/search over HTTP, on SQLite and PostgreSQL: every criterion, cursor paging, strict
parameters, and only what the caller may read."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import httpx
import pytest

from tests.artifactory.ui.conftest import api, create_repo, create_user


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stocked(any_server):
    """Two raw repositories with known files, and a group over both."""
    first, second = create_repo(any_server, "raw"), create_repo(any_server, "raw")
    group = create_repo(any_server, "raw", "group", members=[first, second])
    marker = uuid.uuid4().hex[:10]
    files = {
        (first, f"{marker}/alpha-tool.tar.gz"): b"alpha",
        (first, f"{marker}/beta-tool.tar.gz"): b"beta",
        (second, f"{marker}/alpha-lib.zip"): b"alpha-lib",
        (second, f"{marker}/gamma.txt"): b"gamma",
    }
    with api(any_server) as admin:
        for (repo, path), body in files.items():
            assert admin.put(f"/repository/{repo}/{path}", content=body).status_code == 201
    return {"first": first, "second": second, "group": group, "marker": marker, "files": files}


def search(server, **params):
    with api(server) as client:
        return client.get("/api/v1/search", params=params)


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


def test_name_substring_ignores_case_and_a_star_makes_a_prefix_glob(any_server, stocked):
    m = stocked["marker"]
    assert names(search(any_server, q=f"{m}/ALPHA")) == [f"{m}/alpha-lib.zip", f"{m}/alpha-tool.tar.gz"]
    assert names(search(any_server, q="TOOL", repository=stocked["first"])) == [
        f"{m}/alpha-tool.tar.gz",
        f"{m}/beta-tool.tar.gz",
    ]
    assert names(search(any_server, q=f"{m}/b*")) == [f"{m}/beta-tool.tar.gz"]
    assert names(search(any_server, q=f"*{m}/g*.txt")) == [f"{m}/gamma.txt"]
    assert names(search(any_server, q=f"{m}/a*zip")) == [f"{m}/alpha-lib.zip"]
    # LIKE's own wildcards are plain characters in a query
    assert names(search(any_server, q=f"{m}/%")) == [] and names(search(any_server, q=f"{m}_")) == []


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5"])
def test_any_checksum_of_any_asset_finds_its_component(any_server, stocked, algorithm):
    digest = hashlib.new(algorithm, b"beta").hexdigest()
    response = search(any_server, **{algorithm: digest.upper()})
    assert names(response) == [f"{stocked['marker']}/beta-tool.tar.gz"]
    asset = response.json()["items"][0]["assets"][0]
    assert asset[algorithm] == digest and asset["size"] == 4
    assert names(search(any_server, **{algorithm: hashlib.new(algorithm, b"nothing").hexdigest()})) == []


def test_format_repository_and_version_narrow_the_search(any_server, stocked):
    m = stocked["marker"]
    assert len(names(search(any_server, q=m, format="raw"))) == 4
    assert names(search(any_server, q=m, format="npm")) == []
    assert names(search(any_server, q=m, repository=stocked["second"])) == [
        f"{m}/alpha-lib.zip",
        f"{m}/gamma.txt",
    ]
    items = search(any_server, q=m, repository=stocked["group"]).json()["items"]
    assert sorted((i["repository"], i["name"]) for i in items) == sorted((r, p) for r, p in stocked["files"])
    assert names(search(any_server, q=m, version="1.0")) == []
    assert len(names(search(any_server, q=m, version=""))) == 4
    assert names(search(any_server, q=m, repository="no-such-repository")) == []


def test_cursor_pages_through_every_match_once(any_server, stocked):
    m = stocked["marker"]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"q": m, "limit": "1"}
        if cursor:
            params["cursor"] = cursor
        body = search(any_server, **params).json()
        seen += [item["name"] for item in body["items"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == sorted(p for _, p in stocked["files"]) and pages == 4
    assert search(any_server, q=m, limit="10").json()["next"] is None


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"sha265": "ab"}, "unknown search parameter 'sha265'"),
        ({"name": "x"}, "unknown search parameter 'name'"),
        ({"sha256": "xyz"}, "sha256 must be 64 hexadecimal digits"),
        ({"md5": "0" * 31}, "md5 must be 32"),
        ({"limit": "many"}, "limit must be an integer"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"q": "x" * 300}, "longer than"),
    ],
)
def test_bad_parameters_answer_400_naming_the_problem(any_server, params, fragment):
    response = search(any_server, **params)
    assert response.status_code == 400 and fragment in response.json()["error"], response.text


def test_a_repeated_parameter_answers_400(any_server):
    with api(any_server) as client:
        response = client.get("/api/v1/search?q=a&q=b")
    assert response.status_code == 400 and "more than once" in response.json()["error"]


def test_only_readable_repositories_are_searched_and_a_full_page_is_never_cut_by_them(any_server):
    hidden = create_repo(any_server, "raw", name=unique("hidden"))
    shown = create_repo(any_server, "raw", name=unique("shown"))
    marker = uuid.uuid4().hex[:10]
    with api(any_server) as admin:
        for i in range(5):
            admin.put(f"/repository/{hidden}/{marker}-{i}.txt", content=b"h%d" % i)
        admin.put(f"/repository/{shown}/{marker}-z.txt", content=b"shown")
        role = unique("only-shown")
        admin.post(
            "/api/v1/roles", json={"name": role, "privileges": [{"repositories": shown, "actions": ["read"]}]}
        )
        assert admin.put("/api/v1/settings", json={"anonymous_read": False}).status_code == 200
    try:
        user, password = create_user(any_server, [role])
        with any_server.client(auth=(user, password)) as client:
            body = client.get("/api/v1/search", params={"q": marker, "limit": "2"}).json()
            assert [i["name"] for i in body["items"]] == [f"{marker}-z.txt"] and body["next"] is None
            sha = hashlib.sha256(b"h1").hexdigest()
            assert client.get("/api/v1/search", params={"sha256": sha}).json()["items"] == []
            assert client.get("/api/v1/search", params={"repository": hidden}).json()["items"] == []
        with any_server.client(auth=None) as anonymous:
            assert anonymous.get("/api/v1/search", params={"q": marker}).json()["items"] == []
        assert len(names(search(any_server, q=marker))) == 6
    finally:
        with api(any_server) as admin:
            admin.put("/api/v1/settings", json={"anonymous_read": True})


def test_a_token_scoped_to_a_group_searches_what_it_reads_through_the_group(any_server, stocked):
    """The group walk is the engine's: a token scoped to the group finds its members' components,
    as a GET through the group would read them, and nothing outside the group."""
    m = stocked["marker"]
    with api(any_server) as admin:
        created = admin.post(
            "/api/v1/tokens",
            json={"name": "group-only", "scope": {"repositories": stocked["group"], "actions": ["read"]}},
        )
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['token']}"}
    with httpx.Client(base_url=any_server.url, headers=headers, timeout=30) as scoped:
        through = scoped.get("/api/v1/search", params={"q": m, "repository": stocked["group"]})
        assert through.status_code == 200, through.text
        assert len(through.json()["items"]) == 4
        # Named directly, a member is outside the token's scope; so is a search of everything.
        for params in ({"q": m, "repository": stocked["first"]}, {"q": m}):
            assert scoped.get("/api/v1/search", params=params).json()["items"] == []


def test_cursors_beyond_any_row_id_end_the_paging_instead_of_failing_the_query(any_server):
    """An id a client hands back is bound against an Integer column: past PostgreSQL's int4 range the
    query failed (a 500, found by the API fuzzer for the audit log's cursor)."""
    with api(any_server) as client:
        audit = client.get("/api/v1/audit", params={"cursor": "2200000000"})
        assert audit.status_code == 200, audit.text
        huge = base64.urlsafe_b64encode(json.dumps(["zzz", 2**40]).encode()).decode().rstrip("=")
        found = client.get("/api/v1/search", params={"q": "x", "cursor": huge})
        assert found.status_code == 200, found.text
