"""Reading what clients upload: POMs, plugin descriptors inside plugin jars, checksum files."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from artifactory_formats.maven import safexml
from artifactory_formats.maven.coordinates import HEX_LENGTHS, Artifact

from artifactory.plugin import ARCHIVE_ERRORS, zip_member_name

MAX_POM_BYTES = 4 * 1024 * 1024
MAX_DESCRIPTOR_BYTES = 8 * 1024 * 1024
MAX_CHECKSUM_BYTES = 4096
PLUGIN_DESCRIPTOR = "META-INF/maven/plugin.xml"
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class InvalidUpload(ValueError):
    """An upload this format refuses; the message is the client's 400 reason."""


@dataclass(frozen=True)
class Pom:
    group_id: str
    artifact_id: str
    version: str
    packaging: str
    name: str


def read_pom(data: bytes) -> Pom:
    try:
        root = safexml.parse(data, "the POM", limit=MAX_POM_BYTES)
    except safexml.UnsafeXML as exc:
        raise InvalidUpload(str(exc)) from None
    if safexml.local(root.tag) != "project":
        raise InvalidUpload("the POM has no <project> root element")
    parent = safexml.child(root, "parent")
    return Pom(
        group_id=safexml.text(root, "groupId") or safexml.text(parent, "groupId"),
        artifact_id=safexml.text(root, "artifactId"),
        version=safexml.text(root, "version") or safexml.text(parent, "version"),
        packaging=safexml.text(root, "packaging") or "jar",
        name=safexml.text(root, "name"),
    )


def check_pom(pom: Pom, artifact: Artifact) -> None:
    """The POM must describe the coordinates its path claims (unresolved ${...} values are skipped)."""
    for label, declared, expected in (
        ("groupId", pom.group_id, artifact.group_id),
        ("artifactId", pom.artifact_id, artifact.artifact_id),
        ("version", pom.version, artifact.base_version),
    ):
        if not declared:
            raise InvalidUpload(f"the POM declares no {label}")
        if "${" in declared:
            continue
        if declared != expected:
            raise InvalidUpload(
                f"the POM's {label} {declared!r} disagrees with the path {artifact.path!r} ({expected!r})"
            )


@dataclass(frozen=True)
class PluginDescriptor:
    prefix: str
    name: str


def read_plugin_descriptor(file: BinaryIO) -> PluginDescriptor | None:
    """The goal prefix of a Maven plugin jar (None for any other jar, or a file that is not a zip)."""
    try:
        with zipfile.ZipFile(file) as archive:
            try:
                info = archive.getinfo(PLUGIN_DESCRIPTOR)
            except KeyError:
                return None
            zip_member_name(info)  # a descriptor another unzip names otherwise: not a plugin jar
            if info.file_size > MAX_DESCRIPTOR_BYTES:
                raise InvalidUpload(f"{PLUGIN_DESCRIPTOR} is larger than {MAX_DESCRIPTOR_BYTES} bytes")
            with archive.open(info) as handle:
                data = handle.read(MAX_DESCRIPTOR_BYTES + 1)
    except ARCHIVE_ERRORS:  # a jar that cannot be read is not a plugin jar
        return None
    try:
        root = safexml.parse(data, PLUGIN_DESCRIPTOR, limit=MAX_DESCRIPTOR_BYTES)
    except safexml.UnsafeXML as exc:
        raise InvalidUpload(str(exc)) from None
    prefix = safexml.text(root, "goalPrefix")
    if not prefix:
        return None
    return PluginDescriptor(prefix=prefix, name=safexml.text(root, "name"))


def read_checksum(body: bytes, algorithm: str) -> str:
    """The digest in an uploaded checksum file ("<hex>" or "<hex>  <file name>"), lower-case."""
    try:
        words = body.decode("ascii").split()
    except UnicodeDecodeError:
        raise InvalidUpload(f"the {algorithm} checksum file is not ASCII text") from None
    if not words or not _HEX.match(words[0]) or len(words[0]) != HEX_LENGTHS[algorithm]:
        raise InvalidUpload(
            f"the {algorithm} checksum file does not hold a {HEX_LENGTHS[algorithm]}-digit hex digest"
        )
    return words[0].lower()
