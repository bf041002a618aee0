"""Maven 2 layout paths <-> coordinates, and Maven's version order.

    {group/id/as/folders}/{artifactId}/{baseVersion}/{artifactId}-{version}[-{classifier}].{extension}

`baseVersion` is the folder ("1.0" or "1.0-SNAPSHOT"); `version` is what the file name carries, which
for a deployed snapshot is the timestamped form "1.0-20240101.120000-3" (timestamp, build number).
Checksum files (`.md5`, `.sha1`, `.sha256`, `.sha512`) and `maven-metadata.xml` are never artifacts.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

CHECKSUMS = ("md5", "sha1", "sha256", "sha512")
HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
METADATA = "maven-metadata.xml"
SNAPSHOT_SUFFIX = "-SNAPSHOT"

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_EXTENSION = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_CLASSIFIER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_TIMESTAMPED = re.compile(r"^-(\d{8}\.\d{6})-([1-9]\d{0,8})", re.ASCII)


class LayoutError(ValueError):
    """A path that is not a Maven 2 layout file path; the message says what is wrong."""


@dataclass(frozen=True)
class Artifact:
    path: str
    group_id: str
    artifact_id: str
    base_version: str
    version: str
    classifier: str
    extension: str
    timestamp: str = ""  # "yyyyMMdd.HHmmss" of a timestamped snapshot file
    build_number: int = 0

    @property
    def snapshot(self) -> bool:
        return is_snapshot(self.base_version)

    @property
    def timestamped(self) -> bool:
        return bool(self.timestamp)

    @property
    def is_pom(self) -> bool:
        return self.extension == "pom" and not self.classifier

    @property
    def is_main_jar(self) -> bool:
        return self.extension == "jar" and not self.classifier

    def describe(self) -> dict[str, object]:
        facts: dict[str, object] = {
            "groupId": self.group_id,
            "artifactId": self.artifact_id,
            "baseVersion": self.base_version,
            "version": self.version,
            "classifier": self.classifier,
            "extension": self.extension,
        }
        if self.timestamp:
            facts.update(timestamp=self.timestamp, buildNumber=self.build_number)
        return facts


def is_snapshot(version: str) -> bool:
    return version.endswith(SNAPSHOT_SUFFIX)


def split_checksum(path: str) -> tuple[str, str | None]:
    """("x.jar", "sha1") for "x.jar.sha1"; (path, None) for anything else."""
    base, dot, ext = path.rpartition(".")
    if dot and ext in CHECKSUMS and base and not base.endswith("/"):
        return base, ext
    return path, None


def is_metadata(path: str) -> bool:
    return path == METADATA or path.endswith("/" + METADATA)


def parse_artifact(path: str) -> Artifact:
    """The coordinates of a layout file path, or LayoutError saying why it is not one."""
    segments = path.split("/")
    if len(segments) < 4:
        raise LayoutError(
            f"{path!r} is not a Maven 2 layout path "
            "(expected group/artifactId/version/artifactId-version[-classifier].extension)"
        )
    *group, artifact_id, base_version, filename = segments
    for segment in group:
        if not _ID.match(segment):
            raise LayoutError(f"{segment!r} is not a valid groupId segment in {path!r}")
    if not _ID.match(artifact_id):
        raise LayoutError(f"{artifact_id!r} is not a valid artifactId in {path!r}")
    if not _VERSION.match(base_version):
        raise LayoutError(f"{base_version!r} is not a valid version in {path!r}")
    prefix = artifact_id + "-"
    if not filename.startswith(prefix):
        raise LayoutError(f"file name {filename!r} does not start with the artifactId {artifact_id!r}-")
    rest = filename[len(prefix) :]
    timestamp, build = "", 0
    if rest.startswith(base_version) and rest[len(base_version) : len(base_version) + 1] in (".", "-"):
        version, tail = base_version, rest[len(base_version) :]
    elif is_snapshot(base_version) and rest.startswith(base_version[: -len(SNAPSHOT_SUFFIX)] + "-"):
        stem = base_version[: -len(SNAPSHOT_SUFFIX)]
        match = _TIMESTAMPED.match(rest[len(stem) :])
        if match is None:
            raise LayoutError(
                f"file name {filename!r} carries neither {base_version!r} nor a timestamped snapshot "
                f"version ({stem}-yyyyMMdd.HHmmss-N)"
            )
        timestamp, build = match.group(1), int(match.group(2))
        version = f"{stem}-{timestamp}-{build}"
        tail = rest[len(stem) + match.end() :]
    else:
        raise LayoutError(f"file name {filename!r} does not carry the version of its folder {base_version!r}")
    classifier = ""
    if tail.startswith("-"):
        classifier, dot, extension = tail[1:].partition(".")
        if not dot or not _CLASSIFIER.match(classifier):
            raise LayoutError(f"file name {filename!r} has no valid classifier and extension")
    elif tail.startswith("."):
        extension = tail[1:]
    else:
        raise LayoutError(f"file name {filename!r} has no extension")
    if not _EXTENSION.match(extension):
        raise LayoutError(f"{extension!r} is not a valid extension in {path!r}")
    if extension.rpartition(".")[2] in CHECKSUMS:
        raise LayoutError(f"{path!r} is a checksum file, not an artifact")
    return Artifact(
        path=path,
        group_id=".".join(group),
        artifact_id=artifact_id,
        base_version=base_version,
        version=version,
        classifier=classifier,
        extension=extension,
        timestamp=timestamp,
        build_number=build,
    )


def try_artifact(path: str) -> Artifact | None:
    try:
        return parse_artifact(path)
    except LayoutError:
        return None


@dataclass(frozen=True)
class MetadataScope:
    """What a maven-metadata.xml path may describe; one path can be several levels at once
    (g/a/maven-metadata.xml is artifact `a` of group `g` and group `g.a`'s plugin list)."""

    group_level: str  # groupId whose plugin prefixes it lists
    artifact: tuple[str, str] | None  # (groupId, artifactId) whose versions it lists
    snapshot: tuple[str, str, str] | None  # (groupId, artifactId, baseVersion) of a snapshot folder


def metadata_scope(path: str) -> MetadataScope | None:
    if not is_metadata(path):
        return None
    folders = path.split("/")[:-1]
    if not folders or not all(_ID.match(s) or _VERSION.match(s) for s in folders):
        return None
    artifact = None
    snapshot = None
    if len(folders) >= 2:
        artifact = (".".join(folders[:-1]), folders[-1])
    if len(folders) >= 3 and is_snapshot(folders[-1]):
        snapshot = (".".join(folders[:-2]), folders[-2], folders[-1])
    return MetadataScope(group_level=".".join(folders), artifact=artifact, snapshot=snapshot)


# -- Maven's version order (org.apache.maven.artifact.versioning.ComparableVersion) ----------------
_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_RELEASE_INDEX = str(_QUALIFIERS.index(""))


def _qualifier_key(value: str) -> str:
    if value in _QUALIFIERS:
        return str(_QUALIFIERS.index(value))
    return f"{len(_QUALIFIERS)}-{value}"


class _Item:
    __slots__ = ()

    def compare(self, other: _Item | None) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def is_null(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


class _Int(_Item):
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def is_null(self) -> bool:
        return self.value == 0

    def compare(self, other: _Item | None) -> int:
        if other is None:
            return 0 if self.value == 0 else 1
        if isinstance(other, _Int):
            return (self.value > other.value) - (self.value < other.value)
        return 1


class _Str(_Item):
    __slots__ = ("key",)

    def __init__(self, value: str, followed_by_digit: bool) -> None:
        if followed_by_digit and len(value) == 1:
            value = {"a": "alpha", "b": "beta", "m": "milestone"}.get(value, value)
        self.key = _qualifier_key(_ALIASES.get(value, value))

    def is_null(self) -> bool:
        return self.key == _RELEASE_INDEX

    def compare(self, other: _Item | None) -> int:
        if other is None:
            return (self.key > _RELEASE_INDEX) - (self.key < _RELEASE_INDEX)
        if isinstance(other, _Int):
            return -1
        if isinstance(other, _Str):
            return (self.key > other.key) - (self.key < other.key)
        return -1


class _List(_Item):
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[_Item] = []

    def is_null(self) -> bool:
        return not self.items

    def normalize(self) -> None:
        # Drop trailing null items ("1.0.0" == "1"), looking past trailing sub-lists as Maven does.
        for i in range(len(self.items) - 1, -1, -1):
            item = self.items[i]
            if item.is_null():
                del self.items[i]
            elif not isinstance(item, _List):
                break

    def compare(self, other: _Item | None) -> int:
        if other is None:
            for item in self.items:
                result = item.compare(None)
                if result:
                    return result
            return 0
        if isinstance(other, (_Int, _Str)):
            return -1 if isinstance(other, _Int) else 1
        assert isinstance(other, _List)
        for i in range(max(len(self.items), len(other.items))):
            left = self.items[i] if i < len(self.items) else None
            right = other.items[i] if i < len(other.items) else None
            if left is None:
                result = 0 if right is None else -right.compare(None)
            else:
                result = left.compare(right)
            if result:
                return result
        return 0


def _parse_version(version: str) -> _List:
    text = version.lower()
    root = _List()
    current = root
    stack = [root]
    start = 0
    digit = False

    def item(token: str, is_digit: bool, next_is_digit: bool) -> _Item:
        return _Int(int(token)) if is_digit else _Str(token, next_is_digit)

    for i, char in enumerate(text):
        if char == ".":
            current.items.append(_Int(0) if i == start else item(text[start:i], digit, False))
            start = i + 1
        elif char == "-":
            current.items.append(_Int(0) if i == start else item(text[start:i], digit, False))
            start = i + 1
            sub = _List()
            current.items.append(sub)
            current = sub
            stack.append(sub)
        elif "0" <= char <= "9":  # ASCII only: int() refuses "²", which str.isdigit() takes
            if not digit and i > start:
                current.items.append(_Str(text[start:i], True))
                start = i
                sub = _List()
                current.items.append(sub)
                current = sub
                stack.append(sub)
            digit = True
        else:
            if digit and i > start:
                current.items.append(_Int(int(text[start:i])))
                start = i
                sub = _List()
                current.items.append(sub)
                current = sub
                stack.append(sub)
            digit = False
    if len(text) > start:
        current.items.append(item(text[start:], digit, False))
    for sub in reversed(stack):
        sub.normalize()
    return root


@functools.lru_cache(maxsize=65536)
def _parsed(version: str) -> _List:
    return _parse_version(version)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Maven orders versions ("1.0-alpha-1" < "1.0-SNAPSHOT" < "1.0" < "1.0-sp1")."""
    return _parsed(a).compare(_parsed(b))


version_key = functools.cmp_to_key(compare_versions)
