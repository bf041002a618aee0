"""npm: hosted, proxy and group registries for npm, pnpm and yarn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from artifactory_formats.npm import metadata, routes, safejson
from artifactory_formats.npm.coordinates import PackageName, parse_path, tarball_coordinates
from starlette.routing import BaseRoute

from artifactory.plugin import (
    CachePolicy,
    ComponentInfo,
    Coordinates,
    Format,
    HTTPProblem,
    Repo,
    Rewritten,
)

MIN_DOCUMENT = 1024 * 1024
MAX_DOCUMENT = 1024 * 1024 * 1024


def _is_packument(path: str) -> bool:
    parsed = parse_path(path)
    return parsed is not None and parsed.kind == "packument"


class NpmFormat(Format):
    id = "npm"
    encoded_path_characters = frozenset("/")
    config_keys = ("allow_user_registration", "max_document_bytes")

    def routes(self) -> Sequence[BaseRoute]:
        return routes.ROUTES

    def validate_config(self, repo_type: str, config: dict[str, Any]) -> dict[str, Any]:
        config.setdefault("allow_user_registration", False)
        if not isinstance(config["allow_user_registration"], bool):
            raise ValueError("allow_user_registration must be a boolean")
        limit = config.get("max_document_bytes")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not MIN_DOCUMENT <= limit <= MAX_DOCUMENT
        ):
            raise ValueError(
                f"max_document_bytes must be an integer from {MIN_DOCUMENT} to {MAX_DOCUMENT} (bytes)"
            )
        return config

    def coordinates(self, path: str) -> Coordinates | None:
        # A packument belongs to its package (no version): the group's dependency-confusion guard then
        # keeps a proxied packument out of a merge while a hosted member holds the package.
        parsed = parse_path(path)
        if parsed is not None and parsed.kind == "packument":
            return parsed.package.coordinates()
        return tarball_coordinates(path)

    def cache_policy(self, path: str) -> CachePolicy:
        return CachePolicy.METADATA if _is_packument(path) else CachePolicy.IMMUTABLE

    def is_mergeable(self, path: str) -> bool:
        return _is_packument(path)

    def merge_documents(self, path: str, documents: Sequence[bytes]) -> bytes:
        return metadata.merge(documents)

    def rewrites(self, path: str) -> bool:
        return _is_packument(path)

    def rewrite_upstream(self, repo: Repo, path: str, body: bytes, upstream_url: str) -> Rewritten:
        """Cache a proxied packument with tarball paths relative to the repository (absolute URLs
        are rendered per request); each tarball's absolute upstream URL goes into the links, and
        what its dist says it hashes to into the digests."""
        parsed = parse_path(path)
        if parsed is None or parsed.kind != "packument":
            return Rewritten(body)
        try:
            doc = safejson.loads(body, "the upstream packument", max_values=None)
        except HTTPProblem as exc:
            raise ValueError(exc.message) from None
        if not isinstance(doc, dict):
            raise ValueError("the upstream packument is not a JSON object")
        links = metadata.relativize(doc, parsed.package)
        # Each tarball must hash to what its version's dist.integrity (or shasum) says: the proxy
        # verifies that while it streams, and caches and serves nothing that does not match.
        return Rewritten(metadata.dump(doc), links, metadata.tarball_digests(doc, links))

    def content_type(self, path: str) -> str | None:
        return "application/json" if _is_packument(path) else "application/octet-stream"

    # -- cleanup policies ------------------------------------------------------------------------
    def version_key(self, version: str) -> Any:
        """semver precedence (1.0.0-rc.1 before 1.0.0); versions that are not semver first."""
        return metadata.semver_key(version)

    def is_prerelease(self, version: str) -> bool:
        key = metadata.semver_key(version)
        return key[1] is not None and bool(key[1].prerelease)

    def cleanup_versions(self, components: Sequence[ComponentInfo]) -> list[ComponentInfo]:
        return [c for c in components if c.version]  # the packument's component has no version

    async def _document(self, engine: Any, repo: Repo, package: PackageName) -> metadata.Doc | None:
        stored = await engine.db_call(engine.lookup, repo, package.path)
        if stored is None:
            return None
        try:
            return metadata.load(await engine.read_bytes(stored.sha256))
        except HTTPProblem:
            return None

    async def protected_versions(
        self, engine: Any, repo: Repo, namespace: str, name: str, components: Sequence[ComponentInfo]
    ) -> set[str]:
        """Every version a dist-tag of the stored (or cached) packument names, `latest` included.
        An unreadable packument protects every version."""
        package = PackageName(namespace, name)
        stored = await engine.db_call(engine.lookup, repo, package.path)
        if stored is None:
            return set()
        doc = await self._document(engine, repo, package)
        if doc is None:
            return {c.version for c in components}
        return set(metadata.tags_of(doc).values())

    async def delete_versions(
        self, engine: Any, repo: Repo, components: Sequence[ComponentInfo], principal: Any
    ) -> list[str]:
        """An unpublish: the versions leave the packument (their dist-tags go, `latest` is
        recomputed) in one document update, then their tarballs go; when no version is left the
        whole package is unpublished."""
        if not components:
            return []
        package = PackageName(components[0].namespace, components[0].name)
        gone = {c.version for c in components}
        if repo.type == "hosted" and await self._document(engine, repo, package) is not None:
            when = metadata.now_iso()

            def transform(old: bytes | None) -> bytes | None:
                if old is None:
                    return None
                versions = metadata.versions_of(metadata.load(old))
                if not set(versions) - gone:
                    return None  # nothing left: the package goes, as `npm unpublish pkg` does
                keep = {
                    v: {"deprecated": m.get("deprecated")} if isinstance(m, dict) else {}
                    for v, m in versions.items()
                    if v not in gone
                }
                new, _removed = metadata.apply_update(old, {"versions": keep}, None, True, when)
                return new

            await engine.update_document(repo, package.path, transform, principal)
        deleted: list[str] = []
        for component in components:
            for asset in component.assets:
                if await engine.delete(repo, asset.path, principal) is not None:
                    deleted.append(asset.path)
        return deleted
