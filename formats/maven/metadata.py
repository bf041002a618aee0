"""maven-metadata.xml as plain data: built from stored files, parsed, merged across a group, rendered.

The model is Maven's own: one document type for an artifact's versions (`versioning/versions`), a
snapshot folder's builds (`versioning/snapshot`, `snapshotVersions`) and a group's plugin prefixes
(`plugins`); the index keys (formats/maven/documents.py) say which level a model holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from artifactory_formats.maven import safexml
from artifactory_formats.maven.coordinates import Artifact, is_snapshot, version_key
from lxml import etree

from artifactory.plugin import ascii_digits


@dataclass
class Plugin:
    prefix: str
    artifact_id: str
    name: str = ""


@dataclass
class SnapshotVersion:
    classifier: str
    extension: str
    value: str
    updated: str


@dataclass
class Metadata:
    group_id: str = ""
    artifact_id: str = ""
    version: str = ""
    versions: list[str] = field(default_factory=list)
    latest: str = ""
    release: str = ""
    last_updated: str = ""
    snapshot_timestamp: str = ""
    snapshot_build: int = 0
    snapshot_versions: list[SnapshotVersion] = field(default_factory=list)
    plugins: list[Plugin] = field(default_factory=list)
    # Parsed from an upstream's copy rather than built from stored files: a merge lets a hosted
    # member's plugin prefix win over a proxy's, whatever the order of the group.
    upstream: bool = False

    def empty(self) -> bool:
        return not (self.versions or self.snapshot_versions or self.plugins)


def stamp(moment: datetime) -> str:
    """Maven's lastUpdated / updated form: yyyyMMddHHmmss in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


# -- building from stored files ------------------------------------------------------------------
def versions_of(metadata: Metadata, versions: Iterable[str], last_updated: str) -> None:
    """Fill the artifact level: every version, latest, release (newest non-SNAPSHOT)."""
    ordered = sorted(set(versions), key=version_key)
    metadata.versions = ordered
    metadata.latest = ordered[-1] if ordered else ""
    releases = [v for v in ordered if not is_snapshot(v)]
    metadata.release = releases[-1] if releases else ""
    metadata.last_updated = last_updated


def snapshot_of(metadata: Metadata, files: Sequence[tuple[Artifact, datetime]]) -> None:
    """Fill the snapshot level from the files of one SNAPSHOT folder: the newest build, and the newest
    file per classifier and extension."""
    newest: dict[tuple[str, str], tuple[tuple[int, str, str], SnapshotVersion]] = {}
    last = ""
    for artifact, updated in files:
        when = stamp(updated)
        last = max(last, when)
        order = (artifact.build_number, artifact.timestamp, when)
        key = (artifact.classifier, artifact.extension)
        entry = SnapshotVersion(artifact.classifier, artifact.extension, artifact.version, when)
        if key not in newest or order > newest[key][0]:
            newest[key] = (order, entry)
        if artifact.timestamped and (artifact.build_number, artifact.timestamp) > (
            metadata.snapshot_build,
            metadata.snapshot_timestamp,
        ):
            metadata.snapshot_build, metadata.snapshot_timestamp = artifact.build_number, artifact.timestamp
    metadata.snapshot_versions = sorted(
        (entry for _, entry in newest.values()), key=lambda s: (s.extension, s.classifier)
    )
    metadata.last_updated = max(metadata.last_updated, last)


# -- parsing and merging -------------------------------------------------------------------------
def parse(data: bytes) -> Metadata:
    root = safexml.parse(data, "maven-metadata.xml", limit=safexml.MAX_XML_BYTES)
    if safexml.local(root.tag) != "metadata":
        raise safexml.UnsafeXML("maven-metadata.xml has no <metadata> root element")
    text = safexml.text
    versioning = safexml.child(root, "versioning")
    snapshot = safexml.child(versioning, "snapshot") if versioning is not None else None
    metadata = Metadata(
        group_id=text(root, "groupId"),
        artifact_id=text(root, "artifactId"),
        version=text(root, "version"),
        latest=text(versioning, "latest"),
        release=text(versioning, "release"),
        last_updated=text(versioning, "lastUpdated"),
        snapshot_timestamp=text(snapshot, "timestamp"),
    )
    build = text(snapshot, "buildNumber")
    metadata.snapshot_build = int(build) if ascii_digits(build) else 0
    versions = safexml.child(versioning, "versions") if versioning is not None else None
    metadata.versions = [(v.text or "").strip() for v in safexml.children(versions, "version") if v.text]
    listed = safexml.child(versioning, "snapshotVersions") if versioning is not None else None
    for node in safexml.children(listed, "snapshotVersion"):
        metadata.snapshot_versions.append(
            SnapshotVersion(
                text(node, "classifier"), text(node, "extension"), text(node, "value"), text(node, "updated")
            )
        )
    for node in safexml.children(safexml.child(root, "plugins"), "plugin"):
        if text(node, "prefix") and text(node, "artifactId"):
            metadata.plugins.append(
                Plugin(text(node, "prefix"), text(node, "artifactId"), text(node, "name"))
            )
    return metadata


