"""The computed documents of the /v2/ API, as the engine's index protocol asks for them.

- the tag list of an image: `IndexKey("tags", name=<image>)`, a sorted tuple of tags (None: the image
  is unknown). Hosted: the image's tag components; proxy: the upstream's `/v2/<image>/tags/list`.
- the images of a repository: `IndexKey("catalog", whole_repository=True)`, a sorted tuple of image
  names (a proxy lists none: the upstream's own catalog is not ours to list).
- the referrers of a manifest: `IndexKey("referrers", name=<image>, variant=<digest>)`, a tuple of
  descriptors. Hosted: the image's manifests whose subject is that digest; proxy: the upstream's
  referrers API. An upstream without that API (404) may hold the referrers tag `<alg>-<hex>` instead
  (`IndexKey("referrers-tag", ...)`, which only proxies have); the route asks for it when the API
  gave nothing.

Models are immutable (tuples), since the engine caches and shares them. Blobs and manifests by
digest are files, not documents: a proxy verifies them against their own digest
(`OciFormat.expected_digests`), so no document declares them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from artifactory_formats.oci.coordinates import Digest, is_digest_reference, manifest_path, referrers_path
from artifactory_formats.oci.metadata import OCI_INDEX, load_json, referrer_descriptor, referrers_index

from artifactory.plugin import HostedView, IndexKey, Parsed, RenderContext, Rendered, UpstreamDocument

TAGS, CATALOG, REFERRERS, REFERRERS_TAG = "tags", "catalog", "referrers", "referrers-tag"
JSON = "application/json"
CATALOG_KEY = IndexKey(CATALOG, whole_repository=True)


def tags_key(image: str) -> IndexKey:
    return IndexKey(TAGS, name=image)


def referrers_key(image: str, subject: Digest, tag_schema: bool = False) -> IndexKey:
    return IndexKey(REFERRERS_TAG if tag_schema else REFERRERS, name=image, variant=str(subject))


async def build(key: IndexKey, hosted: HostedView) -> Any:
    if key.kind == CATALOG:
        return tuple(sorted({name for _namespace, name in await hosted.component_names()}))
    if key.kind == TAGS:
        components = await hosted.components(name=key.name)
        if not components:
            return None
        return tuple(sorted(c.version for c in components if not is_digest_reference(c.version)))
    if key.kind == REFERRERS:
        found = []
        for component in await hosted.components(name=key.name):
            if not is_digest_reference(component.version):
                continue  # a tag holds the same bytes as its digest twin
            for asset in component.assets:
                if (asset.attributes.get("oci") or {}).get("subject") != key.variant:
                    continue
                descriptor = referrer_descriptor(asset.attributes)
                if descriptor is not None:
                    found.append(descriptor)
        return tuple(found)
    return None  # the referrers tag schema is for upstreams without the API; we have it


def upstream_document(key: IndexKey) -> UpstreamDocument | None:
    """Paths in our repository layout below the proxy's URL; `RegistryAuth` moves them to `/v2/`."""
    if key.kind == TAGS:
        return UpstreamDocument(f"{key.name}/tags/list", JSON)
    if key.kind == REFERRERS:
        return UpstreamDocument(referrers_path(key.name, key.variant), OCI_INDEX)
    if key.kind == REFERRERS_TAG:
        return UpstreamDocument(manifest_path(key.name, key.variant.replace(":", "-", 1)), OCI_INDEX)
    return None


def parse(key: IndexKey, body: bytes) -> Parsed | None:
    try:
        document = load_json(body)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("the document is not a JSON object")
    if key.kind == TAGS:
        tags = document.get("tags") or []
        if not isinstance(tags, list):
            raise ValueError("tags is not a list")
        return Parsed(tuple(sorted({t for t in tags if isinstance(t, str)})))
    if key.kind in (REFERRERS, REFERRERS_TAG):
        entries = document.get("manifests") or []
        if not isinstance(entries, list):
            raise ValueError("manifests is not a list")
        return Parsed(tuple(e for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)))
    return None


def merge(key: IndexKey, models: Sequence[Any]) -> Any:
    if key.kind in (TAGS, CATALOG):
        return tuple(sorted({item for model in models for item in model}))
    seen: dict[str, Mapping[str, Any]] = {}
    for model in models:  # the first member's descriptor of a manifest wins
        for descriptor in model:
            seen.setdefault(str(descriptor.get("digest")), descriptor)
    return tuple(seen.values())


def render(key: IndexKey, model: Any, context: RenderContext) -> Rendered:
    if key.kind == TAGS:
        name = f"{context.repository}/{key.name}"
        body = json.dumps({"name": name, "tags": list(model)}).encode()
        return Rendered(body, JSON)
    if key.kind in (REFERRERS, REFERRERS_TAG):
        return Rendered(referrers_index(model), OCI_INDEX)
    return Rendered(json.dumps({"repositories": list(model)}).encode(), JSON)


def media_types(key: IndexKey) -> tuple[str, ...]:
    return (OCI_INDEX,) if key.kind in (REFERRERS, REFERRERS_TAG) else (JSON,)
