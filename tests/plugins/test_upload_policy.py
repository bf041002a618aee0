"""The upload_policy example plugin, loaded through ARTIFACTORY_PLUGINS into a real server."""

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactory.testing.server import LiveServer
from artifactory.testing.stored import stored

PLUGIN = "artifactory_plugins.upload_policy.plugin"
MAX_BYTES = 1024


class PolicyServer(LiveServer):
    event_log: Path


@pytest.fixture(scope="module")
def policy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyServer]:
    root = tmp_path_factory.mktemp("upload-policy")
    live = PolicyServer(
        root / "data",
        env={
            "ARTIFACTORY_PLUGINS": PLUGIN,
            "ARTIFACTORY_UPLOAD_POLICY_DENY": "*.exe, *.sh",
            "ARTIFACTORY_UPLOAD_POLICY_MAX_BYTES": str(MAX_BYTES),
            "ARTIFACTORY_UPLOAD_POLICY_EVENT_LOG": str(root / "events.jsonl"),
        },
    )
    live.event_log = root / "events.jsonl"
    live.start()
    try:
        yield live
    finally:
        live.stop()


def unique_bytes(size: int = 100) -> bytes:
    seed = uuid.uuid4().bytes
    return (seed * (size // len(seed) + 1))[:size]


def stored_objects(server: LiveServer) -> set[Path]:
    return {p for p in (server.data_dir / "blobs" / "objects").rglob("*") if p.is_file()}


def temp_objects(server: LiveServer) -> set[Path]:
    return set((server.data_dir / "blobs" / "tmp").iterdir())


def events(server: PolicyServer, **match: str) -> list[dict]:
    if not server.event_log.exists():
        return []
    records = [json.loads(line) for line in server.event_log.read_text().splitlines()]
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def assert_refused_and_nothing_stored(
    server: PolicyServer, repo: str, path: str, data: bytes, why: str
) -> None:
    objects_before, temps_before = stored_objects(server), temp_objects(server)
    with server.client() as admin:
        put = admin.put(f"/repository/{repo}/{path}", content=data)
        assert put.status_code == 400, put.text
        assert "upload policy" in put.json()["error"]
        assert why in put.json()["error"]
        assert admin.get(f"/repository/{repo}/{path}").status_code == 404
    assert not stored(server, data)  # neither a file nor a row keeping the bytes
    assert stored_objects(server) == objects_before
    assert temp_objects(server) == temps_before
    assert events(server, event="asset.stored", repository=repo, path=path) == []


@pytest.mark.parametrize("path", ["tools/setup.exe", "install.sh", "deep/dir/SETUP.EXE"])
def test_denied_path_answers_400_with_the_pattern_and_stores_nothing(policy_server, path):
    repo = policy_server.create_repo("raw")
    assert_refused_and_nothing_stored(policy_server, repo, path, unique_bytes(), "denied pattern")


def test_allowed_path_is_stored_and_served(policy_server):
    repo = policy_server.create_repo("raw")
    data = unique_bytes()
    with policy_server.client() as admin:
        put = admin.put(f"/repository/{repo}/tools/setup.exe.txt", content=data)
        assert put.status_code == 201, put.text
        got = admin.get(f"/repository/{repo}/tools/setup.exe.txt")
    assert got.status_code == 200
    assert got.content == data
    assert stored(policy_server, data)


def test_upload_over_max_bytes_is_refused_and_one_at_the_limit_is_stored(policy_server):
    repo = policy_server.create_repo("raw")
    assert_refused_and_nothing_stored(
        policy_server, repo, "big.bin", unique_bytes(MAX_BYTES + 1), f"limit of {MAX_BYTES} bytes"
    )
    at_limit = unique_bytes(MAX_BYTES)
    with policy_server.client() as admin:
        assert admin.put(f"/repository/{repo}/big.bin", content=at_limit).status_code == 201
        assert admin.get(f"/repository/{repo}/big.bin").content == at_limit


def test_events_are_logged_with_their_fields_once_each_change_has_committed(policy_server):
    repo = policy_server.create_repo("raw")
    data = unique_bytes()
    digest = hashlib.sha256(data).hexdigest()
    created = events(policy_server, event="repository.created", name=repo)
    assert [{k: e[k] for k in ("name", "format", "type", "actor")} for e in created] == [
        {"name": repo, "format": "raw", "type": "hosted", "actor": "admin"}
    ]
    with policy_server.client() as admin:
        assert admin.put(f"/repository/{repo}/a/file.txt", content=data).status_code == 201
        stored = events(policy_server, event="asset.stored", repository=repo)
        assert len(stored) == 1
        assert {k: stored[0][k] for k in ("repository", "format", "path", "sha256", "size", "actor")} == {
            "repository": repo,
            "format": "raw",
            "path": "a/file.txt",
            "sha256": digest,
            "size": len(data),
            "actor": "admin",
        }
        assert admin.delete(f"/repository/{repo}/a/file.txt").status_code == 204
        deleted = events(policy_server, event="asset.deleted", repository=repo)
        assert [(e["path"], e["sha256"], e["size"], e["actor"]) for e in deleted] == [
            ("a/file.txt", digest, len(data), "admin")
        ]
        assert admin.delete(f"/api/v1/repositories/{repo}").status_code == 204
    gone = events(policy_server, event="repository.deleted", name=repo)
    assert [(e["format"], e["type"], e["actor"]) for e in gone] == [("raw", "hosted", "admin")]
    mine = [e for e in events(policy_server) if repo in (e.get("name"), e.get("repository"))]
    assert [e["event"] for e in mine] == [
        "repository.created",
        "asset.stored",
        "asset.deleted",
        "repository.deleted",
    ]
    assert all(e["time"] for e in mine)


def test_a_malformed_size_limit_stops_the_server_from_starting(tmp_path):
    live = LiveServer(
        tmp_path / "data",
        env={"ARTIFACTORY_PLUGINS": PLUGIN, "ARTIFACTORY_UPLOAD_POLICY_MAX_BYTES": "ten"},
    )
    with pytest.raises(RuntimeError, match="ARTIFACTORY_UPLOAD_POLICY_MAX_BYTES"):
        live.start(timeout=20)
    live.stop()
