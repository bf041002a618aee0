"""What the routes ask the repository service for, in Maven terms, besides index documents.

- `listing`: a folder's entries; inside a groupId:artifactId that a hosted repository of the group
  holds, a group lists no proxy's cache (the versions it would not serve).
- `checksum_verdict`: a proxy checks each fetched file against the upstream's `.sha1` before caching
  it (called from MavenFormat.verify_fetched) under its `checksum_policy`.
- `apply_retention`: keep the newest N builds of a SNAPSHOT version.
"""

from __future__ import annotations

import logging

from artifactory_formats.maven import documents
from artifactory_formats.maven.coordinates import Artifact, try_artifact
from artifactory_formats.maven.upload import InvalidUpload, read_checksum

from artifactory.plugin import SYSTEM, Entry, Principal, Repo, Repositories

log = logging.getLogger(__name__)


# -- listings --------------------------------------------------------------------------------------
async def listing(service: Repositories, repo: Repo, prefix: str, principal: Principal) -> list[Entry]:
    """The entries under `prefix`. A group leaves its proxies out below a groupId:artifactId folder
    that a hosted member holds: their cached versions are ones the group would not serve."""
    if repo.type != "group" or not await _guarded_folder(service, repo, prefix):
        entries = await service.listing(repo, prefix, principal)
    else:
        entries = await _listing_without_proxies(service, repo, prefix, principal, frozenset())
    # No Maven path starts with a dot: what does at the root is the engine's own (a proxy's cache
    # of upstream documents under .index/), not the repository's content.
    return [e for e in entries if prefix or not e.name.startswith(".")]


async def _guarded_folder(service: Repositories, group: Repo, prefix: str) -> bool:
    """Whether `prefix` is at or below a groupId:artifactId folder that a hosted repository anywhere
    in the group holds. Asked through the engine's group walk as the system (the guard does not
    depend on who asks) with a document only hosted repositories build."""
    if group.config.get("allow_proxy_shadowing", False):
        return False
    folders = prefix.rstrip("/").split("/") if prefix else []
    # g/a/ and anything below it; a folder can be read as g/a at several depths (a.b/c or a/b.c).
    for depth in range(1, len(folders)):
        key = documents.held_key(".".join(folders[:depth]), folders[depth])
        if await service.index_model(group, key, SYSTEM) is not None:
            return True
    return False


async def _listing_without_proxies(
    service: Repositories, repo: Repo, prefix: str, principal: Principal, seen: frozenset[str]
) -> list[Entry]:
    names: dict[str, Entry] = {}
    for member in service.members(repo, principal):
        if member.type == "proxy" or member.name in seen:
            continue
        if member.type == "group":
            entries = await _listing_without_proxies(service, member, prefix, principal, seen | {repo.name})
        else:
            entries = await service.listing(member, prefix, principal)
        for entry in entries:
            names.setdefault(entry.name, entry)
    return sorted(names.values(), key=lambda e: (not e.is_folder, e.name))


# -- files -----------------------------------------------------------------------------------------
def checksum_policy(repo: Repo) -> str:
    return str(repo.config.get("checksum_policy", "strict"))


def checksum_verdict(repo: Repo, path: str, received_sha1: str, published: bytes | None) -> str | None:
    """None when a fetched file may be cached; else why not. A missing or unreadable upstream
    checksum is not a failure; a mismatch is (under `warn` it is only logged)."""
    if published is None:
        return None
    try:
        expected = read_checksum(published, "sha1")
    except (InvalidUpload, ValueError):
        log.warning("proxy %s: upstream %s.sha1 is not a SHA-1 checksum", repo.name, path)
        return None
    if expected == received_sha1:
        return None
    message = (
        f"{path} does not match the upstream's SHA-1 checksum "
        f"(published {expected}, received {received_sha1})"
    )
    if checksum_policy(repo) == "warn":
        log.warning("proxy %s: %s; cached anyway (checksum_policy warn)", repo.name, message)
        return None
    log.error("proxy %s: %s; not cached (checksum_policy strict)", repo.name, message)
    return message


# -- snapshot retention ----------------------------------------------------------------------------
async def apply_retention(service: Repositories, repo: Repo, artifact: Artifact) -> list[str]:
    """Delete every build of artifact's SNAPSHOT version but the newest `snapshot_retention`."""
    keep = int(repo.config.get("snapshot_retention") or 0)
    if keep <= 0 or not artifact.timestamped:
        return []
    builds: dict[tuple[int, str], list[str]] = {}
    components = await service.components(
        repo, name=artifact.artifact_id, namespace=artifact.group_id, version=artifact.base_version
    )
    for component in components:
        for asset in component.assets:
            found = try_artifact(asset.path)
            if found is not None and found.timestamped:
                builds.setdefault((found.build_number, found.timestamp), []).append(asset.path)
    removed: list[str] = []
    for build in sorted(builds)[:-keep]:
        for path in builds[build]:
            if await service.delete(repo, path, SYSTEM) is not None:
                removed.append(path)
    return removed
