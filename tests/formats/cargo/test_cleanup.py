"""Cleanup policies on a Cargo hosted repository, on SQLite and PostgreSQL: "keep the newest N" keeps
the newest crate versions by SemVer precedence, and the prerelease rule applies to crates."""

from __future__ import annotations

import httpx

from tests.artifactory.test_cleanup import age, cleanup, policy, unique, versions
from tests.formats.cargo.conftest import Registry
from tests.formats.cargo.helpers import index_lines, publish_body


def hosted_with_policy(registry: Registry, **rules: int) -> str:
    with registry.server.client() as admin:
        name = policy(admin, **rules)
    return registry.server.create_repo("cargo", name=unique("cargo"), cleanup_policies=[name])


def publish(registry: Registry, repo: str, name: str, *versions: str) -> None:
    for version in versions:
        response = httpx.put(
            registry.url(repo) + "api/v1/crates/new",
            content=publish_body(name, version),
            headers={"Authorization": registry.token},
            timeout=60,
        )
        assert response.status_code == 200, response.text


def listed(registry: Registry, repo: str, name: str) -> dict[str, bool]:
    """version -> yanked, as the crate's index file says."""
    response = httpx.get(registry.url(repo) + f"{name[:2]}/{name[2:4]}/{name}")
    assert response.status_code == 200, response.text
    return {line["vers"]: line["yanked"] for line in index_lines(response)}


def test_keep_newest_keeps_the_newest_crate_versions_by_semver_precedence(registry: Registry) -> None:
    repo = hosted_with_policy(registry, keep_newest=2)
    publish(registry, repo, "ordered", "0.9.0", "0.10.0", "1.0.0-alpha.2", "1.0.0-rc.1", "1.0.0")
    yank = httpx.delete(
        registry.url(repo) + "api/v1/crates/ordered/0.9.0/yank", headers={"Authorization": registry.token}
    )
    assert yank.status_code == 200, yank.text
    # Newest first: 1.0.0, 1.0.0-rc.1 | 1.0.0-alpha.2, 0.10.0, 0.9.0 (a release after its
    # prereleases, 0.10.0 after 0.9.0); the yanked list is no version and stays.
    assert versions(cleanup(registry.server, repo)) == {"1.0.0-alpha.2", "0.10.0", "0.9.0"}
    assert listed(registry, repo, "ordered") == {"1.0.0-rc.1": False, "1.0.0": False}
    download = registry.url(repo) + "api/v1/crates/ordered/{}/download"
    assert httpx.get(download.format("1.0.0-alpha.2")).status_code == 404
    assert httpx.get(download.format("1.0.0")).status_code == 200


def test_prereleases_of_crates_go_once_older_than_the_rule(registry: Registry) -> None:
    repo = hosted_with_policy(registry, prerelease_older_than_days=10)
    publish(registry, repo, "staged", "2.0.0", "2.1.0-rc.1", "2.2.0-beta.1")
    age(registry.server, repo, 30, "2.0.0")
    age(registry.server, repo, 30, "2.1.0-rc.1")
    # 2.0.0 is old but no prerelease; 2.2.0-beta.1 is a prerelease but new.
    assert versions(cleanup(registry.server, repo)) == {"2.1.0-rc.1"}
    assert listed(registry, repo, "staged") == {"2.0.0": False, "2.2.0-beta.1": False}
