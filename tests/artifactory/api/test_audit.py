"""The audit log: every change, failed sign-in and refusal is recorded, queryable and copied to a file."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from artifactory.testing.fixtures import DATABASES, live_server


@pytest.fixture(scope="module", params=DATABASES)
def live(request, tmp_path_factory):
    audit_file = tmp_path_factory.mktemp("audit-log") / "audit.jsonl"
    with live_server(request, "audit", env={"ARTIFACTORY_AUDIT_LOG": str(audit_file)}) as server:
        server.audit_file = audit_file
        yield server


def _events(live, **params):
    with live.client() as admin:
        response = admin.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_changes_failures_and_refusals_are_recorded_with_their_actor(live):
    repo = live.create_repo("raw")
    user, password = live.create_user(roles=[])
    with live.client() as admin:
        assert admin.put(f"/repository/{repo}/a.txt", content=b"a").status_code == 201
        assert admin.put("/api/v1/settings", json={"anonymous_read": True}).status_code == 200
        token = admin.post("/api/v1/tokens", json={"name": "audit-test"}).json()
        assert admin.delete(f"/api/v1/tokens/{token['id']}").status_code == 204
    assert httpx.get(f"{live.url}/api/v1/whoami", auth=(user, "wrong")).status_code == 401
    assert httpx.put(f"{live.repo_url(repo)}b.txt", content=b"b", auth=(user, password)).status_code == 403
    actions = [e["action"] for e in _events(live, limit=50)["items"]]
    for expected in (
        "repository.created",
        "user.created",
        "asset.stored",
        "settings.changed",
        "token.created",
        "token.revoked",
        "auth.failed",
        "access.denied",
    ):
        assert expected in actions, (expected, actions)
    denied = _events(live, action="access.denied", actor=user)["items"]
    assert denied and denied[0]["repository"] == repo and denied[0]["details"]["method"] == "PUT"
    failed = _events(live, action="auth.failed")["items"]
    assert failed[0]["actor"] == user and "password" not in json.dumps(failed[0]).replace(
        "invalid username or password", ""
    )
    token_events = _events(live, action="token.*")["items"]
    assert {e["action"] for e in token_events} >= {"token.created", "token.revoked"}
    assert all("token" not in e["details"] for e in token_events)  # never the secret
    # A prefix is matched as typed: exact case, and `_`/`%` are plain characters, not wildcards.
    assert _events(live, action="TOKEN.*")["items"] == []
    assert _events(live, action="token_*")["items"] == []
    assert _events(live, action="tok%.*")["items"] == []
    lines = [json.loads(line) for line in live.audit_file.read_text().splitlines()]
    assert {"repository.created", "asset.stored", "auth.failed"} <= {line["action"] for line in lines}


def test_audit_pages_with_a_cursor_filters_by_time_and_refuses_unknown_parameters(live):
    repo = live.create_repo("raw", name=f"paged-{uuid.uuid4().hex[:6]}")
    with live.client() as admin:
        for i in range(5):
            assert admin.put(f"/repository/{repo}/f{i}.txt", content=b"x").status_code == 201
    first = _events(live, repository=repo, action="asset.stored", limit=2)
    second = _events(live, repository=repo, action="asset.stored", limit=2, cursor=first["next"])
    third = _events(live, repository=repo, action="asset.stored", limit=2, cursor=second["next"])
    paths = [e["path"] for page in (first, second, third) for e in page["items"]]
    assert paths == [f"f{i}.txt" for i in range(4, -1, -1)]
    assert third["next"] is None
    assert _events(live, repository=repo, since="2999-01-01T00:00:00Z")["items"] == []
    assert len(_events(live, repository=repo, until="2999-01-01T00:00:00Z")["items"]) >= 5
    with live.client() as admin:
        assert admin.get("/api/v1/audit", params={"sha256": "x"}).status_code == 400
        assert admin.get("/api/v1/audit", params={"since": "yesterday"}).status_code == 400
        # Digits that are not 0-9: "²" passes str.isdigit() and fails int(), "٣" is read as 3.
        for odd in ("²", "٣", "①"):
            assert admin.get("/api/v1/audit", params={"cursor": odd}).status_code == 400
            assert admin.get("/api/v1/audit", params={"limit": odd}).status_code == 400
    user = live.create_user(roles=[])
    assert httpx.get(f"{live.url}/api/v1/audit", auth=user).status_code == 403
