"""Index documents as plain data: built from stored facts or parsed from an upstream, merged for
groups, then rendered as PEP 503 HTML, PEP 691 JSON or the `/pypi/<project>/json` shape.

Everything here is a pure function; nothing touches storage or the request.

What an upstream page says is data, never markup: names and URLs are checked as they are parsed
(only http(s) file URLs, only valid project names), and every href this server renders is an
http(s) URL percent-encoded outside RFC 3986's characters, or a relative one.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urljoin, urlsplit, urlunsplit

import lxml.html
from artifactory_formats.pypi.coordinates import (
    METADATA_SUFFIX,
    SAFE_FILENAME,
    InvalidFilename,
    file_path,
    normalize,
    parse_filename,
    valid_project_name,
)
from packaging.version import InvalidVersion, Version

from artifactory.plugin import ComponentInfo, loads

API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
HEX = re.compile(r"^[0-9a-fA-F]{16,256}$")
HASH_NAMES = frozenset(hashlib.algorithms_guaranteed)
# Version-level facts of the core metadata kept for the JSON API.
INFO_FIELDS = (
    "summary",
    "requires_python",
    "requires_dist",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "license",
    "license_expression",
    "home_page",
    "keywords",
    "classifiers",
    "project_urls",
    "description_content_type",
    "provides_extra",
)


@dataclass(frozen=True)
class File:
    filename: str
    path: str  # repository path: packages/<project>/<filename>
    version: str
    hashes: Mapping[str, str]
    size: int | None = None
    upload_time: str | None = None  # ISO 8601, UTC, "Z"
    requires_python: str | None = None
    core_metadata: Mapping[str, str] | None = None  # hashes of <file>.metadata; None: not served
    yanked: str | None = None  # None: not yanked; "" yanked without a reason
    packagetype: str = ""
    python_version: str = ""
    upstream_url: str | None = None  # proxied files: where the bytes really are
    # Digests the JSON API shows besides `hashes` (hosted files: md5 and blake2b-256).
    extra_digests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Project:
    name: str  # as the project spells itself
    files: tuple[File, ...]
    versions: tuple[str, ...]
    # Per version, the core metadata facts the JSON API shows (hosted only).
    releases: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def file(self, filename: str) -> File | None:
        for candidate in self.files:
            if candidate.filename == filename:
                return candidate
        return None


@functools.lru_cache(maxsize=16384)
def version_key(version: str) -> tuple[int, Any]:
    """How versions sort (PEP 440 order; an invalid version before every valid one). Kept per
    version string: a page sorts its files by version, and the files of a release share one."""
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _ordered(files: Iterable[File]) -> tuple[File, ...]:
    return tuple(sorted(files, key=lambda f: (version_key(f.version), f.filename)))


def _versions(files: Iterable[File], extra: Iterable[str] = ()) -> tuple[str, ...]:
    found = {f.version for f in files if f.version} | {v for v in extra if v}
    return tuple(sorted(found, key=version_key))


def iso_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- building ---------------------------------------------------------------------------------
def hosted_project(components: Sequence[ComponentInfo], yanked: Mapping[str, Any] | None) -> Project | None:
    """A hosted project from its components; per-file facts were stored at upload time."""
    yanked = yanked or {}
    yanked_versions: Mapping[str, str] = yanked.get("versions", {})
    yanked_files: Mapping[str, str] = yanked.get("files", {})
    files: list[File] = []
    releases: dict[str, Mapping[str, Any]] = {}
    for component in components:
        facts = dict(component.attributes)
        releases[component.version] = {k: facts[k] for k in INFO_FIELDS if k in facts}
        for asset in component.assets:
            pypi = asset.attributes.get("pypi")
            if not pypi or asset.path.endswith(METADATA_SUFFIX):
                continue
            filename = str(pypi["filename"])
            reason = yanked_files.get(filename, yanked_versions.get(component.version))
            metadata_sha256 = pypi.get("metadata_sha256")
            files.append(
                File(
                    filename=filename,
                    path=asset.path,
                    version=component.version,
                    hashes={"sha256": asset.sha256},
                    extra_digests={"md5": asset.md5, "blake2b_256": str(pypi.get("blake2b_256", ""))},
                    size=asset.size,
                    upload_time=pypi.get("upload_time"),
                    requires_python=pypi.get("requires_python") or None,
                    core_metadata={"sha256": metadata_sha256} if metadata_sha256 else None,
                    yanked=None if reason is None else str(reason),
                    packagetype=str(pypi.get("packagetype", "")),
                    python_version=str(pypi.get("python_version", "")),
                )
            )
    if not files:
        return None
    name = display_name(components)
    return Project(name=name, files=_ordered(files), versions=_versions(files), releases=releases)


def yank_marks(document: bytes | None) -> dict[str, Any]:
    """A hosted project's yank marks ({"versions": {v: reason}, "files": {f: reason}}) from their
    stored document; none when there is none or it is not a JSON object."""
    if not document:
        return {}
    try:
        marks = json.loads(document)
    except ValueError:
        return {}
    return marks if isinstance(marks, dict) else {}


def display_name(components: Sequence[ComponentInfo]) -> str:
    """How the project spells its name: as its highest version's metadata does."""
    newest = max(components, key=lambda c: version_key(c.version))
    return str(newest.attributes.get("name") or newest.name)


