"""Crate names, the sparse index's file layout and its lines: pure data, no I/O.

An index file holds one JSON object per line, one line per published version (cargo's "Registry
Index" chapter). Hosted repositories keep each version's line as its component's `index` attribute,
written once at publish; yanking changes only `crates/<name>/yanked.json`, so a line never moves.
`names/<canonical name>` holds the spelling a crate was first published under (`routes.claim`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import semver

from artifactory.plugin import BadRequest, IndexKey, loads

CRATE, CONFIG = "crate", "config"
# Every upstream's config.json: a proxy needs its `dl` to locate the crates its index files list.
CONFIG_KEY = IndexKey(CONFIG, whole_repository=True)
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")  # whole names only (fullmatch)
# Device names on Windows: cargo there cannot write their index cache files (crates.io refuses them).
WINDOWS_DEVICES = re.compile(r"nul|con|aux|prn|com[1-9]|lpt[1-9]", re.IGNORECASE)
CRATE_FILE = re.compile(r"^crates/([a-z0-9_-]+)/\1-([^/]+)\.crate$")
YANKED_FILE = re.compile(r"^crates/([a-z0-9_-]+)/yanked\.json$")
CKSUM = re.compile(r"[0-9a-f]{64}")
DEP_KINDS = ("normal", "dev", "build")
# A Cargo version requirement: comparators such as `^1.2`, `>= 1, < 2`, `~0.3.1-rc.1`, `1.*`, `*`.
_PART, _IDS = r"(?:0|[1-9][0-9]*|[*xX])", r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_COMPARATOR = rf" *(?:[<>]=?|[=~^])? *{_PART}(?:\.{_PART}(?:\.{_PART}(?:-{_IDS})?(?:\+{_IDS})?)?)? *"
VERSION_REQ = re.compile(rf"{_COMPARATOR}(?:,{_COMPARATOR})*")

log = logging.getLogger(__name__)

Line = dict[str, Any]


class InvalidCrate(BadRequest, ValueError):
    """What a publish request is refused for (400); from an upstream, a malformed index file."""


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidCrate(f"invalid crate name {name!r}: a letter, then up to 63 letters, digits, - or _")
    return name


def check_new_name(name: object) -> str:
    """A name a crate may be published under."""
    if WINDOWS_DEVICES.fullmatch(checked := check_name(name)):
        raise InvalidCrate(f"crate name {checked!r} is reserved: Windows keeps it for a device")
    return checked


def canonical(name: str) -> str:
    """What cargo and crates.io compare names by: `Foo-Bar` and `foo_bar` are one crate."""
    return name.lower().replace("-", "_")


def check_version(version: object) -> str:
    if not isinstance(version, str) or not semver.Version.is_valid(version):
        raise InvalidCrate(f"invalid version {version!r}: not a semantic version such as 1.2.3")
    return version


def release(version: str) -> str:
    """The version without build metadata: 1.0.0+a and 1.0.0+b are one version to cargo."""
    return version.split("+", 1)[0]


def prefix(name: str) -> str:
    """The index directory of a crate name ("1", "2", "3/a", "ab/cd"), in the name's own case."""
    if len(name) <= 2:
        return str(len(name))
    if len(name) == 3:
        return f"3/{name[0]}"
    return f"{name[:2]}/{name[2:4]}"


def index_path(name: str) -> str:
    lower = name.lower()
    return f"{prefix(lower)}/{lower}"


def name_of_index_path(path: str) -> str | None:
    """The crate an index file path names (lower case), or None for any other path."""
    name = path.rsplit("/", 1)[-1]
    return name if NAME.fullmatch(name) and name == name.lower() and index_path(name) == path else None


def crate_path(name: str, version: str) -> str:
    lower = name.lower()
    return f"crates/{lower}/{lower}-{version}.crate"


def yanked_path(name: str) -> str:
    return f"crates/{name.lower()}/yanked.json"


def claim_path(name: str) -> str:
    return f"names/{canonical(name)}"


def download_url(template: str, name: str, version: str, cksum: str) -> str:
    """A crate's URL from a registry's `dl` (cargo's rules: markers, else /{crate}/{version}/download)."""
    values = {"{crate}": name, "{version}": version, "{sha256-checksum}": cksum}
    values.update({"{prefix}": prefix(name), "{lowerprefix}": prefix(name.lower())})
    if not any(marker in template for marker in values):
        return f"{template}/{name}/{version}/download"
    for marker, value in values.items():
        template = template.replace(marker, value)
    return template


