"""/metrics, the access log and request ids, against a real server with two worker processes."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
import pytest

from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import ADMIN_PASSWORD

ADMIN = ("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module", params=DATABASES)
def live(request):
    with live_server(request, "metrics", workers=2, env={"ARTIFACTORY_ACCESS_LOG": "json"}) as server:
        yield server


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_requests_from_every_worker_are_counted_by_repository_method_and_status(live):
    repo = live.create_repo("raw")
    with live.client() as admin:
        for i in range(20):
            assert admin.put(f"/repository/{repo}/f{i}.bin", content=b"x" * 1000).status_code == 201
            assert admin.get(f"/repository/{repo}/f{i}.bin").status_code == 200
        text = admin.get("/metrics").text
    assert _value(text, "artifactory_http_requests_total", repository=repo, method="PUT", status="201") == 20
    assert _value(text, "artifactory_http_requests_total", repository=repo, method="GET", status="200") == 20
    assert _value(text, "artifactory_upload_bytes_total", repository=repo) == 20_000
    assert (
        _value(text, "artifactory_http_request_duration_seconds_count", repository=repo, method="GET") == 20
    )
    assert _value(text, "artifactory_blob_store_objects") >= 1
    assert _value(text, "artifactory_blob_store_bytes") >= 1000


def test_metric_labels_never_carry_paths_or_unknown_names(live):
    marker = uuid.uuid4().hex
    for path in (
        f"/repository/{marker}/x",
        f"/v2/{marker}/manifests/latest",
        f"/{marker}",
        f"/api/v1/{marker}",
    ):
        httpx.request("BREW" if path.startswith("/api") else "GET", f"{live.url}{path}")
    text = httpx.get(f"{live.url}/metrics", auth=ADMIN).text
    assert marker not in text
    assert 'method="BREW"' not in text


def test_metrics_need_an_admin_unless_made_public(live):
    assert httpx.get(f"{live.url}/metrics").status_code == 401
    user = live.create_user(roles=[])
    assert httpx.get(f"{live.url}/metrics", auth=user).status_code == 403
    response = httpx.get(f"{live.url}/metrics", auth=ADMIN)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")


def test_request_ids_are_echoed_or_made_and_every_request_is_logged_as_json(live):
    mine = httpx.get(f"{live.url}/api/v1/status", headers={"X-Request-Id": "trace-123"})
    assert mine.headers["x-request-id"] == "trace-123"
    made = httpx.get(f"{live.url}/api/v1/status", headers={"X-Request-Id": "bad id\twith junk"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    # The access line is written once the answer is sent: wait for it rather than read at once.
    deadline, entry = time.monotonic() + 10, None
    while entry is None and time.monotonic() < deadline:
        lines = [json.loads(line) for line in live.log().splitlines() if line.startswith("{")]
        entry = next((line for line in lines if line["request_id"] == "trace-123"), None)
        time.sleep(0.05)
    assert entry is not None, live.log()
    assert entry["path"] == "/api/v1/status" and entry["status"] == 200 and entry["method"] == "GET"