def merge(projects: Sequence[Project]) -> Project | None:
    """A group's view: every member's files, the first member winning for a filename it shares."""
    if not projects:
        return None
    seen: dict[str, File] = {}
    releases: dict[str, Mapping[str, Any]] = {}
    for project in projects:
        for f in project.files:
            seen.setdefault(f.filename, f)
        for version, info in project.releases.items():
            releases.setdefault(version, info)
    files = _ordered(seen.values())
    extra = [v for p in projects for v in p.versions]
    return Project(name=projects[0].name, files=files, versions=_versions(files, extra), releases=releases)


# -- parsing an upstream page ----------------------------------------------------------------
def parse_upstream(body: bytes, page_url: str, project: str) -> Project:
    """A project page from any simple index: PEP 691 JSON or PEP 503 HTML (content sniffed)."""
    if body.lstrip()[:1] == b"{":
        return _parse_json(body, page_url, project)
    return _parse_html(body, page_url, project)


def _link(base: str, href: str) -> tuple[str, str, SplitResult]:
    """(the URL without its fragment, the fragment, the URL's parts) of a link on a page at `base`.
    The link is split once: an absolute one (what most indexes list) is what `urljoin` would give
    back, so only a relative one is joined (a page lists hundreds of files, and urllib keeps only
    the last few URLs it split)."""
    parts = urlsplit(href)
    if not (parts.scheme and parts.netloc):
        parts = urlsplit(urljoin(base, href))
    return urlunsplit(parts._replace(fragment="")), parts.fragment, parts


@functools.lru_cache(maxsize=16384)
def _file_version(filename: str) -> str:
    """The version a distribution's filename names ("" when it does not parse), kept per filename:
    a page parsed again (another process, another proxy of the same index, a changed page) lists
    mostly the same files."""
    try:
        return str(parse_filename(filename).version)
    except InvalidFilename:
        return ""


def _proxied_file(project: str, filename: str, link: SplitResult, url: str, **facts: Any) -> File | None:
    if not SAFE_FILENAME.match(filename) or ".." in filename or filename.endswith(METADATA_SUFFIX):
        return None
    if link.scheme.lower() not in ("http", "https"):
        return None  # javascript:, file:, data: ... are nothing this server fetches or hands out
    return File(
        filename=filename,
        path=file_path(project, filename),
        version=_file_version(filename),
        upstream_url=url,
        **facts,
    )


