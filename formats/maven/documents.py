"""maven-metadata.xml as index documents: which keys a path names, and the protocol's pure steps.

Three documents live at `.../maven-metadata.xml` paths, each an `IndexKey` whose namespace/name is
the groupId/artifactId that `MavenFormat.coordinates` gives the artifact's files, so a deploy or a
deletion moves exactly the documents it changes:

- `g/a/maven-metadata.xml`: the artifact's versions (kind METADATA);
- `g/a/1.0-SNAPSHOT/maven-metadata.xml`: a snapshot version's builds (kind METADATA, variant = the
  version);
- `g/maven-metadata.xml`: the plugin prefixes of groupId `g` (kind PLUGINS). A plugin's coordinates
  are its own artifact, not the group, so this one is cached under the repository's revision.

A path such as `org/plug/maven-metadata.xml` may be artifact `org:plug` or group `org.plug`: the
artifact's document is served when there is one, the group's plugin list otherwise.

Checksums of a document (`maven-metadata.xml.sha1` and the like) are renderings of the same model
in a media type of their own (`CHECKSUM_TYPES`), so they always match the document served beside
them. The engine does hosted building, proxy fetching, group merging with the dependency-confusion
guard, caching, ETag and gzip; nothing here reads or caches anything itself.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any

from artifactory_formats.maven import metadata as md
from artifactory_formats.maven.coordinates import CHECKSUMS, METADATA, metadata_scope, try_artifact

from artifactory.plugin import IndexKey, Parsed, RenderContext, Rendered, UpstreamDocument

XML = "application/xml"
METADATA_KIND = "maven-metadata"
PLUGINS_KIND = "maven-plugins"
CHECKSUM_TYPES = {f"application/x-maven-checksum-{algorithm}": algorithm for algorithm in CHECKSUMS}


@functools.lru_cache(maxsize=4096)
def keys_for(path: str) -> tuple[IndexKey, ...]:
    """The documents a maven-metadata.xml path may be, in the order they are looked for (cached:
    a hot document's path is asked for on every request)."""
    scope = metadata_scope(path)
    if scope is None:
        return ()
    if scope.snapshot is not None:
        group_id, artifact_id, version = scope.snapshot
        return (IndexKey(METADATA_KIND, name=artifact_id, namespace=group_id, variant=version),)
    keys = []
    if scope.artifact is not None:
        keys.append(IndexKey(METADATA_KIND, name=scope.artifact[1], namespace=scope.artifact[0]))
    keys.append(IndexKey(PLUGINS_KIND, namespace=scope.group_level, whole_repository=True))
    return tuple(keys)


def document_path(key: IndexKey) -> str:
    """Where `key` lives in the Maven layout (and below a proxy's upstream URL)."""
    folders = key.namespace.split(".")
    if key.kind == METADATA_KIND:
        folders.append(key.name)
        if key.variant:
            folders.append(key.variant)
    return "/".join([*folders, METADATA])


# -- hosted ----------------------------------------------------------------------------------------
async def build(key: IndexKey, hosted: Any) -> Any:
    if key.kind == PLUGINS_KIND:
        return await _plugins(hosted, key.namespace)
    if key.kind != METADATA_KIND:
        return None
    doc = md.Metadata(group_id=key.namespace, artifact_id=key.name)
    if key.variant:
        files = [
            (artifact, asset.updated_at)
            for component in await hosted.components(
                name=key.name, namespace=key.namespace, version=key.variant
            )
            for asset in component.assets
            if (artifact := try_artifact(asset.path)) is not None and artifact.base_version == key.variant
        ]
        if not files:
            return None
        doc.version = key.variant
        md.snapshot_of(doc, files)
        return doc
    components = [c for c in await hosted.components(name=key.name, namespace=key.namespace) if c.assets]
    if not components:
        return None
    newest = max(asset.updated_at for c in components for asset in c.assets)
    md.versions_of(doc, [c.version for c in components], md.stamp(newest))
    return doc


async def _plugins(hosted: Any, group_id: str) -> md.Metadata | None:
    """The plugin prefixes that the plugin jars of groupId `group_id` declared when deployed."""
    plugins: dict[str, md.Plugin] = {}
    for component in await hosted.components(namespace=group_id):
        for asset in component.assets:
            plugin = asset.attributes.get("maven", {}).get("plugin")
            if plugin and plugin.get("prefix") and component.name not in plugins:
                plugins[component.name] = md.Plugin(plugin["prefix"], component.name, plugin.get("name", ""))
    found = list({p.prefix: p for p in plugins.values()}.values())
    return md.Metadata(plugins=found) if found else None


# -- proxy -----------------------------------------------------------------------------------------
def upstream_document(key: IndexKey) -> UpstreamDocument | None:
    return UpstreamDocument(document_path(key), accept=f"{XML}, text/xml;q=0.9, */*;q=0.1")


def parse(key: IndexKey, body: bytes) -> Parsed | None:
    """The level of an upstream document that `key` asks for (None when it has none); UnsafeXML,
    a ValueError, for one that is malformed, too large or declares entities. maven-metadata.xml
    declares no file digests: a proxy checks files against the upstream's .sha1 instead."""
    doc = md.parse(body)
    if key.kind == PLUGINS_KIND:
        model = md.Metadata(plugins=doc.plugins, upstream=True)
        return Parsed(model) if model.plugins else None
    model = md.Metadata(
        group_id=doc.group_id or key.namespace, artifact_id=doc.artifact_id or key.name, upstream=True
    )
    if key.variant:
        model.version = doc.version or key.variant
        model.snapshot_timestamp, model.snapshot_build = doc.snapshot_timestamp, doc.snapshot_build
        model.snapshot_versions, model.last_updated = doc.snapshot_versions, doc.last_updated
        return Parsed(model) if model.snapshot_versions or model.snapshot_timestamp else None
    if not doc.versions:
        return None
    model.versions, model.latest, model.release = doc.versions, doc.latest, doc.release
    model.last_updated = doc.last_updated
    return Parsed(model)


# -- group and client ------------------------------------------------------------------------------
def merge(key: IndexKey, models: Sequence[Any]) -> Any:
    return md.merge(models)


def media_types(key: IndexKey) -> Sequence[str]:
    return (XML, *CHECKSUM_TYPES)


def render(key: IndexKey, model: Any, context: RenderContext) -> Rendered:
    body = md.render(model)
    algorithm = CHECKSUM_TYPES.get(context.media_type)
    if algorithm is None:
        return Rendered(body, XML)
    return Rendered(hashlib.new(algorithm, body).hexdigest().encode(), "text/plain")
