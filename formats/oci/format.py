"""OCI: a container registry at /v2/ (distribution spec 1.1), with the docker token flow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from artifactory_formats.oci import documents
from artifactory_formats.oci.app import OciApp
from artifactory_formats.oci.coordinates import InvalidDigest, is_digest_reference, locate, parse_digest
from artifactory_formats.oci.errors import translate
from artifactory_formats.oci.manifests import DEFAULT_MAX_MANIFEST_BYTES
from artifactory_formats.oci.upstream import RegistryAuth
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from artifactory.plugin import (
    NOTHING_NEEDED,
    CachePolicy,
    ComponentInfo,
    Coordinates,
    Format,
    HostedView,
    HTTPProblem,
    IndexKey,
    Parsed,
    RenderContext,
    Rendered,
    Repo,
    UpstreamDocument,
)


class OciFormat(Format):
    id = "oci"
    config_keys = ("delete_enabled", "max_manifest_bytes", "default_namespace")

    def __init__(self) -> None:
        self._app = OciApp()

    def global_routes(self) -> Sequence[BaseRoute]:
        return (Route("/v2", self._app), Route("/v2/{rest:path}", self._app))

    def validate_config(self, repo_type: str, config: dict[str, Any]) -> dict[str, Any]:
        if repo_type == "hosted":
            config.setdefault("delete_enabled", True)
        if "delete_enabled" in config and not isinstance(config["delete_enabled"], bool):
            raise ValueError("delete_enabled must be a boolean")
        limit = config.get("max_manifest_bytes")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1024):
            raise ValueError("max_manifest_bytes must be an integer of at least 1024")
        if limit is not None and repo_type != "hosted":
            raise ValueError("max_manifest_bytes applies to hosted repositories")
        namespace = config.get("default_namespace")
        if namespace is not None:
            if repo_type != "proxy":
                raise ValueError("default_namespace applies to proxy repositories")
            if not isinstance(namespace, str) or not namespace.strip("/"):
                raise ValueError("default_namespace must be a non-empty string such as 'library'")
        return config

    def coordinates(self, path: str) -> Coordinates | None:
        located = locate(path)
        if located is None or located.kind != "manifest":
            return None
        return Coordinates(name=located.image, version=located.reference)

    def cache_policy(self, path: str) -> CachePolicy:
        located = locate(path)
        if (
            located is not None
            and located.kind in ("blob", "manifest")
            and is_digest_reference(located.reference)
        ):
            return CachePolicy.IMMUTABLE
        return CachePolicy.METADATA  # a manifest by tag

    def expected_digests(self, repo: Repo, path: str) -> Mapping[str, str]:
        """A blob or manifest addressed by digest must be that digest's bytes: the proxy checks it."""
        located = locate(path)
        if located is None or located.kind not in ("blob", "manifest"):
            return {}
        try:
            digest = parse_digest(located.reference)
        except InvalidDigest:
            return {}  # a tag, or a digest we cannot check (never fetched: the routes refuse it)
        return {digest.algorithm: digest.hex}

    def content_type(self, path: str) -> str | None:
        located = locate(path)
        if located is not None and located.kind == "blob":
            return "application/octet-stream"
        return None  # manifests keep the media type they were pushed (or served upstream) with

    def upstream_auth(self, config: Mapping[str, Any]) -> httpx.Auth | None:
        return RegistryAuth(config)

    def render_error(self, problem: HTTPProblem, request: Request) -> Response:
        return translate(problem).render(request)

    # -- index documents (documents.py) --------------------------------------------------------
    async def build(self, key: IndexKey, hosted: HostedView) -> Any:
        return await documents.build(key, hosted)

    def index_source(self, key: IndexKey) -> str | None:
        """An image's tag list is built from the image's components alone (none: no list). Not the
        referrers: an image without them has an empty list, not none."""
        return "" if key.kind == documents.TAGS else None

    def upstream_document(self, key: IndexKey) -> UpstreamDocument | None:
        return documents.upstream_document(key)

    def parse(
        self, key: IndexKey, body: bytes, url: str, needed: Mapping[IndexKey, Any] = NOTHING_NEEDED
    ) -> Parsed | None:
        return documents.parse(key, body)

    def declared_by(self, path: str) -> IndexKey | None:
        """No document declares a file: blobs and manifests are fetched by digest and verified
        against it (`expected_digests`); a manifest by tag is whatever the upstream says it is."""
        return None

    def merge(self, key: IndexKey, models: Sequence[Any]) -> Any:
        return documents.merge(key, models)

    def media_types(self, key: IndexKey) -> Sequence[str]:
        return documents.media_types(key)

    def render(self, key: IndexKey, model: Any, context: RenderContext) -> Rendered:
        return documents.render(key, model, context)

    # -- cleanup policies ------------------------------------------------------------------------
    def cleanup_versions(self, components: Sequence[ComponentInfo]) -> list[ComponentInfo]:
        """Tags only: a manifest by digest stays while a tag or an index references it, and
        `artifactory gc` (oci-gc) removes it once nothing does and its grace period is over."""
        return [c for c in components if not is_digest_reference(c.version)]

    def newest_first(self, components: Sequence[ComponentInfo]) -> list[ComponentInfo]:
        """Tags by push time: a tag moved to a new manifest counts from that push."""

        def pushed(c: ComponentInfo) -> Any:
            return max((a.updated_at for a in c.assets), default=c.created_at)

        return sorted(components, key=lambda c: (pushed(c), c.version), reverse=True)

    async def protected_versions(
        self, repositories: Any, repo: Repo, namespace: str, name: str, components: Sequence[ComponentInfo]
    ) -> set[str]:
        """`latest`. What a tag or an index references is a manifest by digest, which
        `cleanup_versions` never offers: removing a tag removes only the tag."""
        return {"latest"}


__all__ = ["OciFormat", "DEFAULT_MAX_MANIFEST_BYTES"]
