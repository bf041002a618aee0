"""Every bad upload the issue lists gets a clear 4xx with the reason, and leaves nothing stored."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import httpx
import pytest

from artifactory.testing.server import ADMIN_PASSWORD
from tests.formats.pypi.conftest import post_upload
from tests.formats.pypi.dists import metadata_text, sdist_bytes, wheel_bytes


@pytest.fixture
def repo(any_server):
    return any_server.create_repo("pypi")


def assert_nothing_stored(server, repo: str, project: str = "victim", filename: str = "") -> None:
    with server.client() as admin:
        found = admin.get("/api/v1/search", params={"repository": repo}).json()
    assert found["items"] == [], found
    base = server.repo_url(repo)
    assert httpx.get(f"{base}simple/{project}/").status_code == 404
    assert project not in httpx.get(f"{base}simple/").text
    if filename:
        assert httpx.get(f"{base}packages/{project}/{filename}").status_code == 404
        assert httpx.get(f"{base}packages/{project}/{filename}.metadata").status_code == 404


def refused(response: httpx.Response, status: int, *reason: str) -> None:
    assert response.status_code == status, response.text
    for part in reason:
        assert part in response.text, response.text


WHEEL = "victim-1.0-py3-none-any.whl"


def test_wrong_sha256_digest_is_refused(any_server, repo):
    content = wheel_bytes("victim", "1.0")
    response = post_upload(any_server, repo, WHEEL, content, digests={"sha256_digest": "ab" * 32})
    refused(response, 400, "sha256_digest does not match")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_wrong_md5_digest_is_refused_even_with_a_right_sha256(any_server, repo):
    content = wheel_bytes("victim", "1.0")
    digests = {"sha256_digest": hashlib.sha256(content).hexdigest(), "md5_digest": "0" * 32}
    refused(post_upload(any_server, repo, WHEEL, content, digests=digests), 400, "md5_digest does not match")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_wrong_blake2_digest_is_refused(any_server, repo):
    content = wheel_bytes("victim", "1.0")
    digests = {"sha256_digest": hashlib.sha256(content).hexdigest(), "blake2_256_digest": "1" * 64}
    refused(
        post_upload(any_server, repo, WHEEL, content, digests=digests),
        400,
        "blake2_256_digest does not match",
    )
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_upload_without_any_digest_is_refused(any_server, repo):
    refused(post_upload(any_server, repo, WHEEL, wheel_bytes("victim", "1.0"), digests={}), 400, "no digest")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


@pytest.mark.parametrize(
    "filename",
    [
        "victim.whl",
        "victim-1.0.whl",
        "victim-1.0-py3-none.whl",
        "victim-notaversion-py3-none-any.whl",
        "victim-1.0.exe",
        "victim-1.0.tar.bz2",
        "victim-1.0-py3-none-any.whl.metadata",
        "-victim-1.0.tar.gz",
    ],
)
def test_a_filename_that_does_not_parse_is_refused(any_server, repo, filename):
    response = post_upload(any_server, repo, filename, wheel_bytes("victim", "1.0"))
    assert response.status_code == 400, response.text
    assert filename in response.text or "filename" in response.text
    assert_nothing_stored(any_server, repo)


def test_metadata_name_that_disagrees_with_the_filename_is_refused(any_server, repo):
    content = wheel_bytes("victim", "1.0", metadata=metadata_text("someone-else", "1.0"))
    refused(post_upload(any_server, repo, WHEEL, content), 400, "metadata name", "does not match")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_metadata_version_that_disagrees_with_the_filename_is_refused(any_server, repo):
    content = wheel_bytes("victim", "1.0", metadata=metadata_text("victim", "2.0"))
    refused(post_upload(any_server, repo, WHEEL, content), 400, "metadata version", "does not match")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_sdist_pkg_info_that_disagrees_with_the_filename_is_refused(any_server, repo):
    content = sdist_bytes("victim", "1.0", metadata=metadata_text("victim", "1.1"))
    refused(post_upload(any_server, repo, "victim-1.0.tar.gz", content), 400, "does not match")
    assert_nothing_stored(any_server, repo, filename="victim-1.0.tar.gz")


def test_dist_info_directory_that_disagrees_with_the_filename_is_refused(any_server, repo):
    content = wheel_bytes("victim", "1.0", dist_info="other-1.0.dist-info")
    refused(post_upload(any_server, repo, WHEEL, content), 400, "does not match the wheel filename")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_form_name_that_disagrees_with_the_filename_is_refused(any_server, repo):
    response = post_upload(any_server, repo, WHEEL, wheel_bytes("victim", "1.0"), name="other", version="1.0")
    refused(response, 400, "does not match the filename")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_wheel_with_a_dotdot_member_is_refused(any_server, repo):
    content = wheel_bytes("victim", "1.0", extra=[("../../etc/evil.pth", b"import os\n")])
    refused(post_upload(any_server, repo, WHEEL, content), 400, "'..'")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_wheel_with_an_absolute_member_path_is_refused(any_server, repo):
    content = wheel_bytes("victim", "1.0", extra=[("/etc/evil.pth", b"import os\n")])
    refused(post_upload(any_server, repo, WHEEL, content), 400, "absolute path")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_sdist_with_a_dotdot_member_is_refused(any_server, repo):
    info = tarfile.TarInfo("victim-1.0/../../evil")
    info.size = 1
    content = sdist_bytes("victim", "1.0", extra=[(info, b"x")])
    refused(post_upload(any_server, repo, "victim-1.0.tar.gz", content), 400, "'..'")
    assert_nothing_stored(any_server, repo, filename="victim-1.0.tar.gz")


def test_sdist_with_a_symlink_leaving_the_archive_is_refused(any_server, repo):
    info = tarfile.TarInfo("victim-1.0/link")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    content = sdist_bytes("victim", "1.0", extra=[(info, b"")])
    refused(post_upload(any_server, repo, "victim-1.0.tar.gz", content), 400, "absolute path")
    assert_nothing_stored(any_server, repo, filename="victim-1.0.tar.gz")


def test_oversized_metadata_is_refused(any_server, repo):
    huge = metadata_text("victim", "1.0") + "x" * (3 * 1024 * 1024)
    content = wheel_bytes("victim", "1.0", metadata=huge)
    refused(post_upload(any_server, repo, WHEEL, content), 400, "METADATA is", "at most")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_compression_bomb_in_a_wheel_is_refused(any_server, repo):
    bomb = zipfile.ZipInfo("victim/data.bin")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    content = wheel_bytes("victim", "1.0", extra=[(bomb, bytes(64 * 1024 * 1024))])
    assert len(content) < 1024 * 1024  # 64 MiB of zeros packs into well under 1 MiB
    refused(post_upload(any_server, repo, WHEEL, content), 400, "compression bomb")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_a_file_that_is_not_a_zip_is_refused(any_server, repo):
    refused(post_upload(any_server, repo, WHEEL, b"this is not a zip file"), 400, "not a valid zip")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_upload_without_credentials_is_refused_with_401(any_server, repo):
    response = post_upload(any_server, repo, WHEEL, wheel_bytes("victim", "1.0"), auth=None)
    refused(response, 401, "requires authentication")
    assert "basic" in response.headers["www-authenticate"].lower()
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_upload_with_wrong_password_is_refused_with_401(any_server, repo):
    response = post_upload(any_server, repo, WHEEL, wheel_bytes("victim", "1.0"), auth=("admin", "wrong"))
    assert response.status_code == 401
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_upload_without_write_permission_is_refused_with_403(any_server, repo):
    with any_server.client() as admin:
        role = admin.post(
            "/api/v1/roles",
            json={"name": f"reader-{repo}", "privileges": [{"repositories": repo, "actions": ["read"]}]},
        )
        assert role.status_code in (200, 201), role.text
    user, password = any_server.create_user([f"reader-{repo}"])
    response = post_upload(any_server, repo, WHEEL, wheel_bytes("victim", "1.0"), auth=(user, password))
    refused(response, 403, "may not write")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_upload_to_a_proxy_repository_is_refused_with_405(any_server):
    proxy = any_server.create_repo("pypi", "proxy", url="http://127.0.0.1:9/simple/")
    response = post_upload(any_server, proxy, WHEEL, wheel_bytes("victim", "1.0"))
    refused(response, 405, "proxy")


def test_upload_to_a_read_only_repository_is_refused(any_server):
    repo = any_server.create_repo("pypi", write_policy="deny")
    refused(post_upload(any_server, repo, WHEEL, wheel_bytes("victim", "1.0")), 400, "read-only")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_a_body_that_is_not_multipart_is_refused(any_server, repo):
    with any_server.client() as admin:
        response = admin.post(
            f"/repository/{repo}/", content=b"name=victim", headers={"Content-Type": "text/plain"}
        )
    refused(response, 400, "multipart/form-data")
    assert_nothing_stored(any_server, repo)


def test_an_unknown_action_is_refused(any_server, repo):
    response = post_upload(any_server, repo, WHEEL, wheel_bytes("victim", "1.0"), **{":action": "submit"})
    refused(response, 400, ":action")
    assert_nothing_stored(any_server, repo, filename=WHEEL)


def test_an_upload_without_a_file_is_refused(any_server, repo):
    with httpx.Client(auth=("admin", ADMIN_PASSWORD)) as client:
        response = client.post(
            any_server.repo_url(repo),
            data={":action": "file_upload", "sha256_digest": "0" * 64},
            files={"other": ("x.txt", io.BytesIO(b"x"))},
        )
    refused(response, 400, "no file")
    assert_nothing_stored(any_server, repo)