def merge(documents: Sequence[Metadata]) -> Metadata:
    """A group's view: versions united, latest and release recomputed, the newest lastUpdated,
    the newest snapshot build and per-file snapshot entries, plugins by prefix (the first member's
    wins, built ones before upstream ones: a prefix a hosted member maps is never taken over)."""
    merged = Metadata(upstream=all(doc.upstream for doc in documents))
    for doc in documents:
        merged.group_id = merged.group_id or doc.group_id
        merged.artifact_id = merged.artifact_id or doc.artifact_id
        merged.version = merged.version or doc.version
    last_updated = max((d.last_updated for d in documents), default="")
    all_versions = [v for d in documents for v in d.versions]
    if all_versions:
        versions_of(merged, all_versions, last_updated)
    merged.last_updated = last_updated
    newest: dict[tuple[str, str], SnapshotVersion] = {}
    for doc in documents:
        if (doc.snapshot_build, doc.snapshot_timestamp) > (merged.snapshot_build, merged.snapshot_timestamp):
            merged.snapshot_build, merged.snapshot_timestamp = doc.snapshot_build, doc.snapshot_timestamp
        for entry in doc.snapshot_versions:
            key = (entry.classifier, entry.extension)
            if key not in newest or (entry.updated, entry.value) > (newest[key].updated, newest[key].value):
                newest[key] = entry
    merged.snapshot_versions = sorted(newest.values(), key=lambda s: (s.extension, s.classifier))
    seen: set[str] = set()
    for doc in sorted(documents, key=lambda d: d.upstream):
        for plugin in doc.plugins:
            if plugin.prefix not in seen:
                seen.add(plugin.prefix)
                merged.plugins.append(plugin)
    return merged


# -- rendering -----------------------------------------------------------------------------------
def _add(parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, name)
    if value is not None:
        node.text = value
    return node


def render(metadata: Metadata) -> bytes:
    root = etree.Element("metadata")
    if metadata.snapshot_versions:
        root.set("modelVersion", "1.1.0")
    if metadata.group_id:
        _add(root, "groupId", metadata.group_id)
    if metadata.artifact_id:
        _add(root, "artifactId", metadata.artifact_id)
    if metadata.version:
        _add(root, "version", metadata.version)
    if metadata.versions or metadata.snapshot_versions or metadata.snapshot_timestamp:
        versioning = _add(root, "versioning")
        if metadata.latest:
            _add(versioning, "latest", metadata.latest)
        if metadata.release:
            _add(versioning, "release", metadata.release)
        if metadata.versions:
            versions = _add(versioning, "versions")
            for version in metadata.versions:
                _add(versions, "version", version)
        if metadata.snapshot_timestamp:
            snapshot = _add(versioning, "snapshot")
            _add(snapshot, "timestamp", metadata.snapshot_timestamp)
            _add(snapshot, "buildNumber", str(metadata.snapshot_build))
        if metadata.last_updated:
            _add(versioning, "lastUpdated", metadata.last_updated)
        if metadata.snapshot_versions:
            listed = _add(versioning, "snapshotVersions")
            for entry in metadata.snapshot_versions:
                node = _add(listed, "snapshotVersion")
                if entry.classifier:
                    _add(node, "classifier", entry.classifier)
                _add(node, "extension", entry.extension)
                _add(node, "value", entry.value)
                _add(node, "updated", entry.updated)
    if metadata.plugins:
        plugins = _add(root, "plugins")
        for plugin in sorted(metadata.plugins, key=lambda p: p.prefix):
            node = _add(plugins, "plugin")
            if plugin.name:
                _add(node, "name", plugin.name)
            _add(node, "prefix", plugin.prefix)
            _add(node, "artifactId", plugin.artifact_id)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
