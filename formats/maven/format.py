"""Maven 2 repositories: hosted (releases, snapshots or both), proxy and group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from artifactory_formats.maven import content, documents, routes
from artifactory_formats.maven import coordinates as layout
from artifactory_formats.maven.coordinates import (
    is_snapshot,
    split_checksum,
    try_artifact,
)
from starlette.routing import BaseRoute

from artifactory.plugin import (
    NOTHING_NEEDED,
    BlobInfo,
    CachePolicy,
    ComponentInfo,
    Coordinates,
    Format,
    HostedView,
    IndexKey,
    Parsed,
    RenderContext,
    Rendered,
    Repo,
    UpstreamDocument,
)

VERSION_POLICIES = ("release", "snapshot", "mixed")
CHECKSUM_POLICIES = ("strict", "warn", "off")
HOSTED_KEYS = {"version_policy": "release", "snapshot_retention": 0}
PROXY_KEYS = {"checksum_policy": "strict"}
CONTENT_TYPES = {
    "pom": "application/xml",
    "xml": "application/xml",
    "jar": "application/java-archive",
    "war": "application/java-archive",
    "ear": "application/java-archive",
    "module": "application/json",
    "json": "application/json",
    "asc": "application/pgp-signature",
    "md5": "text/plain",
    "sha1": "text/plain",
    "sha256": "text/plain",
    "sha512": "text/plain",
}


class MavenFormat(Format):
    id = "maven"
    config_keys = (*HOSTED_KEYS, *PROXY_KEYS)

    def routes(self) -> Sequence[BaseRoute]:
        return routes.ROUTES

    def validate_config(self, repo_type: str, config: dict[str, Any]) -> dict[str, Any]:
        own = HOSTED_KEYS if repo_type == "hosted" else PROXY_KEYS if repo_type == "proxy" else {}
        for key in (*HOSTED_KEYS, *PROXY_KEYS):
            if key in config and key not in own:
                raise ValueError(f"{key} does not apply to a maven {repo_type} repository")
        for key, default in own.items():
            config.setdefault(key, default)
        if repo_type == "hosted":
            if config["version_policy"] not in VERSION_POLICIES:
                raise ValueError(f"version_policy must be one of {', '.join(VERSION_POLICIES)}")
            keep = config["snapshot_retention"]
            if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
                raise ValueError("snapshot_retention must be a whole number of builds (0 keeps every build)")
        if repo_type == "proxy" and config["checksum_policy"] not in CHECKSUM_POLICIES:
            raise ValueError(f"checksum_policy must be one of {', '.join(CHECKSUM_POLICIES)}")
        return config

    def default_write_policy(self, config: dict[str, Any]) -> str:
        # A release is deployed once; snapshot builds are new files every time anyway.
        return "allow" if config.get("version_policy") == "snapshot" else "allow_once"

    def coordinates(self, path: str) -> Coordinates | None:
        artifact = try_artifact(path)
        if artifact is None:
            return None
        return Coordinates(
            name=artifact.artifact_id, version=artifact.base_version, namespace=artifact.group_id
        )

    def cache_policy(self, path: str) -> CachePolicy:
        artifact = try_artifact(split_checksum(path)[0])
        if artifact is None or is_snapshot(artifact.base_version):
            return CachePolicy.METADATA
        return CachePolicy.IMMUTABLE

    # -- maven-metadata.xml (formats/maven/documents.py) -----------------------------------------
    async def build(self, key: IndexKey, hosted: HostedView) -> Any:
        return await documents.build(key, hosted)

    def index_source(self, key: IndexKey) -> str | None:
        """An artifact's (or a snapshot version's) maven-metadata.xml is built from that artifact's
        components alone; a groupId's plugin list is not (whole_repository: built everywhere)."""
        return "" if key.kind == documents.METADATA_KIND else None

    def upstream_document(self, key: IndexKey) -> UpstreamDocument | None:
        return documents.upstream_document(key)

    def parse(
        self, key: IndexKey, body: bytes, url: str, needed: Mapping[IndexKey, Any] = NOTHING_NEEDED
    ) -> Parsed | None:
        return documents.parse(key, body)

    def merge(self, key: IndexKey, models: Sequence[Any]) -> Any:
        return documents.merge(key, models)

    def media_types(self, key: IndexKey) -> Sequence[str]:
        return documents.media_types(key)

    def render(self, key: IndexKey, model: Any, context: RenderContext) -> Rendered:
        return documents.render(key, model, context)

    def declared_by(self, path: str) -> IndexKey | None:
        """None: maven-metadata.xml names versions, not files or their digests. A proxy fetches a
        file at its own path and checks it against the upstream's .sha1 (`verify_fetched`), which
        the repository's checksum_policy may relax."""
        return None

    async def verify_fetched(
        self, repo: Repo, path: str, blob: BlobInfo, fetch: Callable[[str], Awaitable[bytes | None]]
    ) -> None:
        if repo.config.get("checksum_policy", "strict") == "off":
            return
        base, algorithm = split_checksum(path)
        if algorithm is not None or path.endswith(".asc"):
            return
        problem = content.checksum_verdict(repo, path, blob.sha1, await fetch(path + ".sha1"))
        if problem is not None:
            raise ValueError(problem)

    def siblings_checked(self, repo: Repo, path: str) -> Sequence[str]:
        """The .sha1 `verify_fetched` reads (none under checksum_policy off, none for a checksum or
        a signature)."""
        _base, algorithm = split_checksum(path)
        if content.checksum_policy(repo) == "off" or algorithm is not None or path.endswith(".asc"):
            return ()
        return (path + ".sha1",)

    def verifies_whole_file(self, repo: Repo, path: str) -> bool:
        """Under `strict` a file that does not match the upstream's .sha1 is refused (502): the
        client must get none of it before it is checked."""
        _base, algorithm = split_checksum(path)
        return content.checksum_policy(repo) == "strict" and algorithm is None and not path.endswith(".asc")

    def content_type(self, path: str) -> str | None:
        name = path.rsplit("/", 1)[-1]
        return CONTENT_TYPES.get(name.rpartition(".")[2])

    # -- cleanup policies ------------------------------------------------------------------------
    def version_key(self, version: str) -> Any:
        """Maven's ComparableVersion order: 1.0-alpha-1 < 1.0-rc1 < 1.0-SNAPSHOT < 1.0 < 1.0-sp1."""
        return layout.version_key(version)

    def is_prerelease(self, version: str) -> bool:
        """A SNAPSHOT, or a version with a qualifier Maven orders before the release (alpha, beta,
        milestone, rc)."""
        return is_snapshot(version) or _has_pre_qualifier(layout._parsed(version))

    async def protected_versions(
        self, repositories: Any, repo: Repo, namespace: str, name: str, components: Sequence[ComponentInfo]
    ) -> set[str]:
        """The `latest` and `release` that maven-metadata.xml names: a hosted repository computes
        them from exactly these versions, and of a proxy's cache these are the newest it holds."""
        versions = sorted({c.version for c in components if c.assets}, key=layout.version_key)
        releases = [v for v in versions if not is_snapshot(v)]
        return set(versions[-1:] + releases[-1:])


def _has_pre_qualifier(item: Any) -> bool:
    if isinstance(item, layout._Str):
        return item.key < layout._RELEASE_INDEX
    if isinstance(item, layout._List):
        return any(_has_pre_qualifier(child) for child in item.items)
    return False
