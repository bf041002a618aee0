"""PyPI: hosted, proxy and group repositories that pip, uv, poetry and twine use as their only index."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any

import httpx
from artifactory_formats.pypi import admin, coordinates, metadata, operations, routes, sources
from artifactory_formats.pypi.metadata import HTML_TYPE, JSON_TYPE
from packaging.version import InvalidVersion, Version
from starlette.routing import BaseRoute

from artifactory.plugin import CachePolicy, ComponentInfo, Coordinates, Format, Repo, Rewritten

HOSTED = "hosted"
# Whether the proxy passes upstream project pages through rewrite_upstream before caching them. Off:
# the core's proxy still calls the hook with its old signature (path, body, url) and caches the result
# as bytes; and recording every file's link at each page refresh costs a write per file, where
# sources.link_file records one link when that file is first asked for. The pages are parsed as the
# upstream sent them (sources.proxied), which also reads the form rewrite_upstream produces.
REWRITE_UPSTREAM_PAGES = False
# What pip and uv send: PEP 691 JSON first (the only form that carries PEP 700 size and upload-time),
# HTML as a fallback. An index negotiates by this header alone (PEP 691 defines no query parameter).
UPSTREAM_ACCEPT = f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.01"


class IndexAuth(httpx.Auth):
    """Asks an upstream index for PEP 691 JSON, and sends the proxy's credentials if it has any."""

    def __init__(self, username: str | None, password: str | None) -> None:
        self.basic = httpx.BasicAuth(username, password or "") if username else None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.url.path.endswith("/"):
            # Index pages end with "/", files never do. Replaces the client's default "*/*".
            request.headers["Accept"] = UPSTREAM_ACCEPT
        if self.basic is not None:
            yield from self.basic.auth_flow(request)
        else:
            yield request


class PypiFormat(Format):
    id = "pypi"

    def routes(self) -> Sequence[BaseRoute]:
        return routes.ROUTES

    def global_routes(self) -> Sequence[BaseRoute]:
        return admin.ROUTES

    def default_write_policy(self, config: dict[str, Any]) -> str:
        # As on the public index: a filename, once used, is never used again.
        return "allow_once"

    def coordinates(self, path: str) -> Coordinates | None:
        return coordinates.coordinates(path)

    def cache_policy(self, path: str) -> CachePolicy:
        return CachePolicy.METADATA if path.startswith(coordinates.SIMPLE) else CachePolicy.IMMUTABLE

    def rewrites(self, path: str) -> bool:
        return REWRITE_UPSTREAM_PAGES and path.startswith(coordinates.SIMPLE) and path != coordinates.SIMPLE

    def rewrite_upstream(self, repo: Repo, path: str, body: bytes, upstream_url: str) -> Rewritten:
        """An upstream project page (JSON or HTML) as PEP 691 JSON whose file URLs stay absolute upstream
        URLs (cached independent of this server's URL), plus the upstream URL of each file and .metadata."""
        project = path.removeprefix(coordinates.SIMPLE).strip("/")
        page = metadata.parse_upstream(body, upstream_url, project)
        links: dict[str, str] = {}
        digests: dict[str, dict[str, str]] = {}
        for f in page.files:
            if f.upstream_url is None:
                continue
            links[f.path] = f.upstream_url
            digests[f.path] = sources.verifiable(f.hashes)
            if f.core_metadata is not None:
                companion = f.path + coordinates.METADATA_SUFFIX
                links[companion] = f.upstream_url + coordinates.METADATA_SUFFIX
                digests[companion] = sources.verifiable(f.core_metadata)
        declared = {path: found for path, found in digests.items() if found}
        return Rewritten(metadata.render_json(page, lambda f: f.upstream_url or f.path), links, declared)

    def upstream_auth(self, config: Mapping[str, Any]) -> httpx.Auth | None:
        username = config.get("username")
        return IndexAuth(str(username) if username else None, config.get("password"))

    def content_type(self, path: str) -> str | None:
        if path.startswith(coordinates.PACKAGES):
            return routes.FILE_TYPE
        return None

    # -- cleanup policies ------------------------------------------------------------------------
    def version_key(self, version: str) -> Any:
        """PEP 440 order (1.10 after 1.9, 1.0rc1 before 1.0); versions that are not PEP 440 first."""
        return metadata.version_key(version)

    def is_prerelease(self, version: str) -> bool:
        try:
            return Version(version).is_prerelease
        except InvalidVersion:
            return False

    async def delete_versions(
        self, engine: Any, repo: Repo, components: Sequence[ComponentInfo], principal: Any
    ) -> list[str]:
        """Each distribution file as its DELETE does (with its .metadata), then one touch of the
        project so that its pages are rebuilt."""
        deleted: list[str] = []
        for component in components:
            paths = {asset.path for asset in component.assets}
            for path in sorted(paths):  # a file before its .metadata, as delete_path does
                if (
                    path.endswith(coordinates.METADATA_SUFFIX)
                    and path.removesuffix(coordinates.METADATA_SUFFIX) in paths
                ):
                    continue  # deleted with its file
                if path + coordinates.METADATA_SUFFIX in paths:
                    if await operations.delete_path(engine, repo, path, principal, touch=False):
                        deleted += [path, path + coordinates.METADATA_SUFFIX]
                elif await engine.delete(repo, path, principal) is not None:
                    deleted.append(path)
        if components and repo.type == "hosted":
            await sources.touch(engine, repo, components[0].name)
        return deleted
