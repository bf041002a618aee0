"""End to end with the real tools: twine uploads, pip and uv install from this server as their only index."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import requests
from twine.commands.upload import skip_upload

from artifactory.testing.server import ADMIN_PASSWORD
from tests.formats.pypi.conftest import (
    fresh_venv,
    imported,
    pip_install,
    post_upload,
    tool_env,
    twine_upload,
    uv_install,
)
from tests.formats.pypi.dists import wheel_bytes, write_sdist, write_wheel


@pytest.fixture(scope="module")
def published(server, tmp_path_factory):
    """A hosted repository where twine put `app` 1.0 (which needs corelib>=1.1) and corelib 1.0, 1.1."""
    repo = server.create_repo("pypi")
    dist = tmp_path_factory.mktemp("dist")
    files = [
        write_wheel(dist, "App", "1.0", requires=["corelib>=1.1"]),
        write_wheel(dist, "corelib", "1.0"),
        write_wheel(dist, "corelib", "1.1", requires_python=">=3.8"),
        write_sdist(dist, "corelib", "1.1"),
    ]
    result = twine_upload(server.repo_url(repo), files, "admin", ADMIN_PASSWORD, tool_env(dist / "home"))
    assert result.returncode == 0, result.stdout + result.stderr
    return repo, {f.name: f for f in files}


def test_twine_upload_then_pip_installs_a_package_and_its_dependency_from_the_same_repository(
    server, published, tmp_path, env
):
    repo, _ = published
    python = fresh_venv(tmp_path / "venv")
    result = pip_install(python, f"{server.repo_url(repo)}simple/", env, "app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully installed app-1.0 corelib-1.1" in result.stdout
    # pip learnt the dependencies from the PEP 658 .metadata files, not from the wheels.
    assert ".whl.metadata" in result.stdout
    assert imported(python, "app") == "App 1.0"
    assert imported(python, "corelib") == "corelib 1.1"


def test_uv_pip_install_resolves_a_dependency_from_the_same_repository(server, published, tmp_path, env):
    repo, _ = published
    python = fresh_venv(tmp_path / "venv")
    result = uv_install(python, f"{server.repo_url(repo)}simple/", env, "app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert imported(python, "corelib") == "corelib 1.1"
    assert imported(python, "app") == "App 1.0"


def test_pip_require_hashes_installs_when_the_pinned_sha256_matches(server, published, tmp_path, env):
    repo, files = published
    digest = hashlib.sha256(files["corelib-1.0-py3-none-any.whl"].read_bytes()).hexdigest()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"corelib==1.0 --hash=sha256:{digest}\n")
    python = fresh_venv(tmp_path / "venv")
    result = pip_install(
        python, f"{server.repo_url(repo)}simple/", env, "--require-hashes", "-r", str(requirements)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert imported(python, "corelib") == "corelib 1.0"


def test_pip_require_hashes_refuses_a_pinned_hash_the_served_file_does_not_have(
    server, published, tmp_path, env
):
    repo, _ = published
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"corelib==1.0 --hash=sha256:{'0' * 64}\n")
    python = fresh_venv(tmp_path / "venv")
    result = pip_install(
        python, f"{server.repo_url(repo)}simple/", env, "--require-hashes", "-r", str(requirements)
    )
    assert result.returncode != 0
    assert "HASHES" in result.stderr.upper()


def test_twine_upload_with___token___and_an_api_token_as_password(server, tmp_path, env):
    repo = server.create_repo("pypi")
    user, password = server.create_user(["admin"])
    with server.client(auth=(user, password)) as client:
        token = client.post("/api/v1/tokens", json={}).json()["token"]
    wheel = write_wheel(tmp_path / "dist", "tokened", "0.1")
    result = twine_upload(server.repo_url(repo), [wheel], "__token__", token, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert httpx.get(f"{server.repo_url(repo)}simple/tokened/").status_code == 200


def test_twine_reupload_gets_400_file_already_exists_which_twine_recognises_as_existing(
    server, published, env
):
    repo, files = published
    wheel = files["corelib-1.0-py3-none-any.whl"]
    result = twine_upload(server.repo_url(repo), [wheel], "admin", ADMIN_PASSWORD, env, "--verbose")
    assert result.returncode != 0
    assert "400" in result.stdout + result.stderr
    assert "File already exists" in result.stdout + result.stderr
    # twine's own test of "this file is already there" (what --skip-existing uses) accepts our answer.
    content = wheel.read_bytes()
    response = requests.post(
        server.repo_url(repo),
        data={
            ":action": "file_upload",
            "protocol_version": "1",
            "sha256_digest": hashlib.sha256(content).hexdigest(),
        },
        files={"content": (wheel.name, content)},
        auth=("admin", ADMIN_PASSWORD),
        timeout=30,
    )
    assert response.status_code == 400
    assert skip_upload(response, True, package=None)  # type: ignore[arg-type]


def test_pip_skips_a_yanked_release_unless_it_is_pinned(server, tmp_path, env):
    repo = server.create_repo("pypi")
    for version in ("1.0", "2.0"):
        response = post_upload(
            server, repo, f"yankee-{version}-py3-none-any.whl", wheel_bytes("yankee", version)
        )
        assert response.status_code == 200, response.text
    with server.client() as admin:
        yank = admin.put(f"/api/v1/pypi/{repo}/projects/yankee/versions/2.0/yank", json={"reason": "broken"})
        assert yank.status_code == 200, yank.text
    python = fresh_venv(tmp_path / "venv")
    result = pip_install(python, f"{server.repo_url(repo)}simple/", env, "yankee")
    assert result.returncode == 0, result.stdout + result.stderr
    assert imported(python, "yankee") == "yankee 1.0"
    pinned = pip_install(python, f"{server.repo_url(repo)}simple/", env, "yankee==2.0")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert "broken" in pinned.stdout + pinned.stderr  # pip warns with the yank reason
    assert imported(python, "yankee") == "yankee 2.0"


def test_uv_installs_with_its_json_preference_and_sees_sdists_and_wheels(server, published, tmp_path, env):
    repo, _ = published
    page = httpx.get(
        f"{server.repo_url(repo)}simple/corelib/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.01"},
    )
    assert page.headers["content-type"].startswith("application/vnd.pypi.simple.v1+json")
    filenames = [f["filename"] for f in page.json()["files"]]
    assert filenames == ["corelib-1.0-py3-none-any.whl", "corelib-1.1-py3-none-any.whl", "corelib-1.1.tar.gz"]
    python = fresh_venv(tmp_path / "venv")
    result = uv_install(python, f"{server.repo_url(repo)}simple/", env, "corelib==1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert imported(python, "corelib") == "corelib 1.0"


def test_pip_download_through_an_index_url_without_trailing_slash(server, published, tmp_path, env):
    repo, _ = published
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "-d",
            str(tmp_path / "d"),
            "--index-url",
            f"{server.repo_url(repo)}simple",
            "corelib==1.1",
            "--only-binary",
            ":all:",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["corelib-1.1-py3-none-any.whl"]


def test_uploaded_files_keep_their_bytes(server, published):
    repo, files = published
    for name, path in files.items():
        project = "app" if name.startswith("app") else "corelib"
        got = httpx.get(f"{server.repo_url(repo)}packages/{project}/{name}")
        assert got.status_code == 200
        assert got.content == Path(path).read_bytes()


def test_uv_publish_uploads_through_the_legacy_api(server, tmp_path, env):
    repo = server.create_repo("pypi")
    files = [write_wheel(tmp_path / "dist", "uvpub", "1.0"), write_sdist(tmp_path / "dist", "uvpub", "1.0")]
    result = subprocess.run(
        [
            "uv",
            "publish",
            "--publish-url",
            server.repo_url(repo),
            "--username",
            "admin",
            "--password",
            ADMIN_PASSWORD,
        ]
        + [str(f) for f in files],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    page = httpx.get(
        f"{server.repo_url(repo)}simple/uvpub/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert [f["filename"] for f in page.json()["files"]] == ["uvpub-1.0-py3-none-any.whl", "uvpub-1.0.tar.gz"]
