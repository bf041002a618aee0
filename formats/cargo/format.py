"""Cargo: the sparse registry protocol for hosted, proxy and group repositories.

Index files are index documents (`IndexKey("crate", name)`): built from the components' stored
lines, parsed from an upstream's copy, merged by version, rendered as one JSON line per version.

A proxy's `url` is the upstream's index root (what follows `sparse+`). Where the upstream serves a
crate is its config.json's `dl` template: an index file's `UpstreamDocument` needs the config
document (`IndexKey("config")`), which the engine fetches, caches and revalidates like any other
and hands to `parse`, so a parsed index file declares each .crate at its real URL with the sha256
its line gives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from artifactory_formats.cargo import metadata, routes
from artifactory_formats.cargo.metadata import CONFIG, CONFIG_KEY, CRATE
from artifactory_formats.cargo.upload import MAX_CRATE_BYTES
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from artifactory.plugin import (
    NOTHING_NEEDED,
    Coordinates,
    FileRef,
    Format,
    HostedView,
    HTTPProblem,
    IndexKey,
    Parsed,
    RenderContext,
    Rendered,
    UpstreamDocument,
    loads,
    semver_key,
    semver_prerelease,
)

INDEX_MEDIA_TYPE = "text/plain; charset=utf-8"


class CargoFormat(Format):
    id = "cargo"
    config_keys = ("max_crate_bytes",)

    def routes(self) -> Sequence[BaseRoute]:
        return routes.ROUTES

    def validate_config(self, repo_type: str, config: dict[str, Any]) -> dict[str, Any]:
        limit = config.setdefault("max_crate_bytes", MAX_CRATE_BYTES)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("max_crate_bytes must be a positive integer (bytes)")
        return config

    def default_write_policy(self, config: dict[str, Any]) -> str:
        return "allow_once"  # a published version never changes: lock files pin its checksum

    def coordinates(self, path: str) -> Coordinates | None:
        found = metadata.CRATE_FILE.match(path)
        if found is not None:
            return Coordinates(name=found.group(1), version=found.group(2))
        found = metadata.YANKED_FILE.match(path)
        return Coordinates(name=found.group(1)) if found is not None else None

    def tombstone(self, path: str) -> str | None:
        found = metadata.CRATE_FILE.match(path)
        return None if found is None else f"{found.group(1)}@{metadata.release(found.group(2))}"

    def content_type(self, path: str) -> str | None:
        return "application/gzip" if path.endswith(".crate") else None

    def render_error(self, problem: HTTPProblem, request: Request) -> Response:
        body = {"errors": [{"detail": problem.message}]}
        return JSONResponse(body, status_code=problem.status, headers=problem.headers)

    # What cleanup policies order and weigh versions by: SemVer precedence, build metadata ignored.
    version_key = staticmethod(semver_key)

    is_prerelease = staticmethod(semver_prerelease)  # 1.0.0-rc.1; not 1.0.0+build-5

    # -- index documents -------------------------------------------------------------------------
    async def build(self, key: IndexKey, hosted: HostedView) -> Any:
        found = await hosted.components(name=key.name)
        lines = [c.attributes["index"] for c in found if c.assets and "index" in c.attributes]
        if not lines:
            return None
        stored = await hosted.read(metadata.yanked_path(key.name))
        yanked = set(json.loads(stored)) if stored else set()
        return tuple({**line, "yanked": line["vers"] in yanked} for line in lines)

    def upstream_document(self, key: IndexKey) -> UpstreamDocument | None:
        accept = "application/json, text/plain, */*"
        if key.kind == CONFIG:
            return UpstreamDocument("config.json", accept=accept)
        # An index file's lines locate their crates through the registry's `dl` template.
        return UpstreamDocument(metadata.index_path(key.name), accept=accept, needs=(CONFIG_KEY,))

    def parse(
        self, key: IndexKey, body: bytes, url: str, needed: Mapping[IndexKey, Any] = NOTHING_NEEDED
    ) -> Parsed | None:
        if key.kind == CONFIG:
            return Parsed(_config(body))
        lines = metadata.parse_lines(body, key.name)
        if not lines:
            return None
        config = needed.get(CONFIG_KEY)
        if config is None:
            raise ValueError("the upstream has no config.json: its crates cannot be located")
        template = config["dl"]
        files = {
            metadata.crate_path(line["name"], line["vers"]): FileRef(
                metadata.download_url(template, line["name"], line["vers"], line["cksum"]),
                {"sha256": line["cksum"]},
            )
            for line in lines
        }
        return Parsed(lines, files)

    def declared_by(self, path: str) -> IndexKey | None:
        found = metadata.CRATE_FILE.match(path)
        return None if found is None else IndexKey(CRATE, name=found.group(1))

    def merge(self, key: IndexKey, models: Sequence[Any]) -> Any:
        return models[0] if key.kind == CONFIG else metadata.merge(models)

    def media_types(self, key: IndexKey) -> Sequence[str]:
        return (INDEX_MEDIA_TYPE,)

    def render(self, key: IndexKey, model: Any, context: RenderContext) -> Rendered:
        return Rendered(metadata.render(model), INDEX_MEDIA_TYPE)


def _config(body: bytes) -> dict[str, Any]:
    """What a proxy keeps of an upstream's config.json: where its crates are (`dl`)."""
    config = loads(body, "the upstream config.json", max_values=None, allow_nul=True)
    dl = config.get("dl") if isinstance(config, dict) else None
    if not isinstance(dl, str) or urlsplit(dl).scheme not in ("http", "https"):
        raise ValueError("the upstream config.json has no http(s) dl")
    return {"dl": dl}