def _hash_fragment(fragment: str) -> dict[str, str]:
    algorithm, sep, value = fragment.partition("=")
    if sep and algorithm in HASH_NAMES and HEX.match(value):
        return {algorithm: value.lower()}
    return {}


def _upload_time(value: Any) -> str | None:
    """An upstream's upload-time as this server writes its own (RFC 3339, UTC), or None."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return iso_time(moment)


def _display_name(name: Any, project: str) -> str:
    """The upstream's spelling of the project's name, if it is one; else the name asked for."""
    if isinstance(name, str) and valid_project_name(name) and normalize(name) == project:
        return name
    return project


def _metadata_flag(value: Any) -> Mapping[str, str] | None:
    """data-core-metadata / core-metadata: absent or false -> None, true -> {}, hashes -> hashes."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        if value.lower() == "true":
            return {}
        return _hash_fragment(value) if "=" in value else None
    if isinstance(value, dict):
        return {k: str(v).lower() for k, v in value.items() if k in HASH_NAMES and HEX.match(str(v))}
    return None


def _parse_html(body: bytes, page_url: str, project: str) -> Project:
    files: list[File] = []
    if not body.strip():
        return Project(name=project, files=(), versions=())
    parser = lxml.html.HTMLParser(no_network=True, huge_tree=False)
    root = lxml.html.document_fromstring(body, parser=parser)
    base = page_url
    for tag in root.iter("base"):
        if tag.get("href"):
            base = urljoin(page_url, tag.get("href"))
            break
    for anchor in root.iter("a"):
        href = anchor.get("href")
        if not href:
            continue
        url, fragment, parts = _link(base, href.strip())
        filename = unquote(parts.path.rsplit("/", 1)[-1])
        yanked = anchor.get("data-yanked")
        entry = _proxied_file(
            project,
            filename,
            parts,
            url,
            hashes=_hash_fragment(fragment),
            requires_python=anchor.get("data-requires-python") or None,
            core_metadata=_metadata_flag(
                anchor.get("data-core-metadata") or anchor.get("data-dist-info-metadata")
            ),
            yanked=yanked,
        )
        if entry is not None:
            files.append(entry)
    return Project(name=project, files=_ordered(files), versions=_versions(files))


def _parse_json(body: bytes, page_url: str, project: str) -> Project:
    data = loads(body, "the project page", max_values=None, allow_nul=True)
    if not isinstance(data, dict) or not isinstance(data.get("files", []), list):
        raise ValueError("not a PEP 691 project page")
    files: list[File] = []
    for raw in data.get("files", []):
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("filename"), str)
            or not isinstance(raw.get("url"), str)
        ):
            continue
        url, _fragment, parts = _link(page_url, raw["url"])
        hashes: dict[str, Any] = raw["hashes"] if isinstance(raw.get("hashes"), dict) else {}
        yanked = raw.get("yanked", False)
        size = raw.get("size")
        upload_time = raw.get("upload-time")
        requires_python = raw.get("requires-python")
        entry = _proxied_file(
            project,
            raw["filename"],
            parts,
            url,
            hashes={k: str(v).lower() for k, v in hashes.items() if k in HASH_NAMES and HEX.match(str(v))},
            size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
            upload_time=_upload_time(upload_time),
            requires_python=requires_python if isinstance(requires_python, str) and requires_python else None,
            core_metadata=_metadata_flag(raw.get("core-metadata", raw.get("dist-info-metadata"))),
            yanked=(yanked if isinstance(yanked, str) else "") if yanked else None,
        )
        if entry is not None:
            files.append(entry)
    raw_versions = data.get("versions", [])
    versions = [v for v in raw_versions if isinstance(v, str)] if isinstance(raw_versions, list) else []
    return Project(
        name=_display_name(data.get("name"), project),
        files=_ordered(files),
        versions=_versions(files, versions),
    )


