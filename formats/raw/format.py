"""Raw: any file at any path, no metadata of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from artifactory_formats.raw import routes
from starlette.routing import BaseRoute

from artifactory.plugin import CachePolicy, Coordinates, Format


class RawFormat(Format):
    id = "raw"
    config_keys = ("allow_inline",)
    folders = True

    def routes(self) -> Sequence[BaseRoute]:
        return routes.ROUTES

    def validate_config(self, repo_type: str, config: dict[str, Any]) -> dict[str, Any]:
        config.setdefault("allow_inline", False)
        return config

    def coordinates(self, path: str) -> Coordinates | None:
        # Each file is its own component, named by its path (as Nexus does for raw).
        return Coordinates(name=path) if path and not path.endswith("/") else None

    def cache_policy(self, path: str) -> CachePolicy:
        # Raw files may change upstream under the same name: revalidate them after the TTL.
        return CachePolicy.METADATA
