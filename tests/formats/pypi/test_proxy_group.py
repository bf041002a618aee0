"""Proxy and group repositories: against a second server instance (PEP 691 JSON upstream) and against a
static HTML index whose files live on another host; pip and uv through a group of hosted + proxy.
HTTP-level tests run on SQLite and PostgreSQL, the client tests on SQLite."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import lxml.html
import pytest

from artifactory.testing.server import LiveServer
from tests.formats.pypi.conftest import fresh_venv, imported, pip_install, post_upload, uv_install
from tests.formats.pypi.dists import sdist_bytes, wheel_bytes

JSON = "application/vnd.pypi.simple.v1+json"
SQLITE_ONLY = pytest.mark.parametrize("any_server", ["sqlite"], indirect=True)


def put(server: LiveServer, repo: str, filename: str, content: bytes) -> bytes:
    response = post_upload(server, repo, filename, content)
    assert response.status_code == 200, response.text
    return content


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Iterator[tuple[LiveServer, str, dict[str, bytes]]]:
    """A second server with a hosted repository: remote-lib 1.0 and 2.0, shared 1.0 and 2.0."""
    live = LiveServer(tmp_path_factory.mktemp("upstream") / "data").start()
    repo = live.create_repo("pypi")
    files = {
        "remote_lib-1.0-py3-none-any.whl": put(
            live, repo, "remote_lib-1.0-py3-none-any.whl", wheel_bytes("remote-lib", "1.0")
        ),
        "remote_lib-2.0-py3-none-any.whl": put(
            live,
            repo,
            "remote_lib-2.0-py3-none-any.whl",
            wheel_bytes("remote-lib", "2.0", requires_python=">=3.6"),
        ),
        "remote_lib-2.0.tar.gz": put(live, repo, "remote_lib-2.0.tar.gz", sdist_bytes("remote-lib", "2.0")),
        "shared-1.0-py3-none-any.whl": put(
            live, repo, "shared-1.0-py3-none-any.whl", wheel_bytes("shared", "1.0", module="upstream_shared")
        ),
        "shared-2.0-py3-none-any.whl": put(
            live, repo, "shared-2.0-py3-none-any.whl", wheel_bytes("shared", "2.0")
        ),
    }
    try:
        yield live, repo, files
    finally:
        live.stop()


@pytest.fixture(scope="module")
def repos(any_server, upstream):
    """Our server: hosted `local` (app needs remote-lib; its own shared 1.0), proxy, two groups."""
    server = any_server
    live, up_repo, _ = upstream
    local = server.create_repo("pypi")
    put(server, local, "app-1.0-py3-none-any.whl", wheel_bytes("app", "1.0", requires=["remote-lib>=2"]))
    put(server, local, "shared-1.0-py3-none-any.whl", wheel_bytes("shared", "1.0", module="local_shared"))
    proxy = server.create_repo("pypi", "proxy", url=f"{live.repo_url(up_repo)}simple/")
    group = server.create_repo("pypi", "group", members=[local, proxy])
    shadowing = server.create_repo("pypi", "group", members=[local, proxy], allow_proxy_shadowing=True)
    return {"local": local, "proxy": proxy, "group": group, "shadowing": shadowing}


def json_page(server, repo, project):
    response = httpx.get(f"{server.repo_url(repo)}simple/{project}/", headers={"Accept": JSON})
    assert response.status_code == 200, response.text
    return response.json()


# -- proxy of a PEP 691 upstream ------------------------------------------------------------------
def test_proxy_page_links_back_through_the_proxy_and_keeps_upstream_hashes(any_server, upstream, repos):
    live, up_repo, files = upstream
    ours = json_page(any_server, repos["proxy"], "remote-lib")
    theirs = json_page(live, up_repo, "remote-lib")
    assert [f["filename"] for f in ours["files"]] == [f["filename"] for f in theirs["files"]]
    for mine, original in zip(ours["files"], theirs["files"], strict=True):
        assert mine["url"] == f"{any_server.repo_url(repos['proxy'])}packages/remote-lib/{mine['filename']}"
        assert mine["hashes"] == original["hashes"]
        # Fields only a PEP 691 JSON page carries: the proxy asked the upstream for JSON.
        assert mine["size"] == original["size"] and mine["upload-time"] == original["upload-time"]
        assert mine["core-metadata"] == original["core-metadata"]
    assert ours["versions"] == ["1.0", "2.0"]
    assert ours["files"][1]["requires-python"] == ">=3.6"


def test_proxy_serves_files_and_pep_658_metadata_from_upstream(any_server, upstream, repos):
    live, up_repo, files = upstream
    name = "remote_lib-2.0-py3-none-any.whl"
    got = httpx.get(f"{any_server.repo_url(repos['proxy'])}packages/remote-lib/{name}")
    assert got.status_code == 200
    assert got.content == files[name]
    metadata = httpx.get(f"{any_server.repo_url(repos['proxy'])}packages/remote-lib/{name}.metadata")
    assert metadata.status_code == 200
    assert (
        metadata.content == httpx.get(f"{live.repo_url(up_repo)}packages/remote-lib/{name}.metadata").content
    )
    page = json_page(any_server, repos["proxy"], "remote-lib")
    entry = next(f for f in page["files"] if f["filename"] == name)
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(metadata.content).hexdigest()}


def test_proxy_root_index_and_json_api(any_server, repos):
    names = [
        p["name"]
        for p in httpx.get(f"{any_server.repo_url(repos['proxy'])}simple/", headers={"Accept": JSON}).json()[
            "projects"
        ]
    ]
    assert names == ["remote-lib", "shared"]
    api = httpx.get(f"{any_server.repo_url(repos['proxy'])}pypi/remote-lib/json").json()
    assert api["info"]["version"] == "2.0"
    assert set(api["releases"]) == {"1.0", "2.0"}


def test_proxy_answers_404_for_a_project_the_upstream_does_not_have(any_server, repos):
    assert httpx.get(f"{any_server.repo_url(repos['proxy'])}simple/no-such-project/").status_code == 404


# -- group ------------------------------------------------------------------------------------------
def test_group_merges_member_pages_and_the_first_member_wins_a_shared_filename(any_server, upstream, repos):
    _live, _up, files = upstream
    local_shared = httpx.get(
        f"{any_server.repo_url(repos['local'])}packages/shared/shared-1.0-py3-none-any.whl"
    ).content
    page = json_page(any_server, repos["shadowing"], "shared")
    by_name = {f["filename"]: f for f in page["files"]}
    assert sorted(by_name) == ["shared-1.0-py3-none-any.whl", "shared-2.0-py3-none-any.whl"]
    assert (
        by_name["shared-1.0-py3-none-any.whl"]["hashes"]["sha256"] == hashlib.sha256(local_shared).hexdigest()
    )
    assert by_name["shared-1.0-py3-none-any.whl"]["url"].startswith(any_server.repo_url(repos["shadowing"]))
    got = httpx.get(by_name["shared-1.0-py3-none-any.whl"]["url"])
    assert got.content == local_shared
    assert (
        httpx.get(by_name["shared-2.0-py3-none-any.whl"]["url"]).content
        == files["shared-2.0-py3-none-any.whl"]
    )


def test_group_leaves_proxy_files_out_of_a_project_a_hosted_member_holds(any_server, repos):
    page = json_page(any_server, repos["group"], "shared")
    assert [f["filename"] for f in page["files"]] == ["shared-1.0-py3-none-any.whl"]
    # ... and does not serve them either (the engine's dependency-confusion guard).
    assert (
        httpx.get(
            f"{any_server.repo_url(repos['group'])}packages/shared/shared-2.0-py3-none-any.whl"
        ).status_code
        == 404
    )
    # A project only the proxy has is merged in.
    assert [f["filename"] for f in json_page(any_server, repos["group"], "remote-lib")["files"]][
        0
    ].startswith("remote_lib-1.0")


def test_group_root_index_is_the_union_of_its_members(any_server, repos):
    html = httpx.get(f"{any_server.repo_url(repos['group'])}simple/")
    names = [a.text for a in lxml.html.fromstring(html.content).iter("a")]
    assert names == ["app", "remote-lib", "shared"]


@SQLITE_ONLY
def test_pip_installs_through_a_group_a_hosted_package_whose_dependency_is_only_upstream(
    any_server, repos, tmp_path, env
):
    python = fresh_venv(tmp_path / "venv")
    result = pip_install(python, f"{any_server.repo_url(repos['group'])}simple/", env, "app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully installed app-1.0 remote-lib-2.0" in result.stdout
    assert imported(python, "remote_lib") == "remote-lib 2.0"


@SQLITE_ONLY
def test_uv_installs_through_a_group_a_hosted_package_whose_dependency_is_only_upstream(
    any_server, repos, tmp_path, env
):
    python = fresh_venv(tmp_path / "venv")
    result = uv_install(python, f"{any_server.repo_url(repos['group'])}simple/", env, "app", "shared")
    assert result.returncode == 0, result.stdout + result.stderr
    assert imported(python, "remote_lib") == "remote-lib 2.0"
    assert imported(python, "local_shared") == "shared 1.0"  # the hosted shared, not the upstream one


def test_group_writes_go_to_its_write_member(any_server, repos):
    group = any_server.create_repo(
        "pypi", "group", members=[repos["local"], repos["proxy"]], write_member=repos["local"]
    )
    put(any_server, group, "written-1.0-py3-none-any.whl", wheel_bytes("written", "1.0"))
    assert httpx.get(f"{any_server.repo_url(repos['local'])}simple/written/").status_code == 200
    assert httpx.get(f"{any_server.repo_url(group)}simple/written/").status_code == 200


# -- a static HTML upstream with files on another host ---------------------------------------------
class Recording(SimpleHTTPRequestHandler):
    def __init__(self, *args, log: list[str], **kwargs):
        self.log_list = log
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802
        self.log_list.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


class Static:
    def __init__(self, directory: Path) -> None:
        self.requests: list[str] = []
        handler = functools.partial(Recording, directory=str(directory), log=self.requests)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def html_upstream(tmp_path):
    files_dir, index_dir = tmp_path / "files", tmp_path / "index"
    (files_dir / "f").mkdir(parents=True)
    files = Static(files_dir)
    index = Static(index_dir)
    wheel = wheel_bytes("static-pkg", "1.0", requires_python=">=3.7")
    yanked = wheel_bytes("static-pkg", "0.9")
    (files_dir / "f" / "static_pkg-1.0-py3-none-any.whl").write_bytes(wheel)
    (files_dir / "f" / "static_pkg-0.9-py3-none-any.whl").write_bytes(yanked)
    (index_dir / "simple" / "static-pkg").mkdir(parents=True)
    (index_dir / "simple" / "static-pkg" / "index.html").write_text(
        "<html><body>"
        f'<a href="{files.url}/f/static_pkg-1.0-py3-none-any.whl#sha256={hashlib.sha256(wheel).hexdigest()}" '
        'data-requires-python="&gt;=3.7">static_pkg-1.0-py3-none-any.whl</a>'
        f'<a href="{files.url}/f/static_pkg-0.9-py3-none-any.whl" data-yanked="old">'
        "static_pkg-0.9-py3-none-any.whl</a>"
        '<a href="../../elsewhere/evil/..%2F..%2Fpasswd">../../passwd</a>'
        "</body></html>"
    )
    (index_dir / "simple" / "index.html").write_text(
        '<html><body><a href="static-pkg/">static-pkg</a></body></html>'
    )
    try:
        yield index, files, {"1.0": wheel, "0.9": yanked}
    finally:
        index.stop()
        files.stop()


def test_html_upstream_with_files_on_another_host_is_proxied(any_server, html_upstream):
    index, files, wheels = html_upstream
    proxy = any_server.create_repo("pypi", "proxy", url=f"{index.url}/simple/")
    page = json_page(any_server, proxy, "static-pkg")
    by_name = {f["filename"]: f for f in page["files"]}
    assert sorted(by_name) == ["static_pkg-0.9-py3-none-any.whl", "static_pkg-1.0-py3-none-any.whl"]
    current = by_name["static_pkg-1.0-py3-none-any.whl"]
    assert current["hashes"] == {"sha256": hashlib.sha256(wheels["1.0"]).hexdigest()}
    assert current["requires-python"] == ">=3.7"
    assert (
        current["url"] == f"{any_server.repo_url(proxy)}packages/static-pkg/static_pkg-1.0-py3-none-any.whl"
    )
    assert by_name["static_pkg-0.9-py3-none-any.whl"]["yanked"] == "old"
    assert httpx.get(current["url"]).content == wheels["1.0"]
    assert httpx.get(current["url"]).content == wheels["1.0"]
    assert (
        files.requests.count("/f/static_pkg-1.0-py3-none-any.whl") == 1
    )  # fetched once, then from the cache
    names = httpx.get(f"{any_server.repo_url(proxy)}simple/", headers={"Accept": JSON}).json()["projects"]
    assert names == [{"name": "static-pkg"}]


def test_upstream_down_keeps_serving_the_cached_page_and_files(any_server, html_upstream):
    index, files, wheels = html_upstream
    proxy = any_server.create_repo("pypi", "proxy", url=f"{index.url}/simple/", metadata_ttl_seconds=0)
    html = httpx.get(f"{any_server.repo_url(proxy)}simple/static-pkg/")
    assert html.status_code == 200
    url = f"{any_server.repo_url(proxy)}packages/static-pkg/static_pkg-1.0-py3-none-any.whl"
    assert httpx.get(url).content == wheels["1.0"]
    index.stop()
    files.stop()
    again = httpx.get(f"{any_server.repo_url(proxy)}simple/static-pkg/")
    assert again.status_code == 200
    assert again.text == html.text
    assert httpx.get(url).content == wheels["1.0"]


@SQLITE_ONLY
def test_pip_installs_through_a_proxy_of_an_html_index(any_server, html_upstream, tmp_path, env):
    index, _files, _wheels = html_upstream
    proxy = any_server.create_repo("pypi", "proxy", url=f"{index.url}/simple/")
    python = fresh_venv(tmp_path / "venv")
    result = pip_install(python, f"{any_server.repo_url(proxy)}simple/", env, "static-pkg")
    assert result.returncode == 0, result.stdout + result.stderr
    assert imported(python, "static_pkg") == "static-pkg 1.0"