def parse_upstream_root(body: bytes) -> list[str]:
    """Project names of an upstream root index (JSON or HTML); anything that is not a valid project
    name is left out."""
    if body.lstrip()[:1] == b"{":
        data = loads(body, "the root index", max_values=None, allow_nul=True)
        projects = data.get("projects", []) if isinstance(data, dict) else []
        if not isinstance(projects, list):
            return []
        names = [p["name"] for p in projects if isinstance(p, dict) and isinstance(p.get("name"), str)]
    elif not body.strip():
        return []
    else:
        parser = lxml.html.HTMLParser(no_network=True, huge_tree=True)
        root = lxml.html.document_fromstring(body, parser=parser)
        names = [text for a in root.iter("a") if (text := (a.text or "").strip())]
    return [name for name in names if valid_project_name(name)]


# -- rendering --------------------------------------------------------------------------------
FileUrl = Callable[[File], str]


def file_url(base: str) -> FileUrl:
    """A file's absolute URL in the repository at `base` (its URL as the client reached it)."""
    return lambda f: base + quote(f.path, safe="/+!~")


def _best_hash(hashes: Mapping[str, str]) -> tuple[str, str] | None:
    for name in ("sha256", "sha384", "sha512", "sha224", "sha1", "md5"):
        if hashes.get(name):
            return name, hashes[name]
    return None


# Characters a URL may carry as they are (RFC 3986 reserved and unreserved but the quote, and "%").
URL_SAFE = ":/?#[]@!$&()*+,;=%~"


def safe_href(url: str, relative: str) -> str:
    """`url` for an href attribute: an http(s) URL with every other character percent-encoded, or
    `relative` (a path this server built) when `url` is anything else; HTML-escaped either way."""
    try:
        scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    except ValueError:  # not a URL at all (an unclosed IPv6 bracket, ...)
        scheme = ""
    chosen = quote(url, safe=URL_SAFE) if scheme in ("http", "https") else quote(relative, safe=URL_SAFE)
    return html.escape(chosen, quote=True)


def render_html(project: Project, file_url: FileUrl) -> bytes:
    """PEP 503 HTML. `file_url` gives absolute http(s) URLs; a page whose base is anything else gets
    relative links (a project page is at simple/<project>/, its files at packages/<project>/...)."""
    title = html.escape(f"Links for {project.name}")
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        f"<title>{title}</title>",
        "</head>",
        "<body>",
        f"<h1>{title}</h1>",
    ]
    for f in project.files:
        href = safe_href(file_url(f), "../../" + quote(f.path))
        best = _best_hash(f.hashes)
        if best is not None:
            href += f"#{best[0]}={best[1]}"
        attrs = [f'href="{href}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{html.escape(f.requires_python, quote=True)}"')
        if f.core_metadata is not None:
            meta = _best_hash(f.core_metadata)
            value = f"{meta[0]}={meta[1]}" if meta else "true"
            attrs.append(f'data-dist-info-metadata="{value}" data-core-metadata="{value}"')
        if f.yanked is not None:
            attrs.append(f'data-yanked="{html.escape(f.yanked, quote=True)}"')
        lines.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br>")
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines).encode()


def _json_file(f: File, file_url: FileUrl) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": f.filename,
        "url": file_url(f),
        "hashes": {k: v for k, v in f.hashes.items() if k in HASH_NAMES and v},
    }
    if f.requires_python:
        entry["requires-python"] = f.requires_python
    metadata: Any = False
    if f.core_metadata is not None:
        metadata = dict(f.core_metadata) or True
    entry["core-metadata"] = metadata
    entry["dist-info-metadata"] = metadata
    entry["yanked"] = (f.yanked or True) if f.yanked is not None else False
    if f.size is not None:
        entry["size"] = f.size
    if f.upload_time:
        entry["upload-time"] = f.upload_time
    return entry


