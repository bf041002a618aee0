"""Packuments as plain data: pure functions that build, change, merge and render them.

A hosted repository stores one package document per package at the packument path. It is npm's own
CouchDB-shaped document, precomputed on every write (so a read never scans versions), with one
difference from what clients see: each `dist.tarball` is a path relative to the repository root.
That document is the model of the engine's index protocol; an upstream's packument is parsed into
the same shape (`parse_upstream`: `relativize` maps its absolute tarball URLs to paths below the
repository, declared with their upstream URLs and digests), a group merges members' models
(`merge`), and rendering for a request turns tarball paths into absolute URLs of the repository
being asked (`absolutized`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import semver
from artifactory_formats.npm.coordinates import PackageName, tag_problem

from artifactory.plugin import (
    BadRequest,
    Conflict,
    FileRef,
    Forbidden,
    HTTPProblem,
    IndexKey,
    NotFound,
    Parsed,
    ascii_digits,
    loads,
)

Doc = dict[str, Any]
PACKUMENT = "packument"  # the IndexKey kind of a packument
JSON_TYPE = "application/json"
ABBREVIATED_TYPE = "application/vnd.npm.install-v1+json"
ABBREVIATED_FIELDS = (
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "_hasShrinkwrap",
    "hasInstallScript",
    "cpu",
    "os",
    "libc",
    "funding",
    "license",
)
# Hex digest lengths of the SRI algorithms the engine can verify, strongest first (npm's ssri checks
# the strongest algorithm an integrity string names).
SRI_ALGORITHMS = {"sha512": 128, "sha256": 64, "sha1": 40}
_HEX = re.compile(r"^[0-9a-f]+$")
# Top-level fields that follow the manifest of the version `latest` points at.
LATEST_FIELDS = ("description", "keywords", "license", "homepage", "repository", "author", "bugs")


def now_iso() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def packument_key(package: PackageName) -> IndexKey:
    """The index document of a package's packument (both its full and abbreviated forms)."""
    return IndexKey(PACKUMENT, name=package.bare, namespace=package.scope)


def key_package(key: IndexKey) -> PackageName:
    return PackageName(key.namespace, key.name)


def load(body: bytes) -> Doc:
    """A stored package document (one this server wrote, or an upstream's it checked when caching).

    Documents from outside go through the engine's `loads` first."""
    try:
        doc = json.loads(body)
    except RecursionError:
        raise BadRequest("the package document is nested too deeply") from None
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the package document is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadRequest("the package document must be a JSON object")
    return doc


