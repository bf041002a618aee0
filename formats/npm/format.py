"""npm: hosted, proxy and group registries for npm, pnpm and yarn.

Packuments are index documents (`IndexKey("packument", bare name, scope)`): a hosted repository
builds one from the package document it keeps (updated under the engine's lock on every write), a
proxy parses the upstream's, a group merges its members'; the engine does the fetching, caching,
member walk and dependency-confusion guard, and verifies each proxied tarball against the digests
its upstream packument declared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from artifactory_formats.npm import metadata, routes, search
from artifactory_formats.npm.coordinates import PackageName, parse_path, tarball_coordinates
from artifactory_formats.npm.httputil import max_document_bytes
from artifactory_formats.npm.metadata import JSON_TYPE, PACKUMENT, key_package, packument_key
from starlette.routing import BaseRoute

from artifactory.plugin import (
    NOTHING_NEEDED,
    ComponentInfo,
    Coordinates,
    Format,
    HostedView,
    IndexKey,
    Parsed,
    RenderContext,
    Rendered,
    Repo,
    Repositories,
    UpstreamDocument,
    semver_key,
    semver_prerelease,
)

MIN_DOCUMENT = 1024 * 1024
MAX_DOCUMENT = 1024 * 1024 * 1024


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
        # The package document belongs to its package (no version): storing it moves the package's
        # generation, so its packument is rebuilt.
        parsed = parse_path(path)
        if parsed is not None and parsed.kind == "packument":
            return parsed.package.coordinates()
        return tarball_coordinates(path)

    def content_type(self, path: str) -> str | None:
        parsed = parse_path(path)
        return (
            "application/json"
            if parsed is not None and parsed.kind == "packument"
            else "application/octet-stream"
        )

    def tombstone(self, path: str) -> str | None:
        """name@version: a version once unpublished is never published again (npm's rule)."""
        coordinates = tarball_coordinates(path)
        if coordinates is None or not coordinates.version:
            return None
        return f"{PackageName(coordinates.namespace, coordinates.name).full}@{coordinates.version}"

    # -- index documents -------------------------------------------------------------------------
    async def build(self, key: IndexKey, hosted: HostedView) -> Any:
        if key == search.SEARCH_KEY:
            return search.index_entries(await hosted.components())
        if key.kind != PACKUMENT:
            return None
        body = await hosted.read(key_package(key).path, max_document_bytes(hosted.repository))
        return None if body is None else metadata.load(body)

    def index_source(self, key: IndexKey) -> str | None:
        """A packument is built from the package document alone (a group need not build it in a
        hosted member that does not store one)."""
        return key_package(key).path if key.kind == PACKUMENT else None

    def upstream_document(self, key: IndexKey) -> UpstreamDocument | None:
        if key.kind != PACKUMENT:
            return None
        return UpstreamDocument(key_package(key).path, accept=JSON_TYPE)

    def parse(
        self, key: IndexKey, body: bytes, url: str, needed: Mapping[IndexKey, Any] = NOTHING_NEEDED
    ) -> Parsed | None:
        return metadata.parse_upstream(body, key_package(key), url) if key.kind == PACKUMENT else None

    def declared_by(self, path: str) -> IndexKey | None:
        parsed = parse_path(path)
        return packument_key(parsed.package) if parsed is not None and parsed.kind == "tarball" else None

    def merge(self, key: IndexKey, models: Sequence[Any]) -> Any:
        return search.merge_entries(models) if key == search.SEARCH_KEY else metadata.merge(models)

    def media_types(self, key: IndexKey) -> Sequence[str]:
        return (JSON_TYPE, metadata.ABBREVIATED_TYPE)

    def render(self, key: IndexKey, model: Any, context: RenderContext) -> Rendered:
        if key == search.SEARCH_KEY:
            return Rendered(metadata.dump({"objects": model}), JSON_TYPE)
        doc = metadata.absolutized(model, context.repository_url)
        if context.media_type == metadata.ABBREVIATED_TYPE:
            return Rendered(metadata.abbreviated(doc), metadata.ABBREVIATED_TYPE)
        return Rendered(metadata.dump(doc), JSON_TYPE)

    # -- cleanup policies ------------------------------------------------------------------------
    version_key = staticmethod(semver_key)  # 1.0.0-rc.1 before 1.0.0; what is not semver first
    is_prerelease = staticmethod(semver_prerelease)

    def cleanup_versions(self, components: Sequence[ComponentInfo]) -> list[ComponentInfo]:
        return [c for c in components if c.version]  # the packument's component has no version

    async def protected_versions(
        self, repositories: Any, repo: Repo, namespace: str, name: str, components: Sequence[ComponentInfo]
    ) -> set[str]:
        """Every version a dist-tag names, `latest` included, in the packument `repo` holds: a hosted
        repository's own, or the copy of its upstream's that a proxy has cached (the upstream is
        not asked). A package document that cannot be read raises: cleanup then leaves the name."""
        repos: Repositories = repositories
        model = await repos.held_index_model(repo, packument_key(PackageName(namespace, name)))
        return set() if model is None else set(metadata.tags_of(model).values())

    async def delete_versions(
        self, repositories: Any, repo: Repo, components: Sequence[ComponentInfo], principal: Any
    ) -> list[str]:
        """An unpublish: the versions leave the package document (their dist-tags go, `latest` is
        recomputed) in one document update, then their tarballs go; when no version is left the
        whole package is unpublished."""
        if not components:
            return []
        repos = repositories
        package = PackageName(components[0].namespace, components[0].name)
        gone = {c.version for c in components}
        # Only a hosted repository keeps a package document (a proxy's packument is the upstream's).
        if await repos.lookup(repo, package.path) is not None:
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

            await repos.update_document(repo, package.path, transform, principal)
        deleted: list[str] = []
        for component in components:
            for asset in component.assets:
                if await repos.delete(repo, asset.path, principal) is not None:
                    deleted.append(asset.path)
        return deleted
