"""What the routes ask the repository service for, in Maven terms, besides index documents.

- `checksum_verdict`: a proxy checks each fetched file against the upstream's `.sha1` before caching
  it (called from MavenFormat.verify_fetched) under its `checksum_policy`.
- `apply_retention`: keep the newest N builds of a SNAPSHOT version.
"""

from __future__ import annotations

import logging

from artifactory_formats.maven.coordinates import Artifact, try_artifact
from artifactory_formats.maven.upload import InvalidUpload, read_checksum

from artifactory.plugin import SYSTEM, Repo, Repositories

log = logging.getLogger(__name__)


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