def render_json(project: Project, file_url: FileUrl) -> bytes:
    document = {
        "meta": {"api-version": API_VERSION},
        "name": normalize(project.name),
        "files": [_json_file(f, file_url) for f in project.files],
        "versions": list(project.versions),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def render_root_html(names: Iterable[str], project_url: Callable[[str], str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        "<title>Simple index</title>",
        "</head>",
        "<body>",
    ]
    for name in names:
        href = safe_href(project_url(name), project_href(name))
        lines.append(f'<a href="{href}">{html.escape(name)}</a><br>')
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines).encode()


def render_root_json(names: Iterable[str]) -> bytes:
    document = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
    return json.dumps(document, separators=(",", ":")).encode()


def project_href(name: str) -> str:
    return quote(normalize(name)) + "/"


def root_names(names: Iterable[str]) -> list[str]:
    """One entry per normalised name (the first spelling seen), sorted."""
    found: dict[str, str] = {}
    for name in names:
        found.setdefault(normalize(name), name)
    return [found[key] for key in sorted(found)]


# -- the JSON API (/pypi/<project>/json) ------------------------------------------------------
def latest_version(project: Project) -> str | None:
    live = [f.version for f in project.files if f.yanked is None and f.version]
    candidates = live or [f.version for f in project.files if f.version]
    if not candidates:
        return None
    final = [v for v in candidates if not version_key(v)[0] or not Version(v).is_prerelease]
    return max(final or candidates, key=version_key)


def _api_file(f: File, file_url: FileUrl) -> dict[str, Any]:
    known = {**f.hashes, **f.extra_digests}
    digests = {k: v for k in ("md5", "sha256", "blake2b_256") if (v := known.get(k))}
    upload_time = f.upload_time or ""
    return {
        "comment_text": "",
        "digests": digests,
        "downloads": -1,
        "filename": f.filename,
        "has_sig": False,
        "md5_digest": known.get("md5"),
        "packagetype": f.packagetype or ("bdist_wheel" if f.filename.endswith(".whl") else "sdist"),
        "python_version": f.python_version or ("source" if not f.filename.endswith(".whl") else ""),
        "requires_python": f.requires_python,
        "size": f.size,
        "upload_time": upload_time[:19],
        "upload_time_iso_8601": upload_time or None,
        "url": file_url(f),
        "yanked": f.yanked is not None,
        "yanked_reason": f.yanked or None,
    }


def json_api(
    project: Project, version: str | None, file_url: FileUrl, project_url: str, serial: int
) -> dict[str, Any] | None:
    """The public index's JSON API shape for a project (version None) or one release."""
    chosen = version if version is not None else latest_version(project)
    if version is not None:
        matches = [v for v in project.versions if v == version or version_key(v) == version_key(version)]
        if not matches:
            return None
        chosen = matches[0]
    release_files = [f for f in project.files if f.version == chosen]
    info: dict[str, Any] = {key: None for key in INFO_FIELDS}
    info.update(project.releases.get(chosen or "", {}))
    yanked = bool(release_files) and all(f.yanked is not None for f in release_files)
    info.update(
        {
            "name": project.name,
            "version": chosen,
            "package_url": project_url,
            "project_url": project_url,
            "release_url": f"{project_url}{chosen}/" if chosen else None,
            "description": "",
            "yanked": yanked,
            "yanked_reason": (release_files[0].yanked or None) if yanked else None,
        }
    )
    if not info.get("requires_python") and release_files:
        info["requires_python"] = release_files[0].requires_python
    document: dict[str, Any] = {
        "info": info,
        "last_serial": serial,
        "urls": [_api_file(f, file_url) for f in release_files],
        "vulnerabilities": [],
    }
    if version is None:
        releases: dict[str, list[dict[str, Any]]] = {v: [] for v in project.versions}
        for f in project.files:
            releases.setdefault(f.version, []).append(_api_file(f, file_url))
        document["releases"] = releases
    return document
