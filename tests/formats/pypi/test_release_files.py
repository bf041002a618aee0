"""One release file is one file, on SQLite and PostgreSQL: racing uploads of a filename leave the
winner's file and its own .metadata together (issue 10 item 3), and spelling variants of a release file
count as that file under allow_once (issue 10 item 4)."""

from __future__ import annotations

import hashlib
import io
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from artifactory.testing.server import LiveServer
from tests.formats.pypi.conftest import post_upload, run
from tests.formats.pypi.dists import metadata_text, sdist_bytes, wheel_bytes

JSON = "application/vnd.pypi.simple.v1+json"
PAIRS = 15


def files_of(server: LiveServer, repo: str, project: str) -> list[str]:
    response = httpx.get(f"{server.repo_url(repo)}simple/{project}/", headers={"Accept": JSON})
    return [f["filename"] for f in response.json()["files"]] if response.status_code == 200 else []


def wheel_metadata(content: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name)


# -- races (issue 10 item 3) -------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["allow_once", "allow"])
def test_racing_uploads_of_one_filename_keep_the_winners_file_and_metadata_together(
    any_server, policy, tmp_path, env
):
    repo = any_server.create_repo("pypi", write_policy=policy)
    projects = [f"race{i}" for i in range(PAIRS)]
    barriers = {p: threading.Barrier(2) for p in projects}

    def upload(project: str, side: str) -> int:
        content = wheel_bytes(project, "1.0", requires=[f"dep-{side}"])
        barriers[project].wait()
        return post_upload(any_server, repo, f"{project}-1.0-py3-none-any.whl", content).status_code

    with ThreadPoolExecutor(max_workers=2 * PAIRS) as pool:
        futures = {(p, s): pool.submit(upload, p, s) for p in projects for s in ("a", "b")}
        statuses = {key: future.result() for key, future in futures.items()}
    for project in projects:
        pair = sorted(statuses[(project, side)] for side in ("a", "b"))
        assert pair == ([200, 400] if policy == "allow_once" else [200, 200]), (project, pair)

    for project in projects:
        url = f"{any_server.repo_url(repo)}packages/{project}/{project}-1.0-py3-none-any.whl"
        served = httpx.get(url).content
        metadata = httpx.get(url + ".metadata").content
        assert metadata == wheel_metadata(served), project
        [entry] = httpx.get(f"{any_server.repo_url(repo)}simple/{project}/", headers={"Accept": JSON}).json()[
            "files"
        ]
        assert entry["hashes"]["sha256"] == hashlib.sha256(served).hexdigest()
        assert entry["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}

    if policy == "allow_once":  # what the issue saw fail: pip checks the .metadata's hash, then the file
        result = run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-cache-dir",
                "-d",
                str(tmp_path / "dl"),
                "--index-url",
                f"{any_server.repo_url(repo)}simple/",
                *projects,
            ],
            env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert len(list(Path(tmp_path / "dl").iterdir())) == PAIRS


