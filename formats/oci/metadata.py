"""Pure functions over manifests and listings: parse and check a pushed manifest, build referrer
descriptors and the referrers index, and paginate tag and catalog lists."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from artifactory_formats.oci.coordinates import Digest, InvalidDigest, parse_digest
from artifactory_formats.oci.errors import OCIError

from artifactory.plugin import ascii_digits, loads

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_ARTIFACT = "application/vnd.oci.artifact.manifest.v1+json"  # withdrawn from 1.1; old oras sends it
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, OCI_ARTIFACT)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES)
# Layers that live elsewhere (Windows base layers) are not required to be pushed.
FOREIGN_LAYERS = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)


@dataclass(frozen=True)
class Manifest:
    """What the registry needs to know about a pushed manifest (the bytes are kept as they came)."""

    media_type: str
    blobs: tuple[Digest, ...]
    children: tuple[Digest, ...]
    subject: Digest | None = None
    artifact_type: str = ""
    config_media_type: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    def attributes(self, digest: str, size: int) -> dict[str, Any]:
        """Stored with the asset: enough to answer the referrers API and GC without re-reading it."""
        attrs: dict[str, Any] = {"oci": {"mediaType": self.media_type, "digest": digest, "size": size}}
        oci = attrs["oci"]
        if self.subject is not None:
            oci["subject"] = str(self.subject)
        if self.artifact_type or self.config_media_type:
            oci["artifactType"] = self.artifact_type or self.config_media_type
        if self.annotations:
            oci["annotations"] = dict(self.annotations)
        oci["references"] = [str(d) for d in (*self.blobs, *self.children)]
        return attrs


def load_json(body: bytes) -> Any:
    """The engine's bounded `loads`: ValueError (InvalidJSON) for any unusable document."""
    return loads(body, "the document", max_values=None, allow_nul=True)


def _invalid(message: str) -> OCIError:
    return OCIError("MANIFEST_INVALID", message)


def _descriptor(value: Any, where: str) -> tuple[str, Digest]:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where} has no mediaType")
    if not isinstance(digest, str):
        raise _invalid(f"{where} has no digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where} has no valid size")
    try:
        return media_type, parse_digest(digest)
    except InvalidDigest as exc:
        raise _invalid(f"{where}: {exc}") from None


def _annotations(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid("annotations must map strings to strings")
    return dict(value)


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Check a pushed manifest; MANIFEST_INVALID for anything a client could not pull back."""
    try:
        document = load_json(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid(f"the manifest is not usable JSON: {exc}"[:200]) from None
    if not isinstance(document, dict):
        raise _invalid("the manifest must be a JSON object")
    declared = document.get("mediaType")
    header = (content_type or "").split(";", 1)[0].strip().lower()
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    if declared and header and declared != header:
        raise _invalid(f"the manifest's mediaType {declared} disagrees with its Content-Type {header}")
    media_type = declared or header
    if not media_type:
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    if media_type != OCI_ARTIFACT and document.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    artifact_type = document.get("artifactType", "")
    if not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    subject = None
    if document.get("subject") is not None:
        subject = _descriptor(document["subject"], "subject")[1]
    annotations = _annotations(document.get("annotations"))
    blobs: list[Digest] = []
    children: list[Digest] = []
    config_media_type = ""
    if media_type in INDEX_TYPES:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise _invalid("an index needs a manifests list")
        for i, entry in enumerate(entries):
            children.append(_descriptor(entry, f"manifests[{i}]")[1])
    elif media_type == OCI_ARTIFACT:
        for i, entry in enumerate(document.get("blobs") or []):
            blobs.append(_descriptor(entry, f"blobs[{i}]")[1])
    else:
        config_media_type, config = _descriptor(document.get("config"), "config")
        blobs.append(config)
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise _invalid("an image manifest needs a layers list")
        for i, entry in enumerate(layers):
            layer_type, digest = _descriptor(entry, f"layers[{i}]")
            if layer_type not in FOREIGN_LAYERS:
                blobs.append(digest)
    return Manifest(
        media_type=media_type,
        blobs=tuple(blobs),
        children=tuple(children),
        subject=subject,
        artifact_type=artifact_type,
        config_media_type=config_media_type,
        annotations=annotations,
    )


def references_of(body: bytes) -> tuple[tuple[str, ...], str | None]:
    """What any stored manifest points at, read leniently (an upstream's bytes were never checked
    by `parse_manifest`): every descriptor digest (config, layers, an index's manifests, an
    artifact's blobs, a schema 1 manifest's blobSums) and its subject. ValueError if unreadable."""
    document = load_json(body)
    if not isinstance(document, dict):
        raise ValueError("a manifest is a JSON object")
    found: list[str] = []

    def add(descriptor: Any, key: str = "digest") -> None:
        if isinstance(descriptor, dict) and isinstance(descriptor.get(key), str):
            found.append(descriptor[key])

    add(document.get("config"))
    for field_name in ("layers", "manifests", "blobs"):
        entries = document.get(field_name)
        for entry in entries if isinstance(entries, list) else []:
            add(entry)
    layers = document.get("fsLayers")
    for entry in layers if isinstance(layers, list) else []:
        add(entry, "blobSum")
    subject = document.get("subject")
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return tuple(found), digest if isinstance(digest, str) else None


def referrer_descriptor(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """The descriptor of a stored manifest in a referrers index (None if it has no subject)."""
    oci = attributes.get("oci") or {}
    if not oci.get("subject"):
        return None
    descriptor: dict[str, Any] = {
        "mediaType": oci["mediaType"],
        "digest": oci["digest"],
        "size": oci["size"],
    }
    if oci.get("artifactType"):
        descriptor["artifactType"] = oci["artifactType"]
    if oci.get("annotations"):
        descriptor["annotations"] = oci["annotations"]
    return descriptor


def referrers_index(descriptors: Iterable[Mapping[str, Any]]) -> bytes:
    seen: dict[str, Mapping[str, Any]] = {}
    for descriptor in descriptors:
        seen.setdefault(str(descriptor.get("digest")), descriptor)
    ordered = sorted(seen.values(), key=lambda d: str(d.get("digest")))
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": ordered}, separators=(",", ":")
    ).encode()


@dataclass(frozen=True)
class Page:
    items: list[str]
    next_last: str | None  # the `last` of the next page, when there is one


def paginate(names: Sequence[str], n: int | None, last: str | None) -> Page:
    """Lexically ordered names after `last`, at most `n` of them."""
    ordered = sorted(set(names))
    if last:
        ordered = [name for name in ordered if name > last]
    if n is None or n >= len(ordered):
        return Page(ordered, None)
    page = ordered[:n]
    return Page(page, page[-1] if page else None)


def parse_page_args(n: str | None, last: str | None) -> tuple[int | None, str | None]:
    if n is None or n == "":
        return None, last or None
    if not ascii_digits(n) or len(n) > 9:
        raise OCIError("UNSUPPORTED", f"n must be a non-negative integer, not {n!r}", status=400)
    return int(n), last or None


def next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'
