"""Names, filenames and repository paths: the one place that knows the layout.

    simple/                          root index (computed for hosted, proxied, merged for groups)
    simple/<project>/                project page (PEP 503 HTML or PEP 691 JSON)
    packages/<project>/<filename>    a distribution file
    packages/<project>/<filename>.metadata   its core metadata (PEP 658/714)
    .pypi/yanked/<project>.json      yank marks of a hosted project (a locked, mutable document)

`<project>` is always the PEP 503 normalised name, so hosted, proxy and group repositories hold a file
at the same path and a group finds it in whichever member has it. Every path of a project, its yank
marks included, has that project's coordinates: the engine moves the project's generation (and so
rebuilds its pages) in the very transaction that changes any of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from artifactory.plugin import Coordinates, IndexKey

SIMPLE = "simple/"
PACKAGES = "packages/"
METADATA_SUFFIX = ".metadata"
YANKED_PREFIX = ".pypi/yanked/"
# The index documents (computed, never stored): a project's page and the root index.
PROJECT = "project"
ROOT = IndexKey("root", whole_repository=True)
SDIST_SUFFIXES = (".tar.gz", ".zip")
# PEP 508 names: letters, digits, and . _ - between them.
PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# What a file we store or proxy may be called: one path segment of plain characters.
SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!~-]{0,250}$")


class InvalidFilename(ValueError):
    pass


@dataclass(frozen=True)
class Distribution:
    """What a distribution's filename says."""

    filename: str
    project: str  # normalised
    version: Version
    packagetype: str  # "bdist_wheel" or "sdist"
    python_version: str  # the wheel's python tag, "source" for an sdist
    tags: str = "sdist"  # a wheel's build number and sorted compatibility tags; "sdist" for any sdist

    @property
    def release_file(self) -> str:
        """What makes this file one file of its release, however its name is spelt: the normalised
        project name, the canonical version (1.0, 1.0.0, 01.0 are one version) and the wheel tags or
        "sdist" (a release has one sdist, .tar.gz or .zip). Two uploads with the same key are the
        same file for the write policy."""
        return f"pypi:{self.project}:{canonicalize_version(self.version)}:{self.tags}"


def normalize(name: str) -> str:
    return str(canonicalize_name(name))


def valid_project_name(name: str) -> bool:
    return bool(PROJECT_NAME.match(name))


def parse_filename(filename: str) -> Distribution:
    """Parse a wheel or sdist filename with `packaging`; InvalidFilename says why it does not parse."""
    if not SAFE_FILENAME.match(filename) or ".." in filename:
        raise InvalidFilename(f"invalid distribution filename {filename!r}")
    if filename.endswith(".whl"):
        try:
            name, version, build, tags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion) as exc:
            raise InvalidFilename(f"invalid wheel filename {filename!r}: {exc}") from None
        pythons = sorted({tag.interpreter for tag in tags})
        key = ".".join(sorted(str(tag) for tag in tags))
        if build:
            key = f"build{build[0]}{build[1]}-{key}"
        return Distribution(filename, str(name), version, "bdist_wheel", ".".join(pythons), key)
    if filename.endswith(SDIST_SUFFIXES):
        try:
            name, version = parse_sdist_filename(filename)
        except (InvalidSdistFilename, InvalidVersion) as exc:
            raise InvalidFilename(f"invalid sdist filename {filename!r}: {exc}") from None
        if not valid_project_name(filename.rsplit("-", 1)[0]):
            raise InvalidFilename(f"invalid sdist filename {filename!r}: bad project name")
        return Distribution(filename, str(name), version, "sdist", "source")
    raise InvalidFilename(f"{filename!r} is neither a wheel (.whl) nor an sdist (.tar.gz, .zip)")


def project_key(project: str) -> IndexKey:
    """The index key of a project's page; `project` is the normalised name."""
    return IndexKey(PROJECT, name=project)


def file_path(project: str, filename: str) -> str:
    return f"{PACKAGES}{project}/{filename}"


def metadata_path(project: str, filename: str) -> str:
    return file_path(project, filename) + METADATA_SUFFIX


def yanked_path(project: str) -> str:
    return f"{YANKED_PREFIX}{project}.json"


def split_file_path(path: str) -> tuple[str, str] | None:
    """(project, filename) of packages/<project>/<filename>, else None."""
    if not path.startswith(PACKAGES):
        return None
    project, sep, filename = path[len(PACKAGES) :].partition("/")
    if not sep or not project or not filename or "/" in filename:
        return None
    return project, filename


def companions(path: str) -> tuple[str, ...]:
    """A distribution file's .metadata (PEP 658), stored beside it and deleted with it."""
    parts = split_file_path(path)
    return () if parts is None or parts[1].endswith(METADATA_SUFFIX) else (path + METADATA_SUFFIX,)


def companion_of(path: str) -> str | None:
    """The distribution file a .metadata path describes."""
    parts = split_file_path(path)
    return path.removesuffix(METADATA_SUFFIX) if parts and parts[1].endswith(METADATA_SUFFIX) else None


def yanked_project(path: str) -> str | None:
    """The project of a yank document path, else None."""
    if not path.startswith(YANKED_PREFIX) or not path.endswith(".json"):
        return None
    project = path[len(YANKED_PREFIX) : -len(".json")]
    return project if project and "/" not in project else None


def coordinates(path: str) -> Coordinates | None:
    """The component of a file path (its .metadata companion counts as the same component); a yank
    document names its project without a version (it changes the project's pages, no release)."""
    parts = split_file_path(path)
    if parts is None:
        project = yanked_project(path)
        return None if project is None else Coordinates(name=project)
    project, filename = parts
    filename = filename.removesuffix(METADATA_SUFFIX)
    try:
        version = str(parse_filename(filename).version)
    except InvalidFilename:
        version = ""
    return Coordinates(name=normalize(project), version=version)


def tombstone(path: str) -> str | None:
    """What may never be uploaded again once the file at `path` is deleted: its release-file key, so
    that no spelling of a deleted filename comes back either (the key its upload was stored under).
    A .metadata companion leaves none (its file's key covers it); nor does anything else."""
    parts = split_file_path(path)
    if parts is None or parts[1].endswith(METADATA_SUFFIX):
        return None
    try:
        return parse_filename(parts[1]).release_file
    except InvalidFilename:
        return None
