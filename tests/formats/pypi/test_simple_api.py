"""The simple API (PEP 503/691/592/658/700/714), the JSON API, yank and delete, over HTTP and the CLI."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time

import httpx
import lxml.html
import pytest

from artifactory.testing.server import LiveServer
from tests.formats.pypi.conftest import post_upload
from tests.formats.pypi.dists import metadata_text, sdist_bytes, wheel_bytes

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"


def upload(server, repo, name, version, **kwargs):
    content = wheel_bytes(name, version, **kwargs)
    filename = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-py3-none-any.whl"
    response = post_upload(server, repo, filename, content)
    assert response.status_code == 200, response.text
    return filename, content


@pytest.fixture(scope="module")
def repo(any_server):
    """`Demo.Pkg` 1.0 (requires-python >=3.8) and 2.0rc1, plus an sdist of 1.0."""
    name = any_server.create_repo("pypi")
    upload(any_server, name, "Demo.Pkg", "1.0", requires_python=">=3.8", requires=["other>=1"])
    upload(any_server, name, "Demo.Pkg", "2.0rc1")
    sdist = sdist_bytes("demo.pkg", "1.0")
    assert post_upload(any_server, name, "demo_pkg-1.0.tar.gz", sdist).status_code == 200
    return name


def page(server, repo, project="demo-pkg", accept=None, **params):
    headers = {"Accept": accept} if accept else {}
    return httpx.get(f"{server.repo_url(repo)}simple/{project}/", headers=headers, params=params)


# -- negotiation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, "text/html"),
        ("text/html", "text/html"),
        (JSON, JSON),
        (HTML, HTML),
        ("application/vnd.pypi.simple.latest+json", JSON),
        (f"{JSON}, {HTML};q=0.1, text/html;q=0.01", JSON),
        (f"{JSON};q=0.2, text/html", "text/html"),
        ("*/*", "text/html"),
    ],
)
def test_accept_header_chooses_json_or_html(any_server, repo, accept, expected):
    response = page(any_server, repo, accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == expected
    assert "Accept" in response.headers["vary"]


@pytest.mark.parametrize("query, expected", [(JSON, JSON), (HTML, HTML), ("text/html", "text/html")])
def test_format_query_parameter_overrides_accept(any_server, repo, query, expected):
    response = page(any_server, repo, accept="text/html" if expected == JSON else JSON, format=query)
    assert response.headers["content-type"].split(";")[0] == expected


def test_unacceptable_accept_header_gets_406(any_server, repo):
    assert page(any_server, repo, accept="application/xml").status_code == 406


# -- project pages ------------------------------------------------------------------------------
def test_html_links_carry_sha256_requires_python_and_core_metadata(any_server, repo):
    response = page(any_server, repo)
    anchors = {a.text: a for a in lxml.html.fromstring(response.content).iter("a")}
    assert sorted(anchors) == [
        "demo_pkg-1.0-py3-none-any.whl",
        "demo_pkg-1.0.tar.gz",
        "demo_pkg-2.0rc1-py3-none-any.whl",
    ]
    wheel = anchors["demo_pkg-1.0-py3-none-any.whl"]
    url, _, fragment = wheel.get("href").partition("#")
    assert url == f"{any_server.repo_url(repo)}packages/demo-pkg/demo_pkg-1.0-py3-none-any.whl"
    body = httpx.get(url).content
    assert fragment == f"sha256={hashlib.sha256(body).hexdigest()}"
    assert wheel.get("data-requires-python") == ">=3.8"
    assert b'data-requires-python="&gt;=3.8"' in response.content  # escaped in the markup
    metadata = httpx.get(url + ".metadata")
    assert metadata.status_code == 200
    assert metadata.content == metadata_text("Demo.Pkg", "1.0", ["other>=1"], ">=3.8").encode()
    expected = f"sha256={hashlib.sha256(metadata.content).hexdigest()}"
    assert wheel.get("data-core-metadata") == expected
    assert wheel.get("data-dist-info-metadata") == expected
    sdist = anchors["demo_pkg-1.0.tar.gz"]
    assert sdist.get("data-core-metadata") is None  # metadata is served for wheels only
    assert wheel.get("data-yanked") is None


def test_json_page_has_pep_700_versions_size_and_upload_time(any_server, repo):
    data = page(any_server, repo, accept=JSON).json()
    assert data["meta"]["api-version"] == "1.1"
    assert data["name"] == "demo-pkg"
    assert data["versions"] == ["1.0", "2.0rc1"]
    by_name = {f["filename"]: f for f in data["files"]}
    wheel = by_name["demo_pkg-1.0-py3-none-any.whl"]
    body = httpx.get(wheel["url"]).content
    assert wheel["size"] == len(body)
    assert wheel["hashes"] == {"sha256": hashlib.sha256(body).hexdigest()}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", wheel["upload-time"])
    assert wheel["requires-python"] == ">=3.8"
    assert wheel["yanked"] is False
    metadata = httpx.get(wheel["url"] + ".metadata").content
    assert wheel["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert by_name["demo_pkg-1.0.tar.gz"]["core-metadata"] is False


def test_etag_and_if_none_match_answer_304_until_the_project_changes(any_server, repo):
    first = page(any_server, repo, accept=JSON)
    etag = first.headers["etag"]
    again = httpx.get(
        f"{any_server.repo_url(repo)}simple/demo-pkg/", headers={"Accept": JSON, "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    html = page(any_server, repo)
    assert html.headers["etag"] != etag  # each representation has its own tag
    upload(any_server, repo, "Demo.Pkg", "3.0")
    changed = httpx.get(
        f"{any_server.repo_url(repo)}simple/demo-pkg/", headers={"Accept": JSON, "If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert "3.0" in changed.json()["versions"]


def test_gzip_is_offered_and_decodes_to_the_same_page(any_server, repo):
    plain = page(any_server, repo, accept=JSON)
    with httpx.Client(headers={"Accept-Encoding": "gzip", "Accept": JSON}) as client:
        gz = client.get(f"{any_server.repo_url(repo)}simple/demo-pkg/")
    assert gz.headers.get("content-encoding") == "gzip"
    assert gz.content == plain.content


def test_non_normalised_project_names_redirect_to_the_normalised_page(any_server, repo):
    response = httpx.get(f"{any_server.repo_url(repo)}simple/Demo_Pkg/")
    assert response.status_code == 301
    assert response.headers["location"] == f"{any_server.repo_url(repo)}simple/demo-pkg/"
    no_slash = httpx.get(f"{any_server.repo_url(repo)}simple/demo-pkg", params={"format": JSON})
    assert no_slash.status_code == 301
    assert no_slash.headers["location"].startswith(f"{any_server.repo_url(repo)}simple/demo-pkg/?format=")
    followed = httpx.get(
        f"{any_server.repo_url(repo)}simple/demo-pkg", params={"format": JSON}, follow_redirects=True
    )
    assert followed.headers["content-type"] == JSON  # the query survives the redirect
    assert httpx.get(f"{any_server.repo_url(repo)}simple/Demo_Pkg/", follow_redirects=True).status_code == 200


def test_unknown_project_is_404(any_server, repo):
    assert page(any_server, repo, project="nothing-here").status_code == 404
    assert page(any_server, repo, project="nothing-here", accept=JSON).status_code == 404


def test_root_index_lists_every_project_in_html_and_json(any_server, repo):
    upload(any_server, repo, "Second_Project", "0.1")
    html = httpx.get(f"{any_server.repo_url(repo)}simple/")
    links = {a.text: a.get("href") for a in lxml.html.fromstring(html.content).iter("a")}
    assert links == {
        "Demo.Pkg": f"{any_server.repo_url(repo)}simple/demo-pkg/",
        "Second_Project": f"{any_server.repo_url(repo)}simple/second-project/",
    }
    data = httpx.get(f"{any_server.repo_url(repo)}simple/", headers={"Accept": JSON}).json()
    assert data == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "Demo.Pkg"}, {"name": "Second_Project"}],
    }
    etag = html.headers["etag"]
    assert (
        httpx.get(f"{any_server.repo_url(repo)}simple/", headers={"If-None-Match": etag}).status_code == 304
    )


# -- JSON API ----------------------------------------------------------------------------------
def test_json_api_for_a_project_has_info_releases_and_digests(any_server, repo):
    data = httpx.get(f"{any_server.repo_url(repo)}pypi/Demo.Pkg/json").json()
    assert data["info"]["name"] == "Demo.Pkg"
    assert data["info"]["version"] in ("1.0", "3.0")  # the latest final release
    assert data["info"]["summary"] == "a test package"
    assert set(data["releases"]) >= {"1.0", "2.0rc1"}
    wheel = next(f for f in data["releases"]["1.0"] if f["packagetype"] == "bdist_wheel")
    body = httpx.get(wheel["url"]).content
    assert wheel["digests"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert wheel["digests"]["md5"] == hashlib.md5(body).hexdigest()
    assert wheel["digests"]["blake2b_256"] == hashlib.blake2b(body, digest_size=32).hexdigest()
    assert wheel["size"] == len(body)
    assert wheel["requires_python"] == ">=3.8"


def test_json_api_for_one_release(any_server, repo):
    data = httpx.get(f"{any_server.repo_url(repo)}pypi/demo-pkg/1.0/json").json()
    assert data["info"]["version"] == "1.0"
    assert data["info"]["requires_dist"] == ["other>=1"]
    assert data["info"]["requires_python"] == ">=3.8"
    assert sorted(f["filename"] for f in data["urls"]) == [
        "demo_pkg-1.0-py3-none-any.whl",
        "demo_pkg-1.0.tar.gz",
    ]
    assert "releases" not in data
    assert httpx.get(f"{any_server.repo_url(repo)}pypi/demo-pkg/9.9/json").status_code == 404
    assert httpx.get(f"{any_server.repo_url(repo)}pypi/absent/json").status_code == 404


# -- yank ----------------------------------------------------------------------------------------
def test_yank_and_unyank_a_release_through_the_admin_api(any_server):
    repo = any_server.create_repo("pypi")
    upload(any_server, repo, "yanky", "1.0")
    with any_server.client() as admin:
        response = admin.put(
            f"/api/v1/pypi/{repo}/projects/Yanky/versions/1.0/yank", json={"reason": "bad <build>"}
        )
        assert response.status_code == 200, response.text
    html = page(any_server, repo, project="yanky")
    anchor = next(lxml.html.fromstring(html.content).iter("a"))
    assert anchor.get("data-yanked") == "bad <build>"
    assert b'data-yanked="bad &lt;build&gt;"' in html.content
    assert page(any_server, repo, project="yanky", accept=JSON).json()["files"][0]["yanked"] == "bad <build>"
    api = httpx.get(f"{any_server.repo_url(repo)}pypi/yanky/1.0/json").json()
    assert api["info"]["yanked"] is True and api["info"]["yanked_reason"] == "bad <build>"
    with any_server.client() as admin:
        assert admin.delete(f"/api/v1/pypi/{repo}/projects/yanky/versions/1.0/yank").status_code == 200
        deep = admin.put(f"/api/v1/pypi/{repo}/projects/yanky/versions/1.0/yank", content=b"[" * 50_000)
        assert deep.status_code == 400 and "nested more than 64 levels" in deep.text
    assert page(any_server, repo, project="yanky", accept=JSON).json()["files"][0]["yanked"] is False
    assert "data-yanked" not in page(any_server, repo, project="yanky").text


def test_yank_one_file_without_a_reason_and_yank_needs_a_user(any_server):
    repo = any_server.create_repo("pypi")
    filename, _ = upload(any_server, repo, "yanky", "1.0")
    assert (
        httpx.put(f"{any_server.url}/api/v1/pypi/{repo}/projects/yanky/files/{filename}/yank").status_code
        == 401
    )
    with any_server.client() as admin:
        assert admin.put(f"/api/v1/pypi/{repo}/projects/yanky/files/{filename}/yank").status_code == 200
        assert admin.put(f"/api/v1/pypi/{repo}/projects/yanky/versions/7.0/yank").status_code == 404
    assert page(any_server, repo, project="yanky", accept=JSON).json()["files"][0]["yanked"] is True
    assert 'data-yanked=""' in page(any_server, repo, project="yanky").text


def cli(server, *args):
    return subprocess.run(
        [sys.executable, "-m", "artifactory", "pypi", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(server.data_dir)},
    )


def eventually(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.mark.parametrize("any_server", ["sqlite"], indirect=True)  # the command line works on SQLite
def test_yank_unyank_and_delete_through_the_command_line(any_server):
    repo = any_server.create_repo("pypi")
    upload(any_server, repo, "clipkg", "1.0")
    upload(any_server, repo, "clipkg", "1.1")
    result = cli(any_server, "yank", repo, "clipkg", "1.1", "--reason", "oops")
    assert result.returncode == 0, result.stderr
    eventually(
        lambda: page(any_server, repo, project="clipkg", accept=JSON).json()["files"][1]["yanked"] == "oops"
    )
    assert cli(any_server, "unyank", repo, "clipkg", "1.1").returncode == 0
    eventually(
        lambda: page(any_server, repo, project="clipkg", accept=JSON).json()["files"][1]["yanked"] is False
    )
    assert cli(any_server, "delete", repo, "clipkg", "1.0").returncode == 0
    eventually(lambda: page(any_server, repo, project="clipkg", accept=JSON).json()["versions"] == ["1.1"])
    assert cli(any_server, "delete", repo, "clipkg").returncode == 0
    eventually(lambda: page(any_server, repo, project="clipkg").status_code == 404)
    missing = cli(any_server, "delete", repo, "clipkg")
    assert missing.returncode == 1 and "nothing to delete" in missing.stderr


# -- delete ----------------------------------------------------------------------------------------
def test_deleting_a_file_a_release_and_a_project_keeps_every_index_consistent(any_server):
    repo = any_server.create_repo("pypi")
    one, _ = upload(any_server, repo, "gone", "1.0")
    upload(any_server, repo, "gone", "2.0")
    upload(any_server, repo, "gone", "3.0")
    upload(any_server, repo, "stays", "1.0")
    base = any_server.repo_url(repo)
    with any_server.client() as admin:
        assert httpx.delete(f"{base}packages/gone/{one}").status_code == 401
        alone = admin.delete(f"{base}packages/gone/{one}.metadata")  # it goes only with its file
        assert alone.status_code == 405 and one in alone.text and alone.headers["Allow"] == "GET, HEAD"
        assert httpx.get(f"{base}packages/gone/{one}.metadata").status_code == 200
        assert admin.delete(f"{base}packages/gone/{one}").status_code == 204
        assert httpx.get(f"{base}packages/gone/{one}").status_code == 404
        assert httpx.get(f"{base}packages/gone/{one}.metadata").status_code == 404
        assert page(any_server, repo, project="gone", accept=JSON).json()["versions"] == ["2.0", "3.0"]
        response = admin.delete(f"/api/v1/pypi/{repo}/projects/gone/versions/2.0")
        assert response.json() == {"deleted": ["gone-2.0-py3-none-any.whl"]}
        assert page(any_server, repo, project="gone", accept=JSON).json()["versions"] == ["3.0"]
        assert list(httpx.get(f"{base}pypi/gone/json").json()["releases"]) == ["3.0"]
        assert admin.delete(f"/api/v1/pypi/{repo}/projects/gone").status_code == 200
        assert admin.delete(f"/api/v1/pypi/{repo}/projects/gone").status_code == 404
    assert page(any_server, repo, project="gone").status_code == 404
    assert httpx.get(f"{base}pypi/gone/json").status_code == 404
    names = [p["name"] for p in httpx.get(f"{base}simple/", headers={"Accept": JSON}).json()["projects"]]
    assert names == ["stays"]


def test_a_deleted_filename_is_never_reused_in_an_allow_once_repository(any_server):
    repo = any_server.create_repo("pypi")
    with any_server.client() as admin:
        assert admin.get(f"/api/v1/repositories/{repo}").json()["write_policy"] == "allow_once"
    filename, content = upload(any_server, repo, "reuse", "1.0")
    with any_server.client() as admin:
        assert admin.delete(f"{any_server.repo_url(repo)}packages/reuse/{filename}").status_code == 204
    again = post_upload(any_server, repo, filename, content)
    assert again.status_code == 400
    assert "File already exists" in again.text
    assert page(any_server, repo, project="reuse").status_code == 404


def test_an_allow_repository_accepts_a_filename_again_and_replaces_the_file(any_server):
    repo = any_server.create_repo("pypi", write_policy="allow")
    filename, _ = upload(any_server, repo, "reuse", "1.0")
    replacement = wheel_bytes("reuse", "1.0", requires=["extra-dep"])
    assert post_upload(any_server, repo, filename, replacement).status_code == 200
    assert httpx.get(f"{any_server.repo_url(repo)}packages/reuse/{filename}").content == replacement
    metadata = httpx.get(f"{any_server.repo_url(repo)}packages/reuse/{filename}.metadata").text
    assert "Requires-Dist: extra-dep" in metadata
    data = page(any_server, repo, project="reuse", accept=JSON).json()
    assert data["files"][0]["hashes"]["sha256"] == hashlib.sha256(replacement).hexdigest()


def test_delete_needs_delete_permission(any_server):
    repo = any_server.create_repo("pypi")
    filename, _ = upload(any_server, repo, "guarded", "1.0")
    with any_server.client() as admin:
        admin.post(
            "/api/v1/roles",
            json={
                "name": f"writer-{repo}",
                "privileges": [{"repositories": repo, "actions": ["read", "write"]}],
            },
        )
    user = any_server.create_user([f"writer-{repo}"])
    with httpx.Client(auth=user) as client:
        assert client.delete(f"{any_server.repo_url(repo)}packages/guarded/{filename}").status_code == 403
        assert client.delete(f"{any_server.url}/api/v1/pypi/{repo}/projects/guarded").status_code == 403
    assert page(any_server, repo, project="guarded").status_code == 200


def test_every_worker_sees_uploads_deletions_and_yanks_of_a_project(tmp_path):
    """Pages are cached per project in each process; a change made through any worker reaches all."""
    live = LiveServer(tmp_path / "data", workers=2).start()
    try:
        repo = live.create_repo("pypi")
        upload(live, repo, "multi", "1.0")
        upload(live, repo, "other", "1.0")

        def versions_everywhere(expected):
            seen = [
                tuple(page(live, repo, project="multi", accept=JSON).json()["versions"]) for _ in range(12)
            ]
            return all(v == expected for v in seen)

        eventually(lambda: versions_everywhere(("1.0",)))
        upload(live, repo, "multi", "2.0")
        eventually(lambda: versions_everywhere(("1.0", "2.0")))
        upload(live, repo, "other", "2.0")  # another project's change keeps this one right
        eventually(lambda: versions_everywhere(("1.0", "2.0")))
        with live.client() as admin:
            assert (
                admin.delete(f"{live.repo_url(repo)}packages/multi/multi-1.0-py3-none-any.whl").status_code
                == 204
            )
            assert admin.put(f"/api/v1/pypi/{repo}/projects/multi/versions/2.0/yank").status_code == 200
        eventually(lambda: versions_everywhere(("2.0",)))
        eventually(
            lambda: all(
                page(live, repo, project="multi", accept=JSON).json()["files"][0]["yanked"] is True
                for _ in range(12)
            )
        )
    finally:
        live.stop()
