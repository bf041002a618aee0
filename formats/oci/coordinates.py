"""OCI names, references and digests, and where each thing lives in a repository.

Layout of an oci repository (the only place it is described), for an image `<image>` (which may
contain slashes):

    <image>/blobs/<alg>:<hex>         a blob (layer, config), content-addressed
    <image>/manifests/sha256:<hex>    a manifest, byte for byte, stored with its media type
    <image>/manifests/<tag>           a tag: the same bytes as the manifest it points at

A proxy asks its upstream for the computed documents by the paths `<image>/tags/list` and
`<image>/referrers/<alg>:<hex>` (see documents.py); they are cached by the engine's index, not at
these paths.

Tags and digests share the manifests/ folder because a tag can never contain ':', and because a
group then finds `<image>/manifests/<ref>` the same way in a hosted member and in a proxy member.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The distribution spec's grammar. A repository name here is "<our repository>/<image>".
COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(rf"^{COMPONENT}(?:/{COMPONENT})*$")
REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
MAX_NAME = 255
# Digest algorithms we verify (the blob store computes both in its single ingest pass).
HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[0-9a-f]+$")

MANIFEST_DIR = "/manifests/"
BLOB_DIR = "/blobs/"


class InvalidDigest(ValueError):
    pass


@dataclass(frozen=True)
class Name:
    """`<repository>/<image>` as the distribution API names it."""

    repository: str
    image: str

    @property
    def full(self) -> str:
        return f"{self.repository}/{self.image}"


def parse_name(name: str) -> Name | None:
    """Split an API name into our repository and the image; None when it is not a valid name."""
    if len(name) > MAX_NAME:
        return None
    repository, sep, image = name.partition("/")
    if not sep or not REPOSITORY.match(repository) or not IMAGE.match(image):
        return None
    return Name(repository, image)


@dataclass(frozen=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(value: str) -> Digest:
    """A digest we can verify; InvalidDigest for bad grammar, unknown algorithms or wrong lengths."""
    if not DIGEST.match(value):
        raise InvalidDigest(f"invalid digest {value!r}")
    algorithm, _, encoded = value.partition(":")
    if algorithm not in HEX_LENGTH:
        raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
    if len(encoded) != HEX_LENGTH[algorithm] or not _HEX.match(encoded):
        raise InvalidDigest(f"{algorithm} digest must be {HEX_LENGTH[algorithm]} lower-case hex characters")
    return Digest(algorithm, encoded)


def is_digest_reference(reference: str) -> bool:
    return ":" in reference


def blob_path(image: str, digest: Digest | str) -> str:
    return f"{image}{BLOB_DIR}{digest}"


def manifest_path(image: str, reference: Digest | str) -> str:
    return f"{image}{MANIFEST_DIR}{reference}"


def tags_path(image: str) -> str:
    return f"{image}/tags/list"


def referrers_path(image: str, digest: Digest | str) -> str:
    return f"{image}/referrers/{digest}"


@dataclass(frozen=True)
class Located:
    """What a repository path holds: kind is "blob", "manifest", "tags" or "referrers"."""

    image: str
    kind: str
    reference: str


_PATH = re.compile(r"^(?P<image>.+)/(?P<kind>blobs|manifests|referrers)/(?P<ref>[^/]+)$")


def locate(path: str) -> Located | None:
    if path.endswith("/tags/list"):
        return Located(path[: -len("/tags/list")], "tags", "")
    match = _PATH.match(path)
    if match is None:
        return None
    kind = {"blobs": "blob", "manifests": "manifest", "referrers": "referrers"}[match["kind"]]
    return Located(match["image"], kind, match["ref"])
