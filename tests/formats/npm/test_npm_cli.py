"""The real npm (v11) against a hosted repository: every command a user runs, end to end.

Each npm has its own HOME, user config and cache, and is given `--registry` explicitly, so nothing
ever reaches a public registry.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import httpx
import pexpect
import pytest

from tests.formats.npm.helpers import Npm, package_folder, publish_document

PASSWORD = "s3cret-password"


@pytest.fixture(scope="module")
def repo(server):
    return server.create_repo("npm", allow_user_registration=False)


@pytest.fixture(scope="module")
def publisher_account(server, repo):
    with server.client() as admin:
        role = {
            "name": f"publish-{repo}",
            "privileges": [{"repositories": repo, "actions": ["read", "write", "delete"]}],
        }
        assert admin.post("/api/v1/roles", json=role).status_code in (200, 201)
    return server.create_user([f"publish-{repo}"], password=PASSWORD)


@pytest.fixture(scope="module")
def token(server, publisher_account):
    with server.client(auth=publisher_account) as client:
        return client.post("/api/v1/tokens", json={"name": "tests"}).json()["token"]


@pytest.fixture(scope="module")
def npm(server, repo, token, tmp_path_factory) -> Npm:
    return Npm(tmp_path_factory.mktemp("npm-publisher"), server.repo_url(repo), token)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sources")


@pytest.fixture(scope="module")
def published(npm, sources):
    """An unscoped library and a scoped package that depends on it, published with npm."""
    alpha = package_folder(
        sources, "alpha-lib", "1.0.0", description="the alpha library", keywords=["alpha", "demo"]
    )
    (alpha / "index.js").write_text('module.exports = "alpha";\n')
    beta = package_folder(
        sources,
        "@acme/beta",
        "2.0.0",
        description="beta builds on alpha",
        dependencies={"alpha-lib": "^1.0.0"},
    )
    (beta / "index.js").write_text('module.exports = require("alpha-lib") + "+beta";\n')
    assert "+ alpha-lib@1.0.0" in npm.run("publish", cwd=alpha).stdout
    assert "+ @acme/beta@2.0.0" in npm.run("publish", cwd=beta).stdout
    return alpha, beta


def put_package(server, repo, token, name, version, **kwargs):
    """Publish over HTTP exactly as npm does (quicker than npm itself, for tests about other commands)."""
    headers = {"Authorization": f"Bearer {token}"}
    url = server.repo_url(repo) + name.replace("/", "%2f")
    response = httpx.put(url, json=publish_document(name, version, **kwargs), headers=headers)
    assert response.status_code == 201, response.text


def answer_prompts(
    fresh: Npm, command: str, username: str, password: str, email: str | None = None
) -> pexpect.spawn:
    """Run `npm login` or `npm adduser` and answer its prompts as a person would."""
    child = pexpect.spawn(
        "npm",
        [command, "--registry", fresh.registry],
        env=fresh.env,
        cwd=str(fresh.root),
        encoding="utf-8",
        timeout=60,
    )
    child.expect("Username:")
    child.sendline(username)
    child.expect("Password:")
    child.sendline(password)
    if email is not None:
        child.expect("Email")
        child.sendline(email)
    child.expect(pexpect.EOF)
    child.close()
    return child


def clean_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps({"name": "consumer", "version": "1.0.0", "private": True}))
    return root


def test_npm_login_answers_the_prompts_whoami_knows_the_user_and_logout_revokes_the_token(
    server, repo, publisher_account, tmp_path
):
    fresh = Npm(tmp_path, server.repo_url(repo))
    child = answer_prompts(fresh, "login", publisher_account[0], PASSWORD)
    assert child.exitstatus == 0, child.before
    config = fresh.userconfig.read_text()
    assert f"{fresh.auth_key}:_authToken=art_" in config
    assert fresh.run("whoami").stdout.strip() == publisher_account[0]
    # npm logout revokes the token on the server, not only in .npmrc.
    token = config.split(":_authToken=", 1)[1].split()[0]
    fresh.run("logout")
    assert "_authToken" not in fresh.userconfig.read_text()
    revoked = httpx.get(fresh.registry + "-/whoami", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401


def test_npm_login_with_a_wrong_password_fails_and_stores_nothing(server, repo, publisher_account, tmp_path):
    fresh = Npm(tmp_path, server.repo_url(repo))
    child = answer_prompts(fresh, "login", publisher_account[0], "wrong password")
    assert child.exitstatus != 0
    assert "_authToken" not in fresh.userconfig.read_text()


def test_adduser_creates_an_account_only_where_registration_is_allowed(server, tmp_path):
    def adduser(repo: str, username: str) -> tuple[int, Npm]:
        fresh = Npm(tmp_path / repo, server.repo_url(repo))
        child = answer_prompts(fresh, "adduser", username, PASSWORD, email=f"{username}@example.invalid")
        return child.exitstatus, fresh

    closed = server.create_repo("npm")
    status, _ = adduser(closed, "newcomer-closed")
    assert status != 0
    open_repo = server.create_repo("npm", allow_user_registration=True)
    status, fresh = adduser(open_repo, "newcomer-open")
    assert status == 0
    assert fresh.run("whoami").stdout.strip() == "newcomer-open"
    # A self-registered user has no roles: reading works (anonymous read), publishing does not.
    folder = package_folder(tmp_path, "newcomer-pkg", "1.0.0")
    refused = fresh.run("publish", cwd=folder, check=False)
    assert refused.returncode != 0 and "403" in refused.stderr


def test_publish_unscoped_and_scoped_then_install_both_in_a_clean_folder_with_a_clean_cache(
    server, repo, published, tmp_path
):
    consumer = Npm(tmp_path / "npm", server.repo_url(repo))  # anonymous, empty cache
    project = clean_project(tmp_path / "project")
    consumer.run("install", "@acme/beta", cwd=project)
    output = subprocess.run(
        ["node", "-e", 'console.log(require("@acme/beta"))'],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert output.stdout.strip() == "alpha+beta"
    lock = json.loads((project / "package-lock.json").read_text())["packages"]
    assert (
        lock["node_modules/alpha-lib"]["resolved"]
        == server.repo_url(repo) + "alpha-lib/-/alpha-lib-1.0.0.tgz"
    )
    assert (
        lock["node_modules/@acme/beta"]["resolved"] == server.repo_url(repo) + "@acme/beta/-/beta-2.0.0.tgz"
    )
    assert lock["node_modules/@acme/beta"]["integrity"].startswith("sha512-")


def test_npm_view_shows_the_published_metadata(npm, published):
    view = npm.json("view", "@acme/beta")
    assert view["name"] == "@acme/beta" and view["version"] == "2.0.0"
    assert view["dependencies"] == {"alpha-lib": "^1.0.0"}
    assert view["dist-tags"] == {"latest": "2.0.0"}


def test_dist_tag_add_ls_and_rm_on_a_scoped_package(server, repo, token, npm, published):
    put_package(server, repo, token, "@acme/beta", "2.1.0-rc.1", tags={"next": "2.1.0-rc.1"})
    assert npm.json("view", "@acme/beta", "dist-tags") == {"latest": "2.0.0", "next": "2.1.0-rc.1"}
    assert "+stable: @acme/beta@2.0.0" in npm.run("dist-tag", "add", "@acme/beta@2.0.0", "stable").stdout
    listed = npm.run("dist-tag", "ls", "@acme/beta").stdout.split("\n")
    assert {"latest: 2.0.0", "next: 2.1.0-rc.1", "stable: 2.0.0"} <= set(listed)
    npm.run("dist-tag", "rm", "@acme/beta", "stable")
    assert "stable" not in npm.json("view", "@acme/beta", "dist-tags")


def test_deprecate_and_undeprecate(server, repo, npm, published, tmp_path):
    npm.run("deprecate", "alpha-lib@1.0.0", "use 2.x instead")
    assert npm.json("view", "alpha-lib@1.0.0", "deprecated") == "use 2.x instead"
    consumer = Npm(tmp_path / "npm", server.repo_url(repo))
    installed = consumer.run("install", "alpha-lib@1.0.0", cwd=clean_project(tmp_path / "project"))
    assert "deprecated alpha-lib@1.0.0: use 2.x instead" in installed.stderr
    npm.run("deprecate", "alpha-lib@1.0.0", "")
    assert npm.run("view", "alpha-lib@1.0.0", "deprecated").stdout.strip() == ""


def test_unpublish_of_a_version_recomputes_latest_and_removes_its_tarball(server, repo, token, npm):
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        put_package(server, repo, token, "gamma-lib", version)
    npm.run("dist-tag", "add", "gamma-lib@1.2.0", "stable")
    assert "- gamma-lib@1.2.0" in npm.run("unpublish", "gamma-lib@1.2.0").stdout
    assert npm.json("view", "gamma-lib", "versions") == ["1.0.0", "1.1.0"]
    assert npm.json("view", "gamma-lib", "dist-tags") == {"latest": "1.1.0"}
    assert httpx.get(server.repo_url(repo) + "gamma-lib/-/gamma-lib-1.2.0.tgz").status_code == 404
    assert httpx.get(server.repo_url(repo) + "gamma-lib/-/gamma-lib-1.1.0.tgz").status_code == 200
    # Unpublishing a version that is not latest leaves latest where it was.
    npm.run("unpublish", "gamma-lib@1.0.0")
    assert npm.json("view", "gamma-lib", "dist-tags") == {"latest": "1.1.0"}


def test_unpublish_of_a_whole_package_removes_every_version(server, repo, token, npm):
    for version in ("1.0.0", "2.0.0"):
        put_package(server, repo, token, "@acme/doomed", version)
    npm.run("unpublish", "@acme/doomed", "--force")
    assert httpx.get(server.repo_url(repo) + "@acme%2fdoomed").status_code == 404
    for version in ("1.0.0", "2.0.0"):
        assert httpx.get(server.repo_url(repo) + f"@acme/doomed/-/doomed-{version}.tgz").status_code == 404
    assert npm.run("view", "@acme/doomed", check=False).returncode != 0


def test_search_finds_packages_by_name_keyword_and_description(server, repo, npm, published):
    names = [hit["name"] for hit in npm.json("search", "alpha")]
    assert names[0] == "alpha-lib" and "@acme/beta" in names  # a name match ranks above a description match
    assert [hit["name"] for hit in npm.json("search", "keywords:demo")] == ["alpha-lib"]
    assert npm.json("search", "no-such-thing-anywhere") == []
    page = httpx.get(server.repo_url(repo) + "-/v1/search", params={"text": "", "size": 1, "from": 1}).json()
    assert len(page["objects"]) == 1 and page["total"] >= 2
    first = httpx.get(server.repo_url(repo) + "-/v1/search", params={"text": "", "size": 1}).json()
    assert first["objects"][0]["package"]["name"] != page["objects"][0]["package"]["name"]


def test_ping_and_whoami(npm, publisher_account):
    assert "PONG" in npm.run("ping", "--loglevel", "notice").stderr
    assert npm.run("whoami").stdout.strip() == publisher_account[0]


def test_whoami_with_an_unknown_token_is_refused_with_401(server, repo, tmp_path):
    result = Npm(tmp_path, server.repo_url(repo), "art_0000_not-a-token").run("whoami", check=False)
    assert result.returncode != 0 and "401" in result.stderr
    assert httpx.get(server.repo_url(repo) + "-/whoami").status_code == 401


def test_token_create_list_and_revoke(server, repo, npm, tmp_path):
    created = npm.json("token", "create", "--password", PASSWORD)
    new_token = created["token"]
    listed = npm.json("token", "list")
    key = next(t["key"] for t in listed if new_token.startswith(t["token"] + "_"))
    other = Npm(tmp_path, server.repo_url(repo), new_token)
    assert other.run("whoami").returncode == 0
    npm.run("token", "revoke", key)
    assert all(t["key"] != key for t in npm.json("token", "list"))
    assert other.run("whoami", check=False).returncode != 0
    refused = npm.run("token", "create", "--password", "not my password", check=False)
    assert refused.returncode != 0 and "401" in refused.stderr


def test_npm_audit_gets_an_empty_report_from_a_hosted_registry(server, repo, published, tmp_path):
    consumer = Npm(tmp_path / "npm", server.repo_url(repo))
    project = clean_project(tmp_path / "project")
    consumer.run("install", "alpha-lib@1.0.0", cwd=project)
    report = json.loads(consumer.run("audit", "--json", cwd=project).stdout)
    assert report["metadata"]["vulnerabilities"]["total"] == 0


def test_publish_with_basic_auth_from_npmrc(server, repo, publisher_account, tmp_path):
    user, password = publisher_account
    basic = Npm(tmp_path, server.repo_url(repo))
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    basic.userconfig.write_text(f"registry={basic.registry}\n{basic.auth_key}:_auth={auth}\n")
    basic.run("publish", cwd=package_folder(tmp_path, "basic-auth-pkg", "1.0.0"))
    assert basic.json("view", "basic-auth-pkg", "version") == "1.0.0"


def test_npm_refuses_to_republish_a_version(npm, sources, published):
    again = npm.run("publish", "--force", cwd=sources / "alpha-lib" / "1.0.0", check=False)
    assert again.returncode != 0 and "403" in again.stderr and "previously published" in again.stderr
