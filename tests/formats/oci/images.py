"""Test images built by hand: layers as tar archives, OCI manifests, and OCI layouts on disk for skopeo."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(data), "size": len(data), **extra}


@dataclass
class Image:
    config: bytes
    layers: list[bytes]
    manifest: bytes
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return digest(self.manifest)

    @property
    def blobs(self) -> list[bytes]:
        return [self.config, *self.layers]


def image(
    seed: str,
    layers: int = 1,
    *,
    media_type: str = OCI_MANIFEST,
    subject: bytes | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
    config_media_type: str | None = None,
    pretty: bool = False,
) -> Image:
    docker = media_type == DOCKER_MANIFEST
    config_type = config_media_type or (
        "application/vnd.docker.container.image.v1+json" if docker else OCI_CONFIG
    )
    layer_type = "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker else OCI_LAYER
    blobs = [layer({f"{seed}/file{i}.txt": f"{seed} layer {i}\n".encode()}) for i in range(layers)]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest(gzip.decompress(b)) for b in blobs]},
            "config": {"Labels": {"seed": seed}},
        }
    ).encode()
    if config_media_type == EMPTY_JSON:
        config = b"{}"
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config),
        "layers": [descriptor(layer_type, b) for b in blobs],
    }
    if artifact_type:
        document["artifactType"] = artifact_type
    if subject is not None:
        document["subject"] = descriptor(OCI_MANIFEST, subject)
    if annotations:
        document["annotations"] = annotations
    # Key order and whitespace that a re-serialising registry would change: byte-for-byte matters.
    text = json.dumps(document, indent=3 if pretty else None, separators=None if pretty else (",", ":"))
    return Image(config, blobs, text.encode(), annotations or {})


def index(manifests: list[bytes], subject: bytes | None = None, **extra: Any) -> bytes:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(OCI_MANIFEST, m, platform={"architecture": "amd64", "os": "linux"}) for m in manifests
        ],
        **extra,
    }
    if subject is not None:
        document["subject"] = descriptor(OCI_MANIFEST, subject)
    return json.dumps(document).encode()


def write_layout(directory: Path, tag: str, img: Image) -> Path:
    """An OCI image layout (oci:DIR:TAG for skopeo)."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for data in (*img.blobs, img.manifest):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    entry = descriptor(OCI_MANIFEST, img.manifest, annotations={"org.opencontainers.image.ref.name": tag})
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return directory


def push_blob(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest(data)}, content=data)


def push(
    client: httpx.Client, name: str, ref: str, img: Image, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    for blob in img.blobs:
        assert push_blob(client, name, blob).status_code == 201
    return client.put(
        f"/v2/{name}/manifests/{ref}", content=img.manifest, headers={"Content-Type": media_type}
    )
