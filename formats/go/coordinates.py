"""Module paths and versions as the GOPROXY protocol spells them (the Go project's x/mod/module rules).

Paths in URLs (and in this repository) are case-encoded: an upper-case letter is "!" and its
lower-case form, so that case-insensitive file systems and URLs never confuse two modules. A
component is named by the decoded module path, and its version is the canonical version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from artifactory.plugin import semver_key, semver_prerelease

# ASCII digits only, and \Z rather than $ (which also matches before a final newline).
_IDENT = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"  # a prerelease identifier
SEMVER = re.compile(
    rf"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-({_IDENT}(?:\.{_IDENT})*))?(\+incompatible)?\Z", re.ASCII
)
PSEUDO = re.compile(
    r"^v\d+\.(?:0\.0-|\d+\.\d+-(?:[^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(?:\+incompatible)?\Z", re.ASCII
)
ELEMENT = re.compile(r"^[A-Za-z0-9_~-][A-Za-z0-9._~-]*\Z")
FIRST_ELEMENT = re.compile(r"^[a-z0-9][a-z0-9.-]*\Z")
FILE = re.compile(r"^(?P<module>.+)/@v/(?P<version>[^/]+)\.(?P<ext>info|mod|zip)\Z")
WINDOWS_RESERVED = re.compile(r"(?i:CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])")  # an element's name before any dot
SHORT_NAME = re.compile(r".*~[0-9]+")  # what Windows makes of a long name (PROGRA~1)
LIST, LATEST = "list", "latest"  # the kinds of index documents (IndexKey.kind), named by module


class InvalidModule(ValueError):
    pass


def escape(text: str) -> str:
    """The case-encoded form of a module path or version ("!" + lower-case for each upper-case)."""
    if "!" in text:
        raise InvalidModule(f"{text!r} contains '!'")
    return "".join("!" + c.lower() if "A" <= c <= "Z" else c for c in text)


def unescape(text: str) -> str:
    """The decoded form of a case-encoded path or version; refuses upper case and a stray "!"."""
    if re.search(r"[A-Z]|![^a-z]|!$", text):
        raise InvalidModule(f"{text!r}: an upper-case letter is written '!' and its lower case")
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), text)


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, as the go command writes a .info's Time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def path_major(module: str) -> str:
    """The module path's major-version suffix ("/v2", ".v3" for gopkg.in, "" for none)."""
    check_path(module)
    if module.startswith("gopkg.in/"):
        found = re.search(r"\.v(0|[1-9]\d*)(?:-unstable)?$", module, re.ASCII)
        if found is None:
            raise InvalidModule(f"{module}: a gopkg.in path ends with .vN")
        return found.group(0).removesuffix("-unstable")
    found = re.search(r"/v([0-9.]+)$", module)
    if found is None:
        return ""
    digits = found.group(1)
    if "." in digits or digits.startswith("0") or digits == "1":
        raise InvalidModule(f"{module}: the major-version suffix must be /v2 or higher")
    return "/v" + digits


def check_path(module: str) -> None:
    elements = module.split("/")
    if not FIRST_ELEMENT.match(elements[0]) or "." not in elements[0]:
        raise InvalidModule(
            f"{module!r}: the first path element must be a lower-case domain name such as example.com"
        )
    for element in elements:
        short = element.split(".", 1)[0]
        if (
            not ELEMENT.match(element)
            or element.endswith(".")
            or WINDOWS_RESERVED.fullmatch(short)
            or SHORT_NAME.fullmatch(short)
        ):
            raise InvalidModule(f"{module!r}: invalid path element {element!r}")


def check_version(module: str, version: str) -> None:
    """A canonical semantic version (v prefix, +incompatible the only build suffix) whose major
    version agrees with the module path's suffix, as the go command requires."""
    found = SEMVER.match(version)
    if found is None:
        raise InvalidModule(f"{version!r} is not a canonical semantic version such as v1.2.3")
    major, incompatible = int(found.group(1)), bool(found.group(5))
    suffix = path_major(module)
    if suffix == "":
        if major >= 2 and not incompatible:
            raise InvalidModule(f"{module}@{version}: a v2+ version needs a /v{major} path or +incompatible")
        if major < 2 and incompatible:
            raise InvalidModule(f"{module}@{version}: +incompatible only applies to v2 and higher")
    elif incompatible or major != int(suffix[2:]):
        raise InvalidModule(f"{module}@{version}: the path's major version is {suffix[1:]}")


def is_pseudo(version: str) -> bool:
    return PSEUDO.match(version) is not None


def is_prerelease(version: str) -> bool:
    """A canonical version with a prerelease part (pseudo-versions have one too)."""
    return SEMVER.match(version) is not None and semver_prerelease(version[1:])


def version_key(version: str) -> tuple[object, ...]:
    """Semantic-version precedence (+incompatible is build metadata: ignored); strings that are not
    canonical versions sort first."""
    return semver_key(version[1:]) if SEMVER.match(version) else (0,)


def latest_key(version: str) -> tuple[object, ...]:
    """What @latest prefers: a release, then a prerelease, then a pseudo-version; then the highest."""
    rank = 0 if is_pseudo(version) else 1 if is_prerelease(version) else 2
    return (rank, version_key(version))


@dataclass(frozen=True)
class ModuleFile:
    module: str  # decoded
    version: str  # decoded, canonical
    ext: str

    def sibling(self, ext: str) -> str:
        return f"{escape(self.module)}/@v/{escape(self.version)}.{ext}"


def module_file(path: str) -> ModuleFile:
    """`<module>/@v/<version>.<info|mod|zip>` decoded and checked (InvalidModule otherwise)."""
    found = FILE.match(path)
    if found is None:
        raise InvalidModule(f"{path!r} is not <module>/@v/<version>.info, .mod or .zip")
    module, version = unescape(found.group("module")), unescape(found.group("version"))
    check_version(module, version)
    return ModuleFile(module, version, found.group("ext"))