def dump(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def versions_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    versions = doc.get("versions")
    return versions if isinstance(versions, dict) else {}


def tags_of(doc: Mapping[str, Any]) -> dict[str, str]:
    tags = doc.get("dist-tags")
    if not isinstance(tags, dict):
        return {}
    return {k: v for k, v in tags.items() if isinstance(k, str) and isinstance(v, str)}


def highest(versions: Iterable[str], prefer_release: bool = True) -> str | None:
    """The highest version, releases before pre-releases when `prefer_release` (npm's `latest` fallback)."""
    valid = []
    for version in versions:
        try:
            valid.append((semver.Version.parse(version), version))
        except (ValueError, TypeError):
            continue
    if not valid:
        return None
    releases = [item for item in valid if not item[0].prerelease]
    pool = releases if prefer_release and releases else valid
    return max(pool, key=lambda item: item[0])[1]


def _bump(doc: Doc) -> None:
    previous = str(doc.get("_rev") or "0-")
    count = previous.split("-", 1)[0]
    number = int(count) + 1 if ascii_digits(count) else 1
    doc["_rev"] = f"{number}-{uuid.uuid4().hex[:16]}"


def _touch(doc: Doc, when: str) -> None:
    time = doc.setdefault("time", {})
    if not isinstance(time, dict):
        doc["time"] = time = {}
    time.setdefault("created", when)
    time["modified"] = when
    _bump(doc)


# -- hosted writes ---------------------------------------------------------------------------
def new_document(package: PackageName, when: str) -> Doc:
    return {
        "_id": package.full,
        "name": package.full,
        "dist-tags": {},
        "versions": {},
        "time": {"created": when, "modified": when},
        "maintainers": [],
    }


def add_version(
    old: bytes | None,
    package: PackageName,
    manifest: Mapping[str, Any],
    tags: Mapping[str, str],
    readme: str | None,
    username: str,
    when: str,
) -> bytes:
    """The package document with one more version; 403 if that version exists (versions are immutable)."""
    doc = load(old) if old is not None else new_document(package, when)
    version = str(manifest["version"])
    versions = doc.setdefault("versions", {})
    if version in versions:
        raise Forbidden(f"cannot publish over the previously published version {package.full}@{version}")
    versions[version] = dict(manifest)
    dist_tags = doc.setdefault("dist-tags", {})
    for tag, target in tags.items():
        dist_tags[tag] = target
    if "latest" not in dist_tags or dist_tags["latest"] not in versions:
        dist_tags["latest"] = version
    if dist_tags["latest"] == version:
        for key in LATEST_FIELDS:
            if key in manifest:
                doc[key] = manifest[key]
            else:
                doc.pop(key, None)
        if readme:
            doc["readme"] = readme
            if isinstance(manifest.get("readmeFilename"), str):
                doc["readmeFilename"] = manifest["readmeFilename"]
    maintainers = doc.setdefault("maintainers", [])
    if not any(isinstance(m, dict) and m.get("name") == username for m in maintainers):
        maintainers.append({"name": username, "email": ""})
    doc["time"] = {**doc.get("time", {}), version: when}
    _touch(doc, when)
    return dump(doc)


def _check_rev(doc: Mapping[str, Any], rev: str | None) -> None:
    if rev and rev != doc.get("_rev"):
        raise Conflict(f"document update conflict: revision {rev} is not the current one ({doc.get('_rev')})")


def _drop_versions(doc: Doc, removed: Sequence[str]) -> None:
    versions = versions_of(doc)
    for version in removed:
        versions.pop(version, None)
        if isinstance(doc.get("time"), dict):
            doc["time"].pop(version, None)
    tags = tags_of(doc)
    latest_gone = tags.get("latest") in removed
    tags = {tag: target for tag, target in tags.items() if target in versions}
    if latest_gone or "latest" not in tags:
        fallback = highest(versions)
        if fallback is not None:
            tags["latest"] = fallback
    doc["dist-tags"] = tags


def apply_update(
    old: bytes | None, client: Mapping[str, Any], rev: str | None, may_delete: bool, when: str
) -> tuple[bytes | None, list[str]]:
    """A client's whole-document PUT (npm deprecate, npm unpublish of one version).

    Accepted from the client: which of the stored versions remain (removing some needs the delete
    privilege) and each remaining version's `deprecated` message. Everything else a version holds is
    immutable; dist-tags change through their own endpoint, except that tags of removed versions go
    and `latest` is recomputed when the version it pointed at is removed. Returns (new document,
    removed versions).
    """
    if old is None:
        raise NotFound("package not found")
    doc = load(old)
    _check_rev(doc, rev or (client.get("_rev") if isinstance(client.get("_rev"), str) else None))
    wanted = client.get("versions")
    if not isinstance(wanted, dict):
        raise BadRequest("the package document needs a versions object")
    versions = versions_of(doc)
    # Versions the repository does not hold are ignored: they are published with their tarball (npm
    # publish), and a document read through a group may name versions of other members.
    removed = [v for v in versions if v not in wanted]
    if removed and not may_delete:
        raise Forbidden("unpublishing versions needs the delete privilege")
    if removed and len(removed) == len(versions):
        raise BadRequest("a package keeps at least one version: unpublish the whole package instead")
    changed = bool(removed)
    for version, manifest in versions.items():
        if version in removed:
            continue
        sent = wanted[version]
        message = sent.get("deprecated") if isinstance(sent, dict) else None
        if isinstance(message, str) and message:
            if manifest.get("deprecated") != message:
                manifest["deprecated"] = message
                changed = True
        elif "deprecated" in manifest:
            del manifest["deprecated"]
            changed = True
    if not changed:
        return old, []
    _drop_versions(doc, removed)
    _touch(doc, when)
    return dump(doc), removed


def delete_document(old: bytes | None, rev: str | None) -> None:
    """The transform of a whole-package unpublish: checks the revision, then the document goes."""
    if old is None:
        raise NotFound("package not found")
    _check_rev(load(old), rev)
    return None


def set_tag(old: bytes | None, tag: str, version: str, when: str) -> bytes:
    if old is None:
        raise NotFound("package not found")
    problem = tag_problem(tag)
    if problem:
        raise BadRequest(problem)
    doc = load(old)
    if version not in versions_of(doc):
        raise BadRequest(f"version {version} of {doc.get('name')} does not exist")
    tags = tags_of(doc)
    if tags.get(tag) == version:
        return old
    tags[tag] = version
    doc["dist-tags"] = tags
    _touch(doc, when)
    return dump(doc)


def remove_tag(old: bytes | None, tag: str, when: str) -> bytes:
    if old is None:
        raise NotFound("package not found")
    if tag == "latest":
        raise BadRequest("the latest tag cannot be removed: point it at another version instead")
    doc = load(old)
    tags = tags_of(doc)
    if tag not in tags:
        raise NotFound(f"{tag} is not a dist-tag of {doc.get('name')}")
    del tags[tag]
    doc["dist-tags"] = tags
    _touch(doc, when)
    return dump(doc)


# -- documents from elsewhere ----------------------------------------------------------------
def relativize(doc: Doc, package: PackageName) -> dict[str, str]:
    """Turn absolute tarball URLs (an upstream's) into paths below this repository, in place.

    Returns {path: absolute upstream URL} for the proxy to fetch those paths from.
    """
    links: dict[str, str] = {}
    taken: set[str] = set()
    for version, manifest in versions_of(doc).items():
        dist = manifest.get("dist") if isinstance(manifest, dict) else None
        if not isinstance(dist, dict) or not isinstance(dist.get("tarball"), str):
            continue
        url = dist["tarball"]
        if "://" not in url:
            taken.add(url)
            continue
        file = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        path = package.tarball_folder + file
        if not file.endswith(".tgz") or "/" in file or "%" in file or path in taken:
            path = package.tarball_path(version)
        taken.add(path)
        links[path] = url
        dist["tarball"] = path
    return links


def sri_digests(integrity: str) -> dict[str, str]:
    """The entries of an SRI string (`sha512-<base64> ...`) the engine can verify, as hex; entries
    that are malformed or of another algorithm are left out."""
    found: dict[str, str] = {}
    for entry in integrity.split():
        algorithm, sep, value = entry.partition("-")
        if not sep or algorithm not in SRI_ALGORITHMS or algorithm in found:
            continue
        try:
            digest = base64.b64decode(value.split("?", 1)[0], validate=True).hex()
        except (binascii.Error, ValueError):
            continue
        if len(digest) == SRI_ALGORITHMS[algorithm]:
            found[algorithm] = digest
    return found


def dist_digests(dist: Mapping[str, Any]) -> dict[str, str]:
    """What a version's `dist` says its tarball hashes to, as npm checks it: the strongest algorithm
    of `integrity`, else `shasum` (sha1, hex). Empty when it says nothing usable."""
    integrity = dist.get("integrity")
    found = sri_digests(integrity) if isinstance(integrity, str) else {}
    for algorithm in SRI_ALGORITHMS:
        if algorithm in found:
            return {algorithm: found[algorithm]}
    shasum = dist.get("shasum")
    if isinstance(shasum, str) and len(shasum) == 40 and _HEX.match(shasum.lower()):
        return {"sha1": shasum.lower()}
    return {}


def parse_upstream(body: bytes, package: PackageName, url: str) -> Parsed:
    """An upstream's packument (fetched from `url`) as the model, tarball paths relative to the
    repository, with each tarball of the package declared at its path: its upstream URL and what its
    `dist` says it hashes to, which the engine verifies while the tarball streams. A tarball named
    by a relative path lives that far below the upstream registry's root, as this repository's do.
    ValueError for a document that is not a packument."""
    try:
        doc = loads(body, "the upstream packument", max_values=None, allow_nul=True)
    except HTTPProblem as exc:
        raise ValueError(exc.message) from None
    if not isinstance(doc, dict):
        raise ValueError("the upstream packument is not a JSON object")
    links = relativize(doc, package)
    root = url[: url.rindex("/") + 1] if "/" in url else url  # the packument's path is one segment
    files = {}
    for manifest in versions_of(doc).values():
        dist = as_dict(as_dict(manifest).get("dist"))
        path = dist.get("tarball")
        if not isinstance(path, str):
            continue
        if path in links:
            files[path] = FileRef(links[path], dist_digests(dist))
        elif path.startswith(package.tarball_folder) and "/" not in path[len(package.tarball_folder) :]:
            files[path] = FileRef(root + quote(path, safe="/@+"), dist_digests(dist))
    return Parsed(doc, files)


def merge(docs: Sequence[Doc]) -> Doc:
    """A group's packument from its members' (first member first).

    Versions are the union, the first member that has a version wins; `latest` is the highest of the
    members' `latest`; other tags come from the first member that has them; no tag points at a version
    missing from the result. (The engine leaves proxied documents out while a hosted member holds
    the package: the dependency-confusion guard.) The members' documents are not changed.
    """
    first = docs[0]
    result: Doc = {k: v for k, v in first.items() if k not in ("versions", "dist-tags", "time", "_rev")}
    versions: dict[str, Any] = {}
    times: dict[str, str] = {}
    created: list[str] = []
    modified: list[str] = []
    for doc in docs:
        doc_time = as_dict(doc.get("time"))
        for version, manifest in versions_of(doc).items():
            if version not in versions:
                versions[version] = manifest
                if isinstance(doc_time.get(version), str):
                    times[version] = doc_time[version]
        if isinstance(doc_time.get("created"), str):
            created.append(doc_time["created"])
        if isinstance(doc_time.get("modified"), str):
            modified.append(doc_time["modified"])
    tags: dict[str, str] = {}
    latest = highest(
        (tags_of(doc)["latest"] for doc in docs if tags_of(doc).get("latest") in versions),
        prefer_release=False,
    )
    for doc in docs:
        for tag, target in tags_of(doc).items():
            if tag != "latest" and tag not in tags and target in versions:
                tags[tag] = target
    if latest is not None:
        tags["latest"] = latest
    elif versions:
        tags["latest"] = highest(versions) or next(iter(versions))
    result["versions"] = versions
    result["dist-tags"] = tags
    result["time"] = {
        **({"created": min(created)} if created else {}),
        **({"modified": max(modified)} if modified else {}),
        **times,
    }
    return result


# -- rendering -------------------------------------------------------------------------------
def absolutized(doc: Doc, repository_url: str) -> Doc:
    """The packument as clients see it: tarball URLs absolute below `repository_url`. A copy: the
    model it is rendered from is cached and shared, and never changed."""
    versions = {}
    for version, manifest in versions_of(doc).items():
        dist = manifest.get("dist") if isinstance(manifest, dict) else None
        if isinstance(dist, dict) and isinstance(dist.get("tarball"), str) and "://" not in dist["tarball"]:
            url = repository_url + quote(dist["tarball"], safe="/@+")
            manifest = {**manifest, "dist": {**dist, "tarball": url}}
        versions[version] = manifest
    return {**doc, "versions": versions}


def abbreviated(doc: Doc) -> bytes:
    versions = {
        version: {k: manifest[k] for k in ABBREVIATED_FIELDS if k in manifest}
        for version, manifest in versions_of(doc).items()
        if isinstance(manifest, dict)
    }
    time = as_dict(doc.get("time"))
    return dump(
        {
            "name": doc.get("name"),
            "modified": time.get("modified") or now_iso(),
            "dist-tags": tags_of(doc),
            "versions": versions,
        }
    )


def version_manifest(doc: Doc, wanted: str) -> Doc:
    """One version's manifest, by version or dist-tag (GET /{name}/{version})."""
    versions = versions_of(doc)
    version = tags_of(doc).get(wanted, wanted)
    manifest = versions.get(version)
    if not isinstance(manifest, dict):
        raise NotFound(f"version {wanted} of {doc.get('name')} not found")
    return manifest


def check_tags(tags: Mapping[str, Any], version: str) -> dict[str, str]:
    """The dist-tags a publish document carries: each valid and pointing at the version published."""
    result = {}
    for tag, target in tags.items():
        problem = tag_problem(tag)
        if problem:
            raise BadRequest(problem)
        if target != version:
            raise BadRequest(f"dist-tag {tag} must point at the version being published ({version})")
        result[tag] = version
    return result
