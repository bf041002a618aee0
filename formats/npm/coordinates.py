"""npm names and repository paths.

Layout below a repository root (what the engine stores and what clients request):

    lodash                         packument of an unscoped package
    @scope%2Fname                  packument of a scoped package (npm sends the slash encoded; the core
                                   keeps `%2F` encoded because the format declares "/" meaningful)
    lodash/-/lodash-4.17.21.tgz    tarball
    @scope/name/-/name-1.0.0.tgz   tarball of a scoped package (a real slash, as public registries do)

Clients may also spell a scoped packument `@scope/name`, or a tarball `@scope%2Fname/-/file`; both are
normalised to the forms above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import semver

from artifactory.plugin import Coordinates

ENCODED_SLASH = "%2F"
MAX_NAME_LENGTH = 214
MAX_VERSION_LENGTH = 256
_PART = re.compile(r"^[a-z0-9._-]+$")
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~!*'()-]+$")  # what encodeURIComponent leaves alone
_SEMVER_RANGE_START = re.compile(r"^(?:[<>=~^]|v?\d|[xX*](?:$|\.))", re.ASCII)
BLOCKED_NAMES = frozenset({"node_modules", "favicon.ico"})
# Node's core modules: npm refuses them as names of new packages (validate-npm-package-name).
CORE_MODULES = frozenset(
    "assert async_hooks buffer child_process cluster console constants crypto dgram "
    "diagnostics_channel dns domain events fs http http2 https inspector module net os path "
    "perf_hooks process punycode querystring readline repl stream string_decoder sys timers tls "
    "trace_events tty url util v8 vm wasi worker_threads zlib".split()
)


@dataclass(frozen=True)
class PackageName:
    scope: str  # "@scope", or "" for an unscoped package
    bare: str

    @property
    def full(self) -> str:
        """The name as npm writes it: `name` or `@scope/name`."""
        return f"{self.scope}/{self.bare}" if self.scope else self.bare

    @property
    def path(self) -> str:
        """Where the packument lives below the repository root."""
        return f"{self.scope}{ENCODED_SLASH}{self.bare}" if self.scope else self.bare

    @property
    def tarball_folder(self) -> str:
        return f"{self.full}/-/"

    def tarball_file(self, version: str) -> str:
        return f"{self.bare}-{version}.tgz"

    def tarball_path(self, version: str) -> str:
        return self.tarball_folder + self.tarball_file(version)

    def coordinates(self, version: str = "") -> Coordinates:
        return Coordinates(name=self.bare, version=version, namespace=self.scope)


def parse_name(text: str) -> PackageName | None:
    """`name`, `@scope/name` or `@scope%2fname` (any case) as a PackageName; None if it is neither."""
    text = re.sub("%2f", "/", text, flags=re.IGNORECASE)
    if text.startswith("@"):
        scope, sep, bare = text.partition("/")
        if not sep or len(scope) < 2 or not bare or "/" in bare:
            return None
        return PackageName(scope, bare)
    if not text or "/" in text:
        return None
    return PackageName("", text)


def name_problem(name: str) -> str | None:
    """Why npm would refuse `name` for a new package (validate-npm-package-name), or None."""
    if not name:
        return "name length must be greater than zero"
    if len(name) > MAX_NAME_LENGTH:
        return f"name can no longer contain more than {MAX_NAME_LENGTH} characters"
    if name.strip() != name:
        return "name cannot contain leading or trailing spaces"
    if name.startswith("."):
        return "name cannot start with a period"
    if name.startswith("_"):
        return "name cannot start with an underscore"
    if name.lower() in BLOCKED_NAMES:
        return f"{name} is a blocked name"
    if name in CORE_MODULES:
        return f"{name} is a core module name"
    if name.lower() != name:
        return "name can no longer contain capital letters"
    parsed = parse_name(name) if "%" not in name else None
    if parsed is None:
        return "name can only contain URL-friendly characters"
    parts = [parsed.scope[1:], parsed.bare] if parsed.scope else [parsed.bare]
    for part in parts:
        if part.startswith((".", "_")):
            return "name cannot start with a period or an underscore"
        if not _URL_SAFE.match(part):
            return "name can only contain URL-friendly characters"
        if not _PART.match(part):
            return 'name can no longer contain special characters ("~\'!()*")'
    return None


def version_problem(version: object) -> str | None:
    if not isinstance(version, str) or not version:
        return "version must be a non-empty string"
    if len(version) > MAX_VERSION_LENGTH:
        return f"version is longer than {MAX_VERSION_LENGTH} characters"
    if not semver.Version.is_valid(version):
        return f"invalid version {version!r}: not semver 2.0 (npm publishes cleaned versions such as 1.2.3)"
    return None


def tag_problem(tag: object) -> str | None:
    """npm's rules for dist-tags: URL-safe, and never something that reads as a semver range."""
    if not isinstance(tag, str) or not tag:
        return "a dist-tag must be a non-empty string"
    if len(tag) > 128 or not _URL_SAFE.match(tag):
        return f"invalid dist-tag {tag!r}: only URL-friendly characters, at most 128"
    if _SEMVER_RANGE_START.match(tag):
        return f"invalid dist-tag {tag!r}: a tag must not be a valid semver range"
    return None


def clean_version(version: str) -> str:
    """semver.clean as npm applies it to package.json versions: trim, drop a leading `v` or `=`."""
    return version.strip().lstrip("=v").strip()


@dataclass(frozen=True)
class ParsedPath:
    kind: str  # "packument", "tarball" or "version"
    package: PackageName
    rest: str = ""  # the tarball's file name, or the version / tag asked for

    @property
    def storage_path(self) -> str:
        if self.kind == "tarball":
            return self.package.tarball_folder + self.rest
        return self.package.path


def parse_path(path: str) -> ParsedPath | None:
    """What a path below the repository root names; None for anything else (the `/-/` API paths)."""
    if not path or path.startswith("-/"):
        return None
    segments = path.split("/")
    name_segments = 1
    if segments[0].startswith("@") and ENCODED_SLASH not in segments[0].upper():
        name_segments = 2
    package = parse_name("/".join(segments[:name_segments]))
    if package is None:
        return None
    rest = segments[name_segments:]
    if not rest:
        return ParsedPath("packument", package)
    if len(rest) == 2 and rest[0] == "-" and rest[1]:
        return ParsedPath("tarball", package, rest[1])
    if len(rest) == 1 and rest[0] and rest[0] != "-":
        return ParsedPath("version", package, rest[0])
    return None


def tarball_coordinates(path: str) -> Coordinates | None:
    parsed = parse_path(path)
    if parsed is None or parsed.kind != "tarball":
        return None
    prefix, suffix = parsed.package.bare + "-", ".tgz"
    file = parsed.rest
    version = file[len(prefix) : -len(suffix)] if file.startswith(prefix) and file.endswith(suffix) else ""
    return parsed.package.coordinates(version)
