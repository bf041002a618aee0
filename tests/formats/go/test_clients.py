"""The go command against hosted, proxy and group Go repositories, on SQLite and PostgreSQL.

go-upstream (hosted) is what go-proxy proxies; go-all = (go-hosted, go-proxy). go-hosted holds
example.com/lib (which requires example.com/dep, found only upstream) and example.com/Mixed (a
case-encoded path); go-upstream holds example.com/dep and a newer example.com/lib that the group
must not offer, since a hosted member holds that name (dependency confusion).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import LiveServer
from tests.formats.go.conftest import go, go_env, module_zip, put_zip

LIB_GOMOD = "module example.com/lib\n\ngo 1.19\n\nrequire example.com/dep v0.1.0\n"
LIB_GO = 'package lib\n\nimport "example.com/dep"\n\nfunc Value() string { return "lib+" + dep.Value() }\n'
DEP_GO = 'package dep\n\nfunc Value() string { return "dep" }\n'
MIXED_GO = 'package mixed\n\nconst Name = "Mixed"\n'
MAIN_GO = (
    'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/Mixed"\n\t"example.com/lib"\n)\n\n'
    "func main() { fmt.Println(lib.Value(), mixed.Name) }\n"
)


@pytest.fixture(scope="module", params=DATABASES)
def live(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    with live_server(request, "go") as server:
        server.create_repo("go", name="go-upstream")
        server.create_repo("go", name="go-hosted")
        server.create_repo("go", "proxy", name="go-proxy", url=server.repo_url("go-upstream"))
        server.create_repo("go", "group", name="go-all", members=["go-hosted", "go-proxy"])
        uploads = [
            ("go-upstream", "example.com/dep", "v0.1.0", {"dep.go": DEP_GO}, None),
            ("go-upstream", "example.com/lib", "v1.2.0", None, None),
            ("go-hosted", "example.com/lib", "v1.0.0", {"lib.go": LIB_GO}, LIB_GOMOD),
            ("go-hosted", "example.com/Mixed", "v1.0.0", {"m.go": MIXED_GO}, None),
        ]
        for repo, module, version, files, gomod in uploads:
            response = put_zip(server, repo, module, version, module_zip(module, version, files, gomod))
            assert response.status_code == 201, response.text
        yield server


def test_go_get_through_the_group_builds_a_hosted_module_with_a_proxied_dependency(
    live: LiveServer, tmp_path: Path
) -> None:
    env = go_env(tmp_path / "home", live.repo_url("go-all"))
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.go").write_text(MAIN_GO)
    assert go(["mod", "init", "example.com/app"], app, env).returncode == 0
    for target in ("example.com/lib@v1.0.0", "example.com/Mixed@v1.0.0"):
        result = go(["get", target], app, env)
        assert result.returncode == 0, result.stderr
    gomod = (app / "go.mod").read_text()
    assert "example.com/lib v1.0.0" in gomod and "example.com/dep v0.1.0" in gomod
    built = go(["run", "."], app, env)
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == "lib+dep Mixed"


def test_go_mod_download_fetches_a_proxied_module_into_an_empty_cache(
    live: LiveServer, tmp_path: Path
) -> None:
    env = go_env(tmp_path / "home", live.repo_url("go-all"))
    result = go(["mod", "download", "-json", "example.com/dep@v0.1.0"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert '"Version": "v0.1.0"' in result.stdout
    extracted = tmp_path / "home" / "modcache" / "example.com" / "dep@v0.1.0" / "dep.go"
    assert extracted.read_text() == DEP_GO


def test_go_resolves_latest_through_the_group_from_the_merged_list(live: LiveServer, tmp_path: Path) -> None:
    env = go_env(tmp_path / "home", live.repo_url("go-all"))
    result = go(["list", "-m", "-versions", "example.com/lib"], tmp_path, env)
    # The hosted member holds example.com/lib: the proxy's newer v1.2.0 is not offered.
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["example.com/lib", "v1.0.0"]
    latest = go(["list", "-m", "example.com/dep@latest"], tmp_path, env)
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout.split() == ["example.com/dep", "v0.1.0"]


def test_the_group_offers_no_upstream_version_of_a_module_a_hosted_member_holds(live: LiveServer) -> None:
    with live.client() as client:
        proxied = client.get("/repository/go-proxy/example.com/lib/@v/list")
        grouped = client.get("/repository/go-all/example.com/lib/@v/list")
        guarded_file = client.get("/repository/go-all/example.com/lib/@v/v1.2.0.info")
    assert proxied.text == "v1.2.0\n"
    assert grouped.text == "v1.0.0\n"
    assert guarded_file.status_code == 404
