"""PyPI: hosted, proxy and group repositories that pip, uv, poetry and twine use as their only index.

The simple API's documents are the engine's index documents (docs/plugins.md, "Index documents"):
a project page (`IndexKey(PROJECT, name)`) and the root index (`IndexKey(ROOT, whole_repository=True)`),
both modelled by `metadata` (a `Project`, a list of names) and rendered as PEP 691 JSON or PEP 503
HTML. The engine builds them from hosted content, fetches and parses them from an upstream index,
merges them across a group's members (with its dependency-confusion guard) and caches them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from artifactory_formats.pypi import admin, coordinates, metadata, routes
from artifactory_formats.pypi.coordinates import PROJECT, ROOT, project_key
from artifactory_formats.pypi.metadata import HTML_TYPE, JSON_TYPE, Project
from artifactory_formats.pypi.negotiation import TEXT_HTML
from lxml.etree import LxmlError
from packaging.version import InvalidVersion, Version
from starlette.routing import BaseRoute

from artifactory.plugin import (
    NOTHING_NEEDED,
    CachePolicy,
    ComponentInfo,
    Coordinates,
    FileRef,
    Format,
    HostedView,
    IndexKey,
    Lru,
    Parsed,
    RenderContext,
    Rendered,
    UpstreamDocument,
)

# What pip and uv send: PEP 691 JSON first (the only form that carries PEP 700 size and upload-time),
# HTML as a fallback. An index negotiates by this header alone (PEP 691 defines no query parameter).
UPSTREAM_ACCEPT = f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.01"
_coordinates: Lru[str, Coordinates | None] = Lru(8192)
# The page that lists each file path asked for (likewise asked for several times per file request,
# and a normalisation of the project's name each time).
_declaring: Lru[str, IndexKey | None] = Lru(8192)
MEDIA_TYPES = (JSON_TYPE, HTML_TYPE, TEXT_HTML)
MAX_YANK_DOCUMENT = 4 * 1024 * 1024
# Index pages hold links and nothing else: no script, style, frame or form may ever run in them.
HTML_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


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
        # Asked several times per request of a file (the group's guard, the proxy's row) and parsed
        # with packaging each time: a path's coordinates never change.
        known, found = _coordinates.lookup(path)
        if not known:
            found = _coordinates.put(path, coordinates.coordinates(path))
        return found

    def tombstone(self, path: str) -> str | None:
        return coordinates.tombstone(path)

    def companions(self, path: str) -> tuple[str, ...]:
        return coordinates.companions(path)

    def companion_of(self, path: str) -> str | None:
        return coordinates.companion_of(path)

    def cache_policy(self, path: str) -> CachePolicy:
        return CachePolicy.METADATA if path.startswith(coordinates.SIMPLE) else CachePolicy.IMMUTABLE

    def content_type(self, path: str) -> str | None:
        if path.startswith(coordinates.PACKAGES):
            return routes.FILE_TYPE
        return None

    # -- index documents -------------------------------------------------------------------------
    async def build(self, key: IndexKey, hosted: HostedView) -> Any:
        if key == ROOT:
            projects: dict[str, list[ComponentInfo]] = {}
            for component in await hosted.components():
                if component.assets:
                    projects.setdefault(component.name, []).append(component)
            return metadata.root_names(metadata.display_name(found) for found in projects.values())
        if key.kind != PROJECT:
            return None
        components = await hosted.components(name=key.name)
        if not components:
            return None
        marks = await hosted.read(coordinates.yanked_path(key.name), MAX_YANK_DOCUMENT)
        return metadata.hosted_project(components, metadata.yank_marks(marks))

    def index_source(self, key: IndexKey) -> str | None:
        """A project page is built from the project's components alone (a group need not build it
        in a hosted member that holds none)."""
        return "" if key.kind == PROJECT else None

    def upstream_document(self, key: IndexKey) -> UpstreamDocument | None:
        # The proxy's URL is the upstream's simple index root; a project's page is below it.
        if key == ROOT:
            return UpstreamDocument("", UPSTREAM_ACCEPT)
        if key.kind == PROJECT:
            return UpstreamDocument(f"{key.name}/", UPSTREAM_ACCEPT)
        return None

    def parse(
        self, key: IndexKey, body: bytes, url: str, needed: Mapping[IndexKey, Any] = NOTHING_NEEDED
    ) -> Parsed | None:
        try:
            if key == ROOT:
                return Parsed(metadata.root_names(metadata.parse_upstream_root(body)))
            page = metadata.parse_upstream(body, url, key.name)
        except (TypeError, LxmlError) as exc:  # json or lxml on bytes that are no page at all
            raise ValueError(f"not a simple index page: {exc}") from None
        if not page.files:
            return None
        files: dict[str, FileRef] = {}
        for f in page.files:
            if f.upstream_url is None:
                continue
            files[f.path] = FileRef(f.upstream_url, f.hashes)
            if f.core_metadata is not None:  # PEP 658/714: the core metadata beside the file
                companion = f.path + coordinates.METADATA_SUFFIX
                files[companion] = FileRef(f.upstream_url + coordinates.METADATA_SUFFIX, f.core_metadata)
        return Parsed(page, files)

    def declared_by(self, path: str) -> IndexKey | None:
        known, found = _declaring.lookup(path)
        if known:
            return found
        parts = coordinates.split_file_path(path)
        if parts is None or parts[0] != coordinates.normalize(parts[0]):
            return _declaring.put(path, None)
        return _declaring.put(path, project_key(parts[0]))

    def merge(self, key: IndexKey, models: Sequence[Any]) -> Any:
        if key == ROOT:
            return metadata.root_names(name for names in models for name in names)
        return metadata.merge(models)

    def media_types(self, key: IndexKey) -> Sequence[str]:
        return MEDIA_TYPES

    def render(self, key: IndexKey, model: Any, context: RenderContext) -> Rendered:
        base, media_type = context.repository_url, context.media_type
        if key == ROOT:
            if media_type == JSON_TYPE:
                body = metadata.render_root_json(model)
            else:
                simple = f"{base}simple/"
                body = metadata.render_root_html(model, lambda name: simple + metadata.project_href(name))
        else:
            project: Project = model
            if media_type == JSON_TYPE:
                body = metadata.render_json(project, metadata.file_url(base))
            else:
                body = metadata.render_html(project, metadata.file_url(base))
        headers = {"X-Content-Type-Options": "nosniff"}
        if media_type != JSON_TYPE:
            headers["Content-Security-Policy"] = HTML_POLICY
        return Rendered(body, media_type, headers)

    # -- cleanup policies ------------------------------------------------------------------------
    def version_key(self, version: str) -> Any:
        """PEP 440 order (1.10 after 1.9, 1.0rc1 before 1.0); versions that are not PEP 440 first."""
        return metadata.version_key(version)

    def is_prerelease(self, version: str) -> bool:
        try:
            return Version(version).is_prerelease
        except InvalidVersion:
            return False
