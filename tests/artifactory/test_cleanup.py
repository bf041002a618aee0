"""Cleanup policies against a real server and the real CLI, on SQLite and PostgreSQL: each format's
version order, what is protected, the age rules, the allow-list, exact dry runs, the allow_empty
guard and the scheduled run taken by one worker of two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from artifactory.testing.cli import run_cli
from artifactory.testing.fixtures import drop_schema, new_schema
from artifactory.testing.server import LiveServer
from tests.formats.maven.support import jar_bytes, pom_xml
from tests.formats.npm.helpers import escaped, publish_document
from tests.formats.oci.images import image, push
from tests.formats.pypi.conftest import post_upload
from tests.formats.pypi.dists import wheel_bytes, wheel_name

POLICIES = "/api/v1/cleanup-policies"


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def admin(any_server: LiveServer):
    with any_server.client() as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def policy(admin: httpx.Client, **body: Any) -> str:
    name = unique("p")
    response = admin.put(f"{POLICIES}/{name}", json=body)
    assert response.status_code == 201, response.text
    return name


def repo_with(server: LiveServer, fmt: str, policies: list[str], **config: Any) -> str:
    return server.create_repo(fmt, name=unique(fmt), cleanup_policies=policies, **config)


def database_url(server: LiveServer) -> str:
    return server.database_url or f"sqlite:///{(server.data_dir / 'artifactory.db').resolve()}"


def sql(server: LiveServer, statement: str, **params: Any) -> None:
    engine = create_engine(database_url(server))
    try:
        with engine.begin() as connection:
            connection.execute(text(statement), params)
    finally:
        engine.dispose()


def age(server: LiveServer, repo: str, days: float, version: str | None = None) -> None:
    """Make a repository's components (or one version's) look `days` old and never downloaded."""
    when = datetime.now(UTC) - timedelta(days=days)
    if server.database_url == "":
        when = when.replace(tzinfo=None)
    where = "repository_id = (SELECT id FROM repository WHERE name = :repo)"
    if version is not None:
        where += " AND version = :version"
    sql(
        server,
        f"UPDATE component SET created_at = :when WHERE {where}",
        repo=repo,
        when=when,
        version=version,
    )
    sql(
        server,
        f"UPDATE asset SET created_at = :when, updated_at = :when, last_downloaded = NULL "
        f"WHERE component_id IN (SELECT id FROM component WHERE {where})",
        repo=repo,
        when=when,
        version=version,
    )


def downloaded_now(server: LiveServer, repo: str, version: str) -> None:
    now = datetime.now(UTC)
    if server.database_url == "":
        now = now.replace(tzinfo=None)
    sql(
        server,
        "UPDATE asset SET last_downloaded = :now, download_count = 1 WHERE component_id IN "
        "(SELECT id FROM component WHERE version = :version AND "
        "repository_id = (SELECT id FROM repository WHERE name = :repo))",
        repo=repo,
        version=version,
        now=now,
    )


def cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`artifactory cleanup` as an operator runs it: a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
    if server.database_url:
        env["ARTIFACTORY_DATABASE_URL"] = server.database_url
    return subprocess.run(
        [sys.executable, "-m", "artifactory", "cleanup", "--data-dir", str(server.data_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_in_process(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command run in this process (no 1.5 s of imports): for what a policy removes."""
    result = run_cli("cleanup", "--data-dir", str(server.data_dir), *args, database_url=server.database_url)
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def cleanup(
    server: LiveServer,
    repo: str,
    *args: str,
    run: Callable[..., subprocess.CompletedProcess[str]] = cli_in_process,
) -> dict[str, Any]:
    result = run(server, "--repository", repo, "--json", *args)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def versions(report: dict[str, Any]) -> set[str]:
    return {r["version"] for r in report["removals"]}


def search(admin: httpx.Client, repo: str) -> dict[str, dict[str, int]]:
    """version -> {path: size} of everything the repository holds."""
    found: dict[str, dict[str, int]] = {}
    for item in admin.get("/api/v1/search", params={"repository": repo, "limit": 1000}).json()["items"]:
        found.setdefault(item["version"], {}).update({a["path"]: a["size"] for a in item["assets"]})
    return found


