"""What `npm publish` sends: one JSON document holding the manifest and a base64 tarball.

`parse_publish` checks the document against its URL and npm's rules and decodes the tarball;
`inspect_tarball` reads package.json (and the facts npm install needs) from the staged bytes.
"""

from __future__ import annotations

import base64
import binascii
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from artifactory_formats.npm import metadata
from artifactory_formats.npm.coordinates import (
    PackageName,
    clean_version,
    name_problem,
    version_problem,
)

from artifactory.plugin import (
    ARCHIVE_ERRORS,
    BadRequest,
    InvalidJSON,
    PayloadTooLarge,
    gunzip_bounded,
    inflation_limit,
    loads,
)

MAX_PACKAGE_JSON = 4 * 1024 * 1024
# How far reading a tarball may inflate it: 100 times its size, at least 64 MiB and at most 1 GiB
# (a tarball of 2 MB may unpack to 200 MB; a gzip bomb is refused with 413 before it is expanded).
MAX_INFLATE_RATIO = 100
MIN_INFLATE_BYTES = 64 * 1024 * 1024
MAX_INFLATE_BYTES = 1024 * 1024 * 1024
MAX_ENTRIES = 100_000
INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")
# Fields a client may not set in a version manifest: the registry writes them.
REGISTRY_FIELDS = ("_attachments", "_rev", "_npmUser", "readme")


@dataclass(frozen=True)
class Publication:
    package: PackageName
    version: str
    manifest: dict[str, Any]
    tarball: bytes
    expected: dict[str, str]  # digests the client claims, as hex, for the engine to verify
    tags: dict[str, str]
    readme: str | None


@dataclass(frozen=True)
class TarballFacts:
    manifest: dict[str, Any]
    has_shrinkwrap: bool
    has_gyp: bool


def parse_publish(doc: Mapping[str, Any], package: PackageName, max_bytes: int) -> Publication:
    problem = name_problem(package.full)
    if problem:
        raise BadRequest(f"invalid package name {package.full!r}: {problem}")
    name = doc.get("name")
    if name != package.full or doc.get("_id", name) != package.full:
        raise BadRequest(f"the document names {name!r}, but it was sent to {package.full!r}")
    versions = doc.get("versions")
    if not isinstance(versions, dict) or len(versions) != 1:
        raise BadRequest("a publish carries exactly one version")
    ((version, manifest),) = versions.items()
    problem = version_problem(version)
    if problem:
        raise BadRequest(problem)
    if not isinstance(manifest, dict):
        raise BadRequest(f"version {version} must be an object")
    if manifest.get("name") != package.full or manifest.get("version") != version:
        raise BadRequest(
            f"version {version}'s manifest names {manifest.get('name')}@{manifest.get('version')}"
        )
    tarball = _attachment(doc, package, version, max_bytes)
    expected = _expected_digests(metadata.as_dict(manifest.get("dist")))
    tags = doc.get("dist-tags") or {}
    if not isinstance(tags, dict):
        raise BadRequest("dist-tags must be an object")
    readme = doc.get("readme") if isinstance(doc.get("readme"), str) else manifest.get("readme")
    return Publication(
        package=package,
        version=version,
        manifest=dict(manifest),
        tarball=tarball,
        expected=expected,
        tags=metadata.check_tags(tags, version),
        readme=readme if isinstance(readme, str) else None,
    )


def _attachment(doc: Mapping[str, Any], package: PackageName, version: str, max_bytes: int) -> bytes:
    attachments = doc.get("_attachments")
    if not isinstance(attachments, dict):
        raise BadRequest("the document carries no _attachments")
    wanted = f"{package.full}-{version}.tgz"
    tarballs = {k: v for k, v in attachments.items() if not str(k).endswith(".sigstore")}
    if set(tarballs) != {wanted}:
        raise BadRequest(
            f"expected exactly one attachment named {wanted}, got {', '.join(map(str, tarballs))}"
        )
    attachment = tarballs[wanted]
    if not isinstance(attachment, dict) or not isinstance(attachment.get("data"), str):
        raise BadRequest(f"attachment {wanted} has no base64 data")
    data: str = attachment["data"]
    if len(data) // 4 * 3 > max_bytes + 3:
        raise PayloadTooLarge(f"the tarball is larger than this repository's limit of {max_bytes} bytes")
    try:
        tarball = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"attachment {wanted} is not valid base64") from None
    if len(tarball) > max_bytes:
        raise PayloadTooLarge(f"the tarball is larger than this repository's limit of {max_bytes} bytes")
    length = attachment.get("length")
    if length is not None and length != len(tarball):
        raise BadRequest(f"attachment {wanted} declares {length} bytes but holds {len(tarball)}")
    return tarball