# -- spelling variants (issue 10 item 4) -------------------------------------------------------------
def zip_sdist(name: str, version: str, top: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{top}/PKG-INFO", metadata_text(name, version))
        archive.writestr(f"{top}/setup.py", "raise SystemExit\n")
    return buffer.getvalue()


def variant_wheel(filename: str) -> bytes:
    name, version = filename.split("-")[:2]
    return wheel_bytes(name, version, dist_info=f"{name}-{version}.dist-info")


def variant_sdist(filename: str) -> bytes:
    stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
    name, _, version = stem.rpartition("-")
    if filename.endswith(".zip"):
        return zip_sdist(name, version, stem)
    return sdist_bytes(name, version, top=stem)


WHEEL_VARIANTS = [
    "Foo_Bar-1.0-py3-none-any.whl",
    "foo_bar-1.0.0-py3-none-any.whl",
    "foo_bar-1.0.0.0-py3-none-any.whl",
    "foo_bar-01.0-py3-none-any.whl",
    "foo.bar-1.0-py3-none-any.whl",
    "FOO_BAR-1.0.0-py3-none-any.whl",
]
SDIST_VARIANTS = [
    "foo-bar-1.0.tar.gz",
    "Foo_Bar-1.0.0.tar.gz",
    "foo_bar-1.0.0.0.tar.gz",
    "foo_bar-01.0.tar.gz",
    "foo_bar-1.0.zip",
]


@pytest.mark.parametrize(
    "first, second",
    [("foo_bar-1.0-py3-none-any.whl", v) for v in WHEEL_VARIANTS]
    + [("foo_bar-1.0.tar.gz", v) for v in SDIST_VARIANTS],
)
def test_a_spelling_variant_of_a_release_file_is_refused_under_allow_once(any_server, first, second):
    repo = any_server.create_repo("pypi")
    build = variant_wheel if first.endswith(".whl") else variant_sdist
    assert post_upload(any_server, repo, first, build(first)).status_code == 200
    again = post_upload(any_server, repo, second, build(second))
    assert again.status_code == 400, again.text
    assert "File already exists" in again.text and first in again.text
    assert files_of(any_server, repo, "foo-bar") == [first]
    assert httpx.get(f"{any_server.repo_url(repo)}packages/foo-bar/{second}").status_code == 404


@pytest.mark.parametrize(
    "first, second",
    [
        ("foo_bar-1.0-py3-none-any.whl", "Foo_Bar-1.0.0-py3-none-any.whl"),
        ("foo_bar-1.0-py3-none-any.whl", "foo_bar-1.0-py3-none-any.whl"),
        ("foo_bar-1.0.tar.gz", "foo_bar-01.0.zip"),
    ],
)
def test_a_spelling_variant_of_a_deleted_release_file_is_refused_under_allow_once(any_server, first, second):
    """A deleted file leaves a tombstone under its release-file key: no spelling of it comes back."""
    repo = any_server.create_repo("pypi")
    build = variant_wheel if first.endswith(".whl") else variant_sdist
    assert post_upload(any_server, repo, first, build(first)).status_code == 200
    with any_server.client() as admin:
        assert admin.delete(f"{any_server.repo_url(repo)}packages/foo-bar/{first}").status_code == 204
    again = post_upload(any_server, repo, second, build(second))
    assert again.status_code == 400, again.text
    assert "File already exists" in again.text
    assert files_of(any_server, repo, "foo-bar") == []
    # Another release of the project is still welcome.
    other = first.replace("1.0", "2.0")
    assert post_upload(any_server, repo, other, build(other)).status_code == 200
    assert files_of(any_server, repo, "foo-bar") == [other]


def test_other_files_of_the_same_release_are_still_accepted(any_server):
    repo = any_server.create_repo("pypi")
    accepted = [
        "foo_bar-1.0-py3-none-any.whl",
        "foo_bar-1.0-py2.py3-none-any.whl",  # other tags
        "foo_bar-1.0-1-py3-none-any.whl",  # a build number
        "foo_bar-1.0.1-py3-none-any.whl",  # another release
        "foo_bar-1.0.tar.gz",  # the release's sdist
    ]
    for filename in accepted:
        build = variant_wheel if filename.endswith(".whl") else variant_sdist
        response = post_upload(any_server, repo, filename, build(filename))
        assert response.status_code == 200, (filename, response.text)
    assert sorted(files_of(any_server, repo, "foo-bar")) == sorted(accepted)
    refused = post_upload(
        any_server, repo, "foo_bar-1.0-01-py3-none-any.whl", variant_wheel("foo_bar-1.0-01")
    )
    assert refused.status_code == 400 and "foo_bar-1.0-1-py3-none-any.whl" in refused.text


@pytest.mark.parametrize(
    "filename, content",
    [
        (
            "foo_bar-1.0.0.0-py3-none-any.whl",
            wheel_bytes("foo_bar", "1.0.0.0", metadata=metadata_text("foo_bar", "1.0")),
        ),
        (
            "foo_bar-1.0-py3-none-any.whl",
            wheel_bytes("foo_bar", "1.0", metadata=metadata_text("foo_bar", "1.0.0")),
        ),
        (
            "foo_bar-1.0-py3-none-any.whl",
            wheel_bytes("foo_bar", "1.0", metadata=metadata_text("other", "1.0")),
        ),
        ("foo_bar-1.0.0.tar.gz", sdist_bytes("foo_bar", "1.0.0", metadata=metadata_text("foo_bar", "1.0"))),
        ("foo_bar-1.0-py3-none-any.whl", wheel_bytes("foo_bar", "1.0", dist_info="foo_bar-1.0.0.dist-info")),
    ],
    ids=[
        "wheel-1.0.0.0-says-1.0",
        "wheel-1.0-says-1.0.0",
        "wheel-says-other-name",
        "sdist-1.0.0-says-1.0",
        "dist-info-1.0.0",
    ],
)
def test_a_file_whose_name_or_version_differs_from_its_metadata_is_refused(any_server, filename, content):
    repo = any_server.create_repo("pypi")
    response = post_upload(any_server, repo, filename, content)
    assert response.status_code == 400
    assert "does not match" in response.text
    assert files_of(any_server, repo, "foo-bar") == []
