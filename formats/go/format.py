"""Go modules: the GOPROXY protocol for hosted, proxy and group repositories.

A module version is three files at the paths the protocol names (`<module>/@v/<version>.info`,
`.mod`, `.zip`, case-encoded), stored as they are served, so a proxy caches an upstream's files at
the very paths it asks for and a group finds them in its members. The two computed documents, the
version list (`@v/list`) and `@latest`, are index documents: built from a hosted repository's
components, parsed from an upstream's copy, merged across a group's members (the union of
versions; the best @latest), rendered as the go command reads them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from artifactory_formats.go import coordinates, routes
from artifactory_formats.go.coordinates import LIST, InvalidModule, is_prerelease, latest_key, version_key
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from artifactory.plugin import (
    NOTHING_NEEDED,
    Coordinates,
    Format,
    HostedView,
    HTTPProblem,
    IndexKey,
    Parsed,
    RenderContext,
    Rendered,
    UpstreamDocument,
    loads,
)

CONTENT_TYPES = {"info": "application/json", "mod": "text/plain; charset=utf-8", "zip": "application/zip"}


def sorted_versions(versions: Any) -> tuple[str, ...]:
    """Release and prerelease versions in precedence order; pseudo-versions are never listed."""
    return tuple(sorted({v for v in versions if not coordinates.is_pseudo(v)}, key=version_key))


class GoFormat(Format):
    id = "go"

    def routes(self) -> Sequence[BaseRoute]:
        return routes.ROUTES

    def default_write_policy(self, config: dict[str, Any]) -> str:
        # A module version is immutable: checksum databases remember the first bytes they saw.
        return "allow_once"

    def coordinates(self, path: str) -> Coordinates | None:
        found = _module_file(path)
        return None if found is None else Coordinates(name=found.module, version=found.version)

    def content_type(self, path: str) -> str | None:
        return CONTENT_TYPES.get(path.rsplit(".", 1)[-1])

    def tombstone(self, path: str) -> str | None:
        # One key for a version's .zip, .mod and .info: once one is deleted none is stored again
        # (not a .mod alone, whose zip could never follow; go.sum pins a .mod's hash too).
        found = self.coordinates(path)
        return None if found is None else f"{found.name}@{found.version}"

    def companions(self, path: str) -> tuple[str, ...]:
        # A zip's .mod and .info are derived from it at upload and go when it goes.
        found = _module_file(path)
        return (found.sibling("mod"), found.sibling("info")) if found and found.ext == "zip" else ()

    def companion_of(self, path: str) -> str | None:
        # Not deleted alone while their zip is stored (a .mod uploaded alone may go).
        found = _module_file(path)
        return found.sibling("zip") if found and found.ext != "zip" else None

    def render_error(self, problem: HTTPProblem, request: Request) -> Response:
        # The go command prints a plain-text error body to its user ("server response: ...").
        return PlainTextResponse(problem.message + "\n", status_code=problem.status, headers=problem.headers)

    # What cleanup policies order and weigh versions by: semantic-version precedence.
    version_key = staticmethod(version_key)
    is_prerelease = staticmethod(is_prerelease)

    # -- index documents -------------------------------------------------------------------------
    async def build(self, key: IndexKey, hosted: HostedView) -> Any:
        components = await hosted.components(name=key.name, namespace="")
        if not components:
            return None
        if key.kind == LIST:
            return sorted_versions(c.version for c in components)
        best = max(components, key=lambda c: latest_key(c.version))
        time = best.attributes.get("time") or coordinates.timestamp(best.created_at)
        return {"Version": best.version, "Time": str(time)}  # @latest's model is its .info document

    def upstream_document(self, key: IndexKey) -> UpstreamDocument | None:
        module = coordinates.escape(key.name)  # a module path the route has checked: no "!" in it
        if key.kind == LIST:
            return UpstreamDocument(f"{module}/@v/list", "text/plain, */*;q=0.1")
        return UpstreamDocument(f"{module}/@latest", "application/json, */*;q=0.1")

    def parse(
        self, key: IndexKey, body: bytes, url: str, needed: Mapping[IndexKey, Any] = NOTHING_NEEDED
    ) -> Parsed | None:
        text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError: a malformed document
        if key.kind == LIST:
            # As the go command reads a list: the first field of each line, if it is a valid version.
            fields = (line.split()[0] for line in text.splitlines() if line.strip())
            if text.lstrip().startswith("<"):
                raise ValueError("an HTML page where a version list was expected")
            return Parsed(sorted_versions(v for v in fields if coordinates.SEMVER.match(v)))
        info = loads(text, "@latest", max_values=None, allow_nul=True)
        if not isinstance(info, dict) or not coordinates.SEMVER.match(str(info.get("Version", ""))):
            raise ValueError("@latest does not name a canonical version")
        return Parsed({k: str(info[k]) for k in ("Version", "Time") if info.get(k)})

    def merge(self, key: IndexKey, models: Sequence[Any]) -> Any:
        if key.kind == LIST:
            return sorted_versions(v for model in models for v in model)
        return max(models, key=lambda m: latest_key(m["Version"]))  # the first of equals: first member wins

    def media_types(self, key: IndexKey) -> Sequence[str]:
        return ("text/plain",) if key.kind == LIST else ("application/json",)

    def render(self, key: IndexKey, model: Any, context: RenderContext) -> Rendered:
        if key.kind == LIST:
            return Rendered("".join(v + "\n" for v in model).encode(), "text/plain; charset=utf-8")
        return Rendered(json.dumps(model).encode(), "application/json")


def _module_file(path: str) -> coordinates.ModuleFile | None:
    try:
        return coordinates.module_file(path)
    except InvalidModule:
        return None
