"""Management of a hosted project: yank and unyank (PEP 592), delete a file, a release or a project.

Shared by the admin API and the command line. Every change goes through the repository service, which
moves the project's generation in the same transaction, so its pages are rebuilt on their next read.
"""

from __future__ import annotations

import json
from typing import Any

from artifactory_formats.pypi.coordinates import METADATA_SUFFIX, normalize, yanked_path
from packaging.version import InvalidVersion, Version

from artifactory.plugin import (
    SYSTEM,
    Access,
    BadRequest,
    NotFound,
    Principal,
    Repo,
    Repositories,
)

HOSTED = "hosted"


def hosted_repository(repos: Repositories, acc: Access, name: str, principal: Principal, action: str) -> Repo:
    """The hosted pypi repository `name`, once `principal` may `action` in it.

    Permission comes first: a repository the caller may not see answers the same 404 as one that does
    not exist, whatever its format or type, so these routes tell an outsider nothing about it.
    """
    repo = repos.find(name)
    visible = repo is not None and any(acc.allowed(principal, name, a) for a in ("read", action))
    if repo is None or not visible or repo.format != "pypi":
        raise NotFound(f"pypi repository {name!r} not found")
    if repo.type != HOSTED:
        raise BadRequest(f"{repo.name} is a {repo.type} repository: yank and delete work on hosted ones")
    acc.require(principal, repo, action)
    return repo


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


async def _paths(
    repos: Repositories, repo: Repo, project: str, version: str | None
) -> list[tuple[str, str, str]]:
    """(path, filename, version) of the project's files, optionally of one release."""
    found = []
    for component in await repos.components(repo, name=normalize(project)):
        if version is not None and not _same_version(component.version, version):
            continue
        for asset in component.assets:
            pypi = asset.attributes.get("pypi")
            if pypi and not asset.path.endswith(METADATA_SUFFIX):
                found.append((asset.path, str(pypi["filename"]), component.version))
    return found


async def yank(
    repos: Repositories,
    acc: Access,
    repository: str,
    project: str,
    principal: Principal,
    *,
    version: str | None = None,
    filename: str | None = None,
    reason: str = "",
    undo: bool = False,
) -> dict[str, Any]:
    """Mark a release (or one file) yanked, or clear the mark; answers what is yanked afterwards."""
    repo = hosted_repository(repos, acc, repository, principal, "write")
    if (version is None) == (filename is None):
        raise BadRequest("yank either a version or a filename")
    project = normalize(project)
    files = await _paths(repos, repo, project, version)
    if filename is not None:
        files = [f for f in files if f[1] == filename]
    if not files:
        what = f"version {version}" if version is not None else f"file {filename}"
        raise NotFound(f"{project} has no {what} in {repo.name}")
    key, name = ("versions", files[0][2]) if version is not None else ("files", str(filename))

    def transform(old: bytes | None) -> bytes | None:
        marks: dict[str, Any] = json.loads(old) if old else {}
        marks.setdefault("versions", {})
        marks.setdefault("files", {})
        if undo:
            marks[key].pop(name, None)
        else:
            marks[key][name] = reason
        return json.dumps(marks, sort_keys=True).encode()

    await repos.update_document(repo, yanked_path(project), transform, principal)
    return {"project": project, key[:-1]: name, "yanked": not undo, "reason": None if undo else reason}


async def delete(
    repos: Repositories,
    acc: Access,
    repository: str,
    project: str,
    principal: Principal,
    *,
    version: str | None = None,
    filename: str | None = None,
) -> list[str]:
    """Delete a file, a release or a whole project (with their .metadata files and yank marks)."""
    repo = hosted_repository(repos, acc, repository, principal, "delete")
    project = normalize(project)
    files = await _paths(repos, repo, project, version)
    if filename is not None:
        files = [f for f in files if f[1] == filename]
    if not files:
        raise NotFound(f"nothing to delete for {project} in {repo.name}")
    deleted = []
    for path, name, _version in files:
        if await repos.delete(repo, path, principal) is not None:  # its .metadata goes with it
            deleted.append(name)
    if version is None and filename is None:
        await repos.update_document(repo, yanked_path(project), lambda old: None, SYSTEM)
    return deleted