def _expected_digests(dist: Mapping[str, Any]) -> dict[str, str]:
    """The client's shasum (sha1, hex) and integrity (SRI, sha512 and sha1 entries) as hex digests."""
    expected: dict[str, str] = {}
    shasum = dist.get("shasum")
    if shasum is not None:
        if not isinstance(shasum, str):
            raise BadRequest("dist.shasum must be a string")
        expected["sha1"] = shasum.lower()
    integrity = dist.get("integrity")
    if integrity is not None:
        if not isinstance(integrity, str):
            raise BadRequest("dist.integrity must be a string")
        for entry in integrity.split():
            algorithm, sep, value = entry.partition("-")
            if not sep or algorithm not in ("sha512", "sha1"):
                continue
            try:
                digest = base64.b64decode(value.split("?", 1)[0], validate=True).hex()
            except (binascii.Error, ValueError):
                raise BadRequest(f"dist.integrity holds an invalid {algorithm} entry") from None
            if expected.get(algorithm, digest) != digest:
                raise BadRequest(f"dist.integrity and dist.shasum disagree about the {algorithm} digest")
            expected[algorithm] = digest
    if "sha512" not in expected and "sha1" not in expected:
        raise BadRequest("dist.integrity (sha512) or dist.shasum is required")
    return expected


def inflate_limit(compressed: int) -> int:
    return inflation_limit(compressed, MAX_INFLATE_RATIO, MIN_INFLATE_BYTES, MAX_INFLATE_BYTES)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the tarball unpacks to more than {limit} bytes "
        f"({MAX_INFLATE_RATIO} times its size, at most {MAX_INFLATE_BYTES})"
    )


def inspect_tarball(file: IO[bytes]) -> TarballFacts:
    """package.json from `package/package.json` (npm's layout: one top-level folder), and whether the
    package holds npm-shrinkwrap.json or binding.gyp at its root. The archive is read as a stream,
    inflating it at most `inflate_limit(compressed size)` bytes."""
    found: dict[str, Any] | None = None
    has_shrinkwrap = has_gyp = False
    compressed = file.seek(0, io.SEEK_END)
    file.seek(0)
    try:
        stream = gunzip_bounded(file, inflate_limit(compressed), _too_large)
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for count, member in enumerate(archive, 1):
                if count > MAX_ENTRIES:
                    raise BadRequest(f"the tarball holds more than {MAX_ENTRIES} entries")
                parts = member.name.lstrip("./").split("/")
                if len(parts) != 2 or not member.isfile():
                    continue
                if parts[1] == "npm-shrinkwrap.json":
                    has_shrinkwrap = True
                elif parts[1] == "binding.gyp":
                    has_gyp = True
                elif parts[1] == "package.json" and found is None:
                    if member.size > MAX_PACKAGE_JSON:
                        raise BadRequest("package.json in the tarball is too large")
                    handle = archive.extractfile(member)
                    if handle is None:
                        continue
                    parsed = loads(handle.read(), "package.json in the tarball", allow_nul=True)
                    if not isinstance(parsed, dict):
                        raise BadRequest("package.json in the tarball is not a JSON object")
                    found = parsed
    except InvalidJSON:
        raise  # a ValueError too, but the archive was read: its message names package.json
    except ARCHIVE_ERRORS as exc:
        raise BadRequest(f"the tarball is not a gzip-compressed tar archive: {exc}") from None
    if found is None:
        raise BadRequest("the tarball holds no package/package.json")
    return TarballFacts(found, has_shrinkwrap, has_gyp)


def check_agreement(publication: Publication, facts: TarballFacts) -> None:
    inside = facts.manifest
    name, version = inside.get("name"), inside.get("version")
    if name != publication.package.full:
        raise BadRequest(
            f"package.json in the tarball names {name!r}, the document {publication.package.full!r}"
        )
    if not isinstance(version, str) or clean_version(version) != publication.version:
        raise BadRequest(
            f"package.json in the tarball has version {version!r}, the document {publication.version!r}"
        )


def stored_manifest(
    publication: Publication,
    facts: TarballFacts,
    tarball_path: str,
    digests: Mapping[str, str],
    username: str,
) -> dict[str, Any]:
    """The version manifest as the registry keeps it: the client's, with registry-owned fields set."""
    manifest = {k: v for k, v in publication.manifest.items() if k not in REGISTRY_FIELDS}
    dist = dict(manifest.get("dist") or {})
    dist.update(
        tarball=tarball_path,
        shasum=digests["sha1"],
        integrity="sha512-" + base64.b64encode(bytes.fromhex(digests["sha512"])).decode(),
    )
    manifest["dist"] = dist
    manifest["_id"] = f"{publication.package.full}@{publication.version}"
    manifest["_npmUser"] = {"name": username, "email": ""}
    manifest["_hasShrinkwrap"] = facts.has_shrinkwrap
    scripts = {**metadata.as_dict(manifest.get("scripts")), **metadata.as_dict(facts.manifest.get("scripts"))}
    if facts.has_gyp or any(s in scripts for s in INSTALL_SCRIPTS):
        manifest["hasInstallScript"] = True
    return manifest
