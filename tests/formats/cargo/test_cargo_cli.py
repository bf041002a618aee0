"""The real `cargo` against hosted, proxy and group registries of ours (never any public registry):
publish to two hosted repositories, build a consumer through a group of (hosted, proxy of the other),
yank and unyank, owners."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.formats.cargo.conftest import Registry
from tests.formats.cargo.helpers import cargo, cargo_home, index_lines, library

CONSUMER = """fn main() {
    println!("{} + {}", mylib::which(), updep::which());
}
"""


@pytest.fixture(scope="module")
def repos(registry: Registry) -> Registry:
    server = registry.server
    server.create_repo("cargo", name="cargo-hosted")
    server.create_repo("cargo", name="cargo-upstream")
    server.create_repo("cargo", "proxy", name="cargo-proxy", url=registry.url("cargo-upstream"))
    server.create_repo("cargo", "group", name="cargo-all", members=["cargo-hosted", "cargo-proxy"])
    return registry


@pytest.fixture(scope="module")
def env(repos: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    registries = {name: repos.url(f"cargo-{name}") for name in ("hosted", "upstream")}
    registries["local"] = repos.url("cargo-all")
    # cargo sends the token as the bare Authorization value.
    return cargo_home(
        tmp_path_factory.mktemp("cargo"), registries, {"hosted": repos.token, "upstream": repos.token}
    )


def consumer(root: Path, name: str) -> Path:
    deps = 'mylib = { version = "0.1", registry = "local" }\nupdep = { version = "1", registry = "local" }\n'
    folder = library(root, name, "0.1.0", deps=deps)
    (folder / "src" / "lib.rs").unlink()
    (folder / "src" / "main.rs").write_text(CONSUMER)
    return folder


def test_publish_to_hosted_and_upstream_then_build_through_the_group(repos, env, tmp_path):
    cargo(
        env,
        library(tmp_path, "updep", "1.0.0"),
        "publish",
        "--registry",
        "upstream",
        "--allow-dirty",
        "--no-verify",
    )
    cargo(
        env,
        library(tmp_path, "mylib", "0.1.0"),
        "publish",
        "--registry",
        "hosted",
        "--allow-dirty",
        "--no-verify",
    )

    run = cargo(env, consumer(tmp_path, "app"), "run", "--quiet")

    assert run.stdout.strip() == "mylib 0.1.0 + updep 1.0.0"
    # updep came through the proxy: its .crate is now cached there, verified against the index's cksum.
    cached = httpx.get(repos.url("cargo-proxy") + "api/v1/crates/updep/1.0.0/download")
    line = index_lines(httpx.get(repos.url("cargo-upstream") + "up/de/updep"))[0]
    assert cached.status_code == 200
    assert line["cksum"] == hashlib.sha256(cached.content).hexdigest()


def test_yank_hides_a_version_from_new_resolutions_and_unyank_restores_it(repos, env, tmp_path):
    hosted = library(tmp_path, "mylib", "0.1.0")
    index = repos.url("cargo-all") + "my/li/mylib"
    cargo(env, hosted, "yank", "--registry", "hosted", "mylib@0.1.0")
    assert index_lines(httpx.get(index))[0]["yanked"] is True

    refused = cargo(env, consumer(tmp_path, "fresh"), "generate-lockfile", check=False)
    assert refused.returncode != 0 and "mylib" in refused.stderr

    cargo(env, hosted, "yank", "--registry", "hosted", "--undo", "mylib@0.1.0")
    assert index_lines(httpx.get(index))[0]["yanked"] is False
    cargo(env, consumer(tmp_path, "fresh"), "generate-lockfile")


def test_owners_lists_the_publisher_and_explains_that_roles_decide(repos, env, tmp_path):
    # GET requests pass the server's own authentication first, which knows only schemes: cargo
    # then needs the token written as "Bearer <token>" (publish, yank and owners changes do not).
    bearer = {**env, "CARGO_REGISTRIES_HOSTED_TOKEN": f"Bearer {repos.token}"}
    listed = cargo(bearer, tmp_path, "owner", "--registry", "hosted", "--list", "mylib")
    assert listed.stdout.strip().startswith("user-")

    added = cargo(env, tmp_path, "owner", "--registry", "hosted", "--add", "someone", "mylib", check=False)
    assert added.returncode != 0
    assert "write privilege on repository cargo-hosted" in added.stderr