def upload_wheel(server: LiveServer, repo: str, name: str, version: str) -> None:
    response = post_upload(server, repo, wheel_name(name, version), wheel_bytes(name, version))
    assert response.status_code == 200, response.text


# -- the admin API -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "at least one rule"),
        ({"keep_newest": -1}, "keep_newest"),
        ({"keep_newest": "3"}, "keep_newest"),
        ({"keep_newest": 2, "colour": "red"}, "unknown policy fields: colour"),
        ({"not_downloaded_days": "soon"}, "not_downloaded_days"),
        ({"keep_newest": 1, "allow": "x*"}, "allow must be a list"),
        ({"keep_newest": 1, "allow_empty": "yes"}, "allow_empty"),
        ({"keep_newest": 1, "name": "other"}, "names policy 'other'"),
        ([1, 2], "JSON object"),
    ],
)
def test_a_bad_policy_is_refused_with_400_naming_the_field(any_server, admin, body, fragment):
    response = admin.put(f"{POLICIES}/{unique('bad')}", json=body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_policies_are_admin_only_listed_with_their_repositories_and_kept_while_attached(any_server, admin):
    name = policy(admin, keep_newest=3, allow=["internal-*"], description="three")
    again = admin.put(f"{POLICIES}/{name}", json={"keep_newest": 2})
    assert again.status_code == 200 and again.json()["keep_newest"] == 2
    repo = repo_with(any_server, "raw", [name])
    listed = {p["name"]: p for p in admin.get(POLICIES).json()}
    assert listed[name]["repositories"] == [repo] and listed[name]["keep_newest"] == 2
    user = any_server.create_user([])
    with any_server.client(auth=user) as someone, any_server.client(auth=None) as anonymous:
        assert someone.get(POLICIES).status_code == 403
        assert someone.put(f"{POLICIES}/x", json={"keep_newest": 1}).status_code == 403
        assert anonymous.get(POLICIES).status_code == 401
    refused = admin.delete(f"{POLICIES}/{name}")
    assert refused.status_code == 409 and repo in refused.json()["error"]
    assert (
        admin.put(f"/api/v1/repositories/{repo}", json={"format": "raw", "type": "hosted"}).status_code == 200
    )
    assert admin.delete(f"{POLICIES}/{name}").status_code == 204
    assert admin.delete(f"{POLICIES}/{name}").status_code == 404
    assert admin.post(f"{POLICIES}/{name}/preview").status_code == 404
    bad = admin.post(
        "/api/v1/repositories",
        json={"name": unique("r"), "format": "raw", "type": "hosted", "cleanup_policies": "p"},
    )
    assert bad.status_code == 400 and "cleanup_policies" in bad.json()["error"]


# -- each format's order, and what stays -----------------------------------------------------------
def test_pypi_keeps_the_newest_by_pep440_and_the_dry_run_names_every_file_and_byte(any_server, admin):
    keep = policy(admin, keep_newest=1)
    repo = repo_with(any_server, "pypi", [keep])
    for version in ("1.2", "1.9", "1.10"):
        upload_wheel(any_server, repo, "demo", version)
    stored = search(admin, repo)
    preview = admin.post(f"{POLICIES}/{keep}/preview", params={"repository": repo})
    assert preview.status_code == 200, preview.text
    plan = preview.json()
    assert versions(plan) == {"1.2", "1.9"}  # 1.10 is the newest by PEP 440, not by text
    for removal in plan["removals"]:
        assert {p: stored[removal["version"]][p] for p in removal["assets"]} == stored[removal["version"]]
        assert removal["bytes"] == sum(stored[removal["version"]].values())
    assert plan["bytes"] == sum(r["bytes"] for r in plan["removals"]) > 0
    dry = cleanup(any_server, repo, "--dry-run")
    assert dry["removals"] == plan["removals"] and search(admin, repo) == stored  # a dry run changes nothing

    metadata = f"/repository/{repo}/packages/demo/{wheel_name('demo', '1.9')}.metadata"
    assert admin.get(metadata).status_code == 200
    done = cleanup(any_server, repo, run=cli)  # the real command: its --json report and audit record
    assert versions(done) == {"1.2", "1.9"} and done["gc"] is not None
    assert done["deleted_assets"] == done["assets"] == 2  # the wheels (their .metadata go with them)
    assert "deleted_assets" not in dry
    assert set(search(admin, repo)) == {"1.10"}
    page = admin.get(
        f"/repository/{repo}/simple/demo/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert [f["filename"] for f in page.json()["files"]] == [wheel_name("demo", "1.10")]
    gone = admin.get(f"/repository/{repo}/packages/demo/{wheel_name('demo', '1.9')}")
    assert gone.status_code == 404
    assert admin.get(metadata).status_code == 404  # gone with its file
    runs = admin.get("/api/v1/audit", params={"action": "cleanup.run"}).json()["items"]
    assert runs and runs[0]["details"]["versions"] == 2 and runs[0]["details"]["trigger"] == "cli"


def test_npm_orders_by_semver_and_never_removes_a_dist_tagged_version(any_server, admin):
    keep = policy(admin, keep_newest=1)
    repo = repo_with(any_server, "npm", [keep])
    name = "@team/lib"
    for version, tags in (("0.9.0", None), ("1.0.0", {}), ("1.0.0-rc.1", {}), ("0.5.0", {"stable": "0.5.0"})):
        response = admin.put(
            f"/repository/{repo}/{escaped(name)}", json=publish_document(name, version, tags=tags)
        )
        assert response.status_code == 201, response.text
    # newest first by semver: 1.0.0, 1.0.0-rc.1, 0.9.0 (latest), 0.5.0 (stable)
    assert versions(cleanup(any_server, repo, "--dry-run")) == {"1.0.0-rc.1"}
    assert versions(cleanup(any_server, repo)) == {"1.0.0-rc.1"}
    doc = admin.get(f"/repository/{repo}/{escaped(name)}").json()
    assert set(doc["versions"]) == {"0.5.0", "0.9.0", "1.0.0"}
    assert doc["dist-tags"] == {"latest": "0.9.0", "stable": "0.5.0"}
    assert admin.get(f"/repository/{repo}/{name}/-/lib-1.0.0-rc.1.tgz").status_code == 404
    assert admin.get(f"/repository/{repo}/{name}/-/lib-0.5.0.tgz").status_code == 200


def test_an_npm_proxy_keeps_the_versions_its_cached_packument_tags(any_server, admin):
    """A proxy's packument is the engine's cached copy of the upstream's: its dist-tags protect the
    tarballs cached of those versions as a hosted package document's do."""
    upstream = any_server.create_repo("npm", name=unique("npm-upstream"))
    name = "tagged"
    for version, tags in (
        ("1.0.0", None),
        ("0.9.0", {}),
        ("0.5.0", {"stable": "0.5.0"}),
        ("2.0.0-rc.1", {"next": "2.0.0-rc.1"}),
    ):
        response = admin.put(
            f"/repository/{upstream}/{name}", json=publish_document(name, version, tags=tags)
        )
        assert response.status_code == 201, response.text
    keep = policy(admin, keep_newest=1)
    proxy = any_server.create_repo(
        "npm", "proxy", name=unique("npm-proxy"), url=any_server.repo_url(upstream), cleanup_policies=[keep]
    )
    doc = admin.get(f"/repository/{proxy}/{name}").json()
    assert doc["dist-tags"] == {"latest": "1.0.0", "stable": "0.5.0", "next": "2.0.0-rc.1"}
    for version in doc["versions"]:
        assert admin.get(f"/repository/{proxy}/{name}/-/{name}-{version}.tgz").status_code == 200
    # A proxy answers a cold miss once the bytes are verified and records the cached asset just
    # after: wait for the four rows before cleaning up.
    cached, deadline = {"1.0.0", "0.9.0", "0.5.0", "2.0.0-rc.1"}, time.monotonic() + 10
    while set(search(admin, proxy)) != cached and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(search(admin, proxy)) == cached
    # newest first: 2.0.0-rc.1 (next), 1.0.0 (latest), 0.9.0, 0.5.0 (stable): only 0.9.0 goes
    assert versions(cleanup(any_server, proxy)) == {"0.9.0"}
    assert set(search(admin, proxy)) == {"1.0.0", "0.5.0", "2.0.0-rc.1"}


def test_maven_orders_snapshots_before_their_release_and_keeps_latest_and_release(any_server, admin):
    keep = policy(admin, keep_newest=1)
    repo = repo_with(any_server, "maven", [keep], version_policy="mixed")
    base = "com/acme/tool"
    for version in ("0.9", "1.0-SNAPSHOT", "1.0"):
        for filename, data in (
            (f"tool-{version}.pom", pom_xml("com.acme", "tool", version)),
            (f"tool-{version}.jar", jar_bytes({"a.txt": version.encode()})),
        ):
            response = admin.put(f"/repository/{repo}/{base}/{version}/{filename}", content=data)
            assert response.status_code == 201, response.text
    report = cleanup(any_server, repo)
    assert versions(report) == {"0.9", "1.0-SNAPSHOT"}  # 1.0-SNAPSHOT < 1.0 in Maven's order
    metadata = admin.get(f"/repository/{repo}/{base}/maven-metadata.xml").text
    assert "<version>1.0</version>" in metadata and "SNAPSHOT" not in metadata and "0.9" not in metadata
    assert admin.get(f"/repository/{repo}/{base}/0.9/tool-0.9.jar").status_code == 404


def test_oci_keeps_the_newest_tags_by_push_time_and_latest(any_server, admin):
    keep = policy(admin, keep_newest=2)
    repo = repo_with(any_server, "oci", [keep])
    name = f"{repo}/app"
    pushed = {}
    for tag in ("v3", "v1", "v2", "latest"):  # pushed in this order: v3 is the oldest push
        img = image(f"{repo}-{tag}")
        assert push(admin, name, tag, img).status_code == 201
        pushed[tag] = img.digest
        time.sleep(0.02)
    report = cleanup(any_server, repo, "--no-gc")
    assert versions(report) == {"v1", "v3"}
    tags = admin.get(f"/v2/{name}/tags/list").json()["tags"]
    assert sorted(tags) == ["latest", "v2"]
    assert admin.get(f"/v2/{name}/manifests/v3").status_code == 404
    # Only the tag went: the manifest stays by digest until nothing references it and oci gc runs.
    assert admin.get(f"/v2/{name}/manifests/{pushed['v3']}").status_code == 200


# -- the age rules, the allow-list, allow_empty ------------------------------------------------------
def test_prereleases_go_only_once_older_than_the_rule(any_server, admin):
    rule = policy(admin, prerelease_older_than_days=10)
    repo = repo_with(any_server, "pypi", [rule])
    for version in ("2.0", "2.1rc1", "2.2rc1"):
        upload_wheel(any_server, repo, "pre", version)
    age(any_server, repo, 30, "2.0")
    age(any_server, repo, 30, "2.1rc1")
    assert versions(cleanup(any_server, repo)) == {"2.1rc1"}  # 2.0 is no prerelease; 2.2rc1 is new
    assert set(search(admin, repo)) == {"2.0", "2.2rc1"}


def test_versions_not_downloaded_for_days_go_and_a_recent_download_keeps_one(any_server, admin):
    rule = policy(admin, not_downloaded_days=30)
    repo = repo_with(any_server, "pypi", [rule])
    for version in ("3.0", "3.1", "3.2"):
        upload_wheel(any_server, repo, "idle", version)
    age(any_server, repo, 40, "3.0")
    age(any_server, repo, 40, "3.1")
    downloaded_now(any_server, repo, "3.0")
    assert versions(cleanup(any_server, repo)) == {"3.1"}


def test_allow_listed_names_are_never_touched(any_server, admin):
    rule = policy(admin, keep_newest=1, allow=["keep-*"])
    repo = repo_with(any_server, "pypi", [rule])
    for project in ("keep-me", "drop-me"):
        for version in ("1.0", "2.0"):
            upload_wheel(any_server, repo, project, version)
    report = cleanup(any_server, repo)
    assert {(r["name"], r["version"]) for r in report["removals"]} == {("drop-me", "1.0")}
    assert len(admin.get("/api/v1/search", params={"repository": repo, "q": "keep-me"}).json()["items"]) == 2


def test_a_policy_that_would_remove_every_version_keeps_the_newest_without_allow_empty(any_server, admin):
    strict = policy(admin, not_downloaded_days=1)
    loose = policy(admin, not_downloaded_days=1, allow_empty=True)
    repo = repo_with(any_server, "raw", [strict])
    for path in ("a/one.txt", "b/two.txt"):
        assert admin.put(f"/repository/{repo}/{path}", content=b"data " + path.encode()).status_code == 201
    age(any_server, repo, 5)
    refused = cleanup(any_server, repo)
    assert refused["removals"] == [] and {k["name"] for k in refused["kept"]} == {"a/one.txt", "b/two.txt"}
    # HEAD, not GET: a GET is a download, which would (rightly) save the file from the rule
    assert admin.head(f"/repository/{repo}/a/one.txt").status_code == 200
    assert (
        admin.put(
            f"/api/v1/repositories/{repo}",
            json={"format": "raw", "type": "hosted", "cleanup_policies": [loose]},
        ).status_code
        == 200
    )
    allowed = cleanup(any_server, repo)
    assert {r["name"] for r in allowed["removals"]} == {"a/one.txt", "b/two.txt"}
    assert allowed["bytes"] == len(b"data a/one.txt") + len(b"data b/two.txt")
    assert admin.get(f"/repository/{repo}/a/one.txt").status_code == 404


def test_cli_reports_an_unknown_repository_and_prints_plain_lines(any_server, admin):
    result = cli(any_server, "--repository", "no-such-repo")
    assert result.returncode == 1 and "no-such-repo" in result.stderr
    rule = policy(admin, keep_newest=1)
    repo = repo_with(any_server, "pypi", [rule])
    for version in ("1.0", "1.1"):
        upload_wheel(any_server, repo, "plain", version)
    result = cli(any_server, "--repository", repo, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would remove {repo} plain 1.0" in result.stdout and "would remove 1 versions" in result.stdout


# -- the schedule --------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def two_workers(request, tmp_path):
    url, schema, base = "", "", ""
    if request.param == "postgresql":
        base = request.getfixturevalue("pg_base_url")
        schema, url = new_schema(base)
    live = LiveServer(tmp_path / "data", database_url=url, workers=2)
    try:
        yield live
    finally:
        live.stop()
        if schema:
            drop_schema(base, schema)


def test_the_scheduled_run_executes_once_across_two_worker_processes(two_workers):
    live = two_workers
    live.workers = 1  # filling the repository needs one process (two more to start cost ~3 CPU-s)
    live.start()
    with live.client() as admin:
        rule = policy(admin, keep_newest=1)
        repo = repo_with(live, "pypi", [rule])
        for version in ("1.0", "1.1", "1.2"):
            upload_wheel(live, repo, "sched", version)
    live.workers = 2  # the run under test: two workers that both check the schedule
    live.extra_env["ARTIFACTORY_CLEANUP_INTERVAL_SECONDS"] = "3600"
    live.restart()
    with live.client() as admin:
        deadline = time.monotonic() + 30
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not runs:
            runs = admin.get("/api/v1/audit", params={"action": "cleanup.run"}).json()["items"]
            time.sleep(0.3)
        assert runs, live.log()
        time.sleep(3)  # both workers have checked the schedule by now (each checks at start)
        runs = admin.get("/api/v1/audit", params={"action": "cleanup.run"}).json()["items"]
        assert len(runs) == 1, runs
        assert runs[0]["details"]["trigger"] == "schedule" and runs[0]["details"]["versions"] == 2
        assert set(search(admin, repo)) == {"1.2"}