# -- publish metadata -> index line ---------------------------------------------------------------
def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidCrate(f"{what} must be a list of strings")
    return list(value)


def _dependency(dep: object) -> Line:
    """A publish request's dependency as the index spells it (a renamed one: name and package)."""
    if not isinstance(dep, dict):
        raise InvalidCrate("each dependency must be a JSON object")
    name, req, kind = check_name(dep.get("name")), dep.get("version_req"), dep.get("kind") or "normal"
    optional, default_features = dep.get("optional", False), dep.get("default_features", True)
    strings = [dep.get(key) for key in ("target", "registry", "explicit_name_in_toml")]
    if not isinstance(req, str) or not req or kind not in DEP_KINDS:
        raise InvalidCrate(f"dependency {name}: needs a version_req and a kind of {', '.join(DEP_KINDS)}")
    if not VERSION_REQ.fullmatch(req):
        raise InvalidCrate(f"dependency {name}: version_req {req!r} is not a version requirement like ^1.2")
    if not isinstance(optional, bool) or not isinstance(default_features, bool):
        raise InvalidCrate(f"dependency {name}: optional and default_features must be booleans")
    if any(value is not None and not isinstance(value, str) for value in strings):
        raise InvalidCrate(f"dependency {name}: target, registry and explicit_name_in_toml must be strings")
    features = _strings(dep.get("features", []), f"dependency {name}: features")
    line: Line = {"name": name, "req": req, "features": features, "optional": optional}
    line.update(default_features=default_features, target=strings[0], kind=kind, registry=strings[1])
    if strings[2]:
        line["name"], line["package"] = check_name(strings[2]), name
    return line


def index_line(meta: Mapping[str, Any], cksum: str) -> Line:
    """The index line of a publish request's metadata (already checked for name and version)."""
    deps, features = meta.get("deps") or [], meta.get("features") or {}
    links, rust_version = meta.get("links"), meta.get("rust_version")
    if not isinstance(deps, list) or not isinstance(features, dict):
        raise InvalidCrate("deps must be a list and features an object")
    if any(value is not None and not isinstance(value, str) for value in (links, rust_version)):
        raise InvalidCrate("links and rust_version must be strings or null")
    for feature, enables in features.items():
        _strings(enables, f"feature {feature}")
    # Features using the newer syntax go to features2 (schema v2) so old cargo versions skip them.
    newer = {k: v for k, v in features.items() if any(x.startswith("dep:") or "?/" in x for x in v)}
    line: Line = {"name": meta["name"], "vers": meta["vers"], "deps": [_dependency(d) for d in deps]}
    line.update(cksum=cksum, features={k: v for k, v in features.items() if k not in newer}, yanked=False)
    line.update(links=links, v=2 if newer else 1)
    if newer:
        line["features2"] = newer
    if rust_version:
        line["rust_version"] = rust_version
    return line


# -- the index protocol's pure steps -------------------------------------------------------------
def parse_lines(body: bytes, name: str) -> tuple[Line, ...]:
    """An upstream index file's lines this server can rely on. Like cargo, it skips the others (one
    bad line hides only its own version; a line without a cksum could not be verified); ValueError
    when no line is usable."""
    raws = [raw for raw in body.splitlines() if raw.strip()]
    lines = [line for line in map(_usable, raws) if line is not None and line["name"].lower() == name]
    if len(lines) < len(raws):
        log.warning("index file of %s: %d of %d lines skipped", name, len(raws) - len(lines), len(raws))
        if not lines:
            raise ValueError(f"index file of {name}: no line is a version of this crate with a sha256 cksum")
    return tuple(lines)


def _usable(raw: bytes) -> Line | None:
    """An index line with a crate name, a SemVer version and a sha256 cksum, or None."""
    try:
        line = loads(raw, "an index line", max_values=None, allow_nul=True)
    except ValueError:
        return None
    if not isinstance(line, dict) or not isinstance(line.get("name"), str):
        return None
    vers, cksum = line.get("vers"), line.get("cksum")
    valid = isinstance(vers, str) and semver.Version.is_valid(vers)
    return line if valid and isinstance(cksum, str) and CKSUM.fullmatch(cksum) else None


def merge(models: Sequence[Sequence[Line]]) -> tuple[Line, ...]:
    """Every version of every member, once: where two members list one version, the first wins."""
    merged: dict[str, Line] = {}
    for line in (line for lines in models for line in lines):
        merged.setdefault(release(line["vers"]), line)
    return tuple(merged.values())


def render(lines: Sequence[Line]) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
