"""The GOPROXY protocol over HTTP: what a hosted upload stores and serves, the version list and
@latest as hosted, proxy (of a loopback GOPROXY the test serves) and group build them, the write
policy and deletion. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import LiveServer
from tests.artifactory.test_cleanup import cleanup, policy, versions
from tests.formats.go.conftest import module_zip, put_zip, raw_zip

PSEUDO = "v0.0.0-20240102030405-abcdefabcdef"
UPSTREAM_ZIP = module_zip("example.com/far", "v0.3.0")
UPSTREAM: dict[str, bytes] = {
    # As the go command reads a list: the first field of each line, if it is a valid version.
    "/example.com/far/@v/list": b"v0.2.0 2024-01-01T00:00:00Z\nnot-a-version\n\nv0.3.0\nv0.10.0-rc.1\n",
    "/example.com/far/@latest": b'{"Version": "v0.3.0", "Time": "2024-02-01T00:00:00Z"}',
    "/example.com/far/@v/v0.3.0.zip": UPSTREAM_ZIP,
    "/example.com/html/@v/list": b"<!DOCTYPE html><html>sign in</html>",
}


class Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
        body = UPSTREAM.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module", params=DATABASES)
def live(request: pytest.FixtureRequest, upstream: str) -> Iterator[LiveServer]:
    with live_server(request, "goproto") as server:
        server.create_repo("go", name="go-a")
        server.create_repo("go", name="go-b")
        server.create_repo("go", "proxy", name="go-far", url=upstream)
        server.create_repo("go", "group", name="go-ab", members=["go-a", "go-b", "go-far"])
        yield server


def get(live: LiveServer, path: str) -> tuple[int, str, bytes]:
    with live.client(auth=None) as client:
        response = client.get(path)
    return response.status_code, response.headers.get("content-type", ""), response.content


def test_an_uploaded_zip_serves_its_zip_mod_and_info(live: LiveServer) -> None:
    data = module_zip("example.com/served", "v1.0.0", gomod="module example.com/served // the path\n")
    assert put_zip(live, "go-a", "example.com/served", "v1.0.0", data).status_code == 201
    base = "/repository/go-a/example.com/served/@v/v1.0.0"
    assert get(live, base + ".zip") == (200, "application/zip", data)
    assert get(live, base + ".mod")[2] == b"module example.com/served // the path\n"
    status, media_type, body = get(live, base + ".info")
    info = json.loads(body)
    assert (status, media_type, info["Version"]) == (200, "application/json", "v1.0.0")
    assert info["Time"].endswith("Z")
    assert get(live, "/repository/go-a/example.com/served/@v/list")[1:] == (
        "text/plain; charset=utf-8",
        b"v1.0.0\n",
    )
    assert json.loads(get(live, "/repository/go-a/example.com/served/@latest")[2]) == info


def test_a_zip_without_go_mod_gets_the_mod_the_go_command_would_synthesize(live: LiveServer) -> None:
    data = raw_zip({"example.com/legacy@v2.1.0+incompatible/legacy.go": b"package legacy\n"})
    assert put_zip(live, "go-a", "example.com/legacy", "v2.1.0+incompatible", data).status_code == 201
    mod = get(live, "/repository/go-a/example.com/legacy/@v/v2.1.0+incompatible.mod")
    assert mod[2] == b"module example.com/legacy\n"


def test_case_encoded_paths_name_the_module_with_upper_case(live: LiveServer) -> None:
    data = module_zip("example.com/Upper/Case", "v1.0.0-Beta")
    response = put_zip(live, "go-a", "example.com/Upper/Case", "v1.0.0-Beta", data)
    assert response.status_code == 201, response.text
    assert get(live, "/repository/go-a/example.com/!upper/!case/@v/list")[2] == b"v1.0.0-Beta\n"
    assert get(live, "/repository/go-a/example.com/!upper/!case/@v/v1.0.0-!beta.zip")[2] == data
    # Upper case in a URL is never a module path: only the encoded spelling names it.
    assert get(live, "/repository/go-a/example.com/Upper/Case/@v/list")[0] == 404


def test_the_list_leaves_out_pseudo_versions_and_latest_prefers_a_release(live: LiveServer) -> None:
    module = "example.com/pseudo"
    assert put_zip(live, "go-a", module, PSEUDO, module_zip(module, PSEUDO)).status_code == 201
    # The module exists (200) but lists no version: the go command then asks @latest.
    assert get(live, f"/repository/go-a/{module}/@v/list")[::2] == (200, b"")
    assert json.loads(get(live, f"/repository/go-a/{module}/@latest")[2])["Version"] == PSEUDO
    for version in ("v0.1.0", "v0.2.0-rc.1"):
        assert put_zip(live, "go-a", module, version, module_zip(module, version)).status_code == 201
    # Each upload is seen at once: the list is rebuilt under the module's new generation.
    assert get(live, f"/repository/go-a/{module}/@v/list")[2] == b"v0.1.0\nv0.2.0-rc.1\n"
    assert json.loads(get(live, f"/repository/go-a/{module}/@latest")[2])["Version"] == "v0.1.0"


def test_a_group_lists_the_union_of_its_hosted_members_versions(live: LiveServer) -> None:
    module = "example.com/shared"
    for repo, version in (("go-a", "v1.0.0"), ("go-b", "v1.1.0"), ("go-b", "v1.0.0")):
        assert put_zip(live, repo, module, version, module_zip(module, version)).status_code == 201
    assert get(live, f"/repository/go-ab/{module}/@v/list")[2] == b"v1.0.0\nv1.1.0\n"
    assert json.loads(get(live, f"/repository/go-ab/{module}/@latest")[2])["Version"] == "v1.1.0"
    # A file both members hold comes from the first.
    with live.client(auth=None) as client:
        first = client.get(f"/repository/go-a/{module}/@v/v1.0.0.zip").content
        assert client.get(f"/repository/go-ab/{module}/@v/v1.0.0.zip").content == first


def test_a_proxy_reads_an_upstream_list_as_the_go_command_does(live: LiveServer) -> None:
    for repo in ("go-far", "go-ab"):
        status, media_type, body = get(live, f"/repository/{repo}/example.com/far/@v/list")
        assert (status, body) == (200, b"v0.2.0\nv0.3.0\nv0.10.0-rc.1\n"), repo
        latest = json.loads(get(live, f"/repository/{repo}/example.com/far/@latest")[2])
        assert latest == {"Version": "v0.3.0", "Time": "2024-02-01T00:00:00Z"}
        assert get(live, f"/repository/{repo}/example.com/far/@v/v0.3.0.zip")[2] == UPSTREAM_ZIP
    assert get(live, "/repository/go-far/example.com/missing/@v/list")[0] == 404


def test_an_upstream_that_sends_html_for_a_list_is_a_bad_gateway(live: LiveServer) -> None:
    status, media_type, body = get(live, "/repository/go-far/example.com/html/@v/list")
    assert status == 502 and media_type.startswith("text/plain")
    assert b"HTML" in body


def test_a_version_is_stored_once_and_never_again_after_deletion(live: LiveServer) -> None:
    module, data = "example.com/once", module_zip("example.com/once", "v1.0.0")
    assert put_zip(live, "go-a", module, "v1.0.0", data).status_code == 201
    again = put_zip(live, "go-a", module, "v1.0.0", module_zip(module, "v1.0.0", {"x.go": "package once\n"}))
    assert again.status_code == 400 and "allow_once" in again.text
    with live.client() as admin:
        assert admin.delete(f"/repository/go-a/{module}/@v/v1.0.0.zip").status_code == 204
    for ext in ("zip", "mod", "info"):
        assert get(live, f"/repository/go-a/{module}/@v/v1.0.0.{ext}")[0] == 404
    assert get(live, f"/repository/go-a/{module}/@v/list")[0] == 404
    assert put_zip(live, "go-a", module, "v1.0.0", data).status_code == 400


def test_a_mod_uploaded_first_must_match_the_zip(live: LiveServer) -> None:
    module = "example.com/modfirst"
    with live.client() as admin:
        gomod = b"module example.com/modfirst\n\ngo 1.19\n"
        assert admin.put(f"/repository/go-a/{module}/@v/v1.0.0.mod", content=gomod).status_code == 201
    other = put_zip(
        live, "go-a", module, "v1.0.0", module_zip(module, "v1.0.0", gomod="module example.com/modfirst\n")
    )
    assert other.status_code == 400 and "differs from the .mod" in other.text
    same = put_zip(live, "go-a", module, "v1.0.0", module_zip(module, "v1.0.0", gomod=gomod.decode()))
    assert same.status_code == 201, same.text
    assert get(live, f"/repository/go-a/{module}/@v/list")[2] == b"v1.0.0\n"


def put_mod(live: LiveServer, repo: str, module: str, gomod: bytes) -> int:
    with live.client() as admin:
        return admin.put(f"/repository/{repo}/{module}/@v/v1.0.0.mod", content=gomod).status_code


def delete(live: LiveServer, repo: str, module: str, ext: str) -> int:
    with live.client() as admin:
        return admin.delete(f"/repository/{repo}/{module}/@v/v1.0.0.{ext}").status_code


def test_no_mod_is_stored_for_a_version_whose_zip_was_deleted(live: LiveServer) -> None:
    module = "example.com/gone"
    assert put_zip(live, "go-a", module, "v1.0.0", module_zip(module, "v1.0.0")).status_code == 201
    assert delete(live, "go-a", module, "zip") == 204
    # Its zip can never come again (allow_once), so neither may a .mod to be served alone.
    with live.client() as admin:
        refused = admin.put(f"/repository/go-a/{module}/@v/v1.0.0.mod", content=b"module example.com/gone\n")
    assert refused.status_code == 400 and "allow_once" in refused.text
    assert get(live, f"/repository/go-a/{module}/@v/v1.0.0.mod")[0] == 404


def test_a_mod_uploaded_alone_may_be_deleted_and_retires_its_version(live: LiveServer) -> None:
    module = "example.com/alone"
    assert put_mod(live, "go-a", module, b"module example.com/alone\n") == 201
    assert delete(live, "go-a", module, "mod") == 204
    assert get(live, f"/repository/go-a/{module}/@v/v1.0.0.mod")[0] == 404
    # Clients may have pinned that go.mod's hash (go.sum): under allow_once the version is retired.
    again = put_zip(live, "go-a", module, "v1.0.0", module_zip(module, "v1.0.0"))
    assert again.status_code == 400 and "allow_once" in again.text


def test_the_mod_and_info_of_a_stored_zip_are_neither_replaced_nor_deleted_alone(live: LiveServer) -> None:
    module = "example.com/pair"
    data = module_zip(module, "v1.0.0", gomod="module example.com/pair\n")
    assert put_zip(live, "go-a", module, "v1.0.0", data).status_code == 201
    with live.client() as admin:
        refused = admin.put(
            f"/repository/go-a/{module}/@v/v1.0.0.mod", content=b"module example.com/pair\n\n"
        )
    assert refused.status_code == 400 and "has a zip already" in refused.text
    assert (delete(live, "go-a", module, "mod"), delete(live, "go-a", module, "info")) == (405, 405)
    assert get(live, f"/repository/go-a/{module}/@v/v1.0.0.mod")[2] == b"module example.com/pair\n"


def test_under_write_policy_allow_a_lone_mod_is_replaced_or_deleted_and_its_zip_may_still_come(
    live: LiveServer,
) -> None:
    repo, module = live.create_repo("go", write_policy="allow"), "example.com/loose"
    assert put_mod(live, repo, module, b"module example.com/loose\n") == 201
    assert put_mod(live, repo, module, b"module example.com/loose\n\ngo 1.19\n") == 201
    assert delete(live, repo, module, "mod") == 204
    assert put_zip(live, repo, module, "v1.0.0", module_zip(module, "v1.0.0")).status_code == 201


def test_a_cleanup_policy_removes_a_versions_mod_and_info_with_its_zip(live: LiveServer) -> None:
    with live.client() as admin:
        repo = live.create_repo("go", cleanup_policies=[policy(admin, keep_newest=1)])
    module = "example.com/cleaned"
    for version in ("v1.0.0", "v1.1.0"):
        assert put_zip(live, repo, module, version, module_zip(module, version)).status_code == 201
    assert versions(cleanup(live, repo)) == {"v1.0.0"}
    for ext in ("zip", "mod", "info"):
        assert get(live, f"/repository/{repo}/{module}/@v/v1.0.0.{ext}")[0] == 404, ext
        assert get(live, f"/repository/{repo}/{module}/@v/v1.1.0.{ext}")[0] == 200, ext


def test_a_user_who_may_not_delete_learns_nothing_of_a_versions_zip_from_deleting_its_mod(
    live: LiveServer,
) -> None:
    module = "example.com/private"
    assert put_zip(live, "go-a", module, "v1.0.0", module_zip(module, "v1.0.0")).status_code == 201
    user = live.create_user([])
    with live.client(auth=user) as client:
        for version in ("v1.0.0", "v2.0.0+incompatible"):  # with a zip, and without
            assert client.delete(f"/repository/go-a/{module}/@v/{version}.mod").status_code == 403
