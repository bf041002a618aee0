"""The Format base class and the registry formats are added to.

A format answers protocol questions only; storage, caching, single-flight, permissions and SQL
belong to the engine. A repository has exactly one format, so the engine calls these methods
directly rather than broadcasting a hook.
"""

from __future__ import annotations

import enum
import gzip
import io
import lzma
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, Any, ClassVar

import httpx
import semver
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from artifactory.blobstore.store import BlobInfo
from artifactory.http.errors import HTTPProblem
from artifactory.repository.model import ComponentInfo, Repo
from artifactory.text import ascii_digits


@dataclass(frozen=True)
class Coordinates:
    """What a user thinks of as a package version."""

    name: str
    version: str = ""
    namespace: str = ""


@dataclass(frozen=True)
class IndexKey:
    """Names one computed document (a simple page, a packument, maven-metadata.xml, a tag list...).

    `kind` is the format's own word for the document; `namespace` and `name` say which component
    name it depends on, so that only a change to that name rebuilds it. `whole_repository` marks a
    document that depends on everything in the repository (a catalog, a root index): it is rebuilt
    on every change. `variant` distinguishes documents of one name that differ otherwise (a
    snapshot version's metadata, a search query). Keys are compared and hashed; keep them small.
    """

    kind: str
    name: str = ""
    namespace: str = ""
    variant: str = ""
    whole_repository: bool = False


# What the standard library raises reading a malformed zip or tar archive (truncated or corrupt data,
# unsupported, encrypted or unknown-version members, broken deflate/bzip2/lzma streams, negative
# offsets): a format that looks inside an uploaded archive catches exactly these and answers 400.
ARCHIVE_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    OSError,
    ValueError,  # UnicodeDecodeError of a member's name included
    RuntimeError,  # encrypted members; NotImplementedError (an unsupported method or version)
    struct.error,
    zlib.error,
    lzma.LZMAError,
)


def zip_member_name(info: zipfile.ZipInfo) -> str:
    """The name a zip member is stored under, which every other unzip uses; ValueError when the
    archive gives it a second one: zipfile cuts `filename` at a NUL, and Info-ZIP's unzip (and
    zipfile from Python 3.12) prefer the name of a Unicode Path extra field (0x7075), so a check of
    any other name may pass a member that is extracted as `../evil`."""
    stored = info.orig_filename
    raw = stored.encode("utf-8" if info.flag_bits & 0x800 else "cp437")  # the bytes zipfile decoded
    if info.filename != stored or any(name != raw for name in _unicode_paths(info.extra)):
        raise ValueError(f"zip member {stored!r} has a second name (after a NUL, or in a Unicode path field)")
    return stored


def _unicode_paths(extra: bytes) -> list[bytes]:
    """The names of a member's Info-ZIP Unicode Path fields (a version byte, the CRC-32 of the
    stored name, the name in UTF-8)."""
    names = []
    while len(extra) >= 4:
        kind, size = struct.unpack_from("<HH", extra)
        names += [extra[9 : 4 + size]] if kind == 0x7075 else []
        extra = extra[4 + size :]
    return names


def inflation_limit(compressed: int, ratio: int, floor: int, ceiling: int) -> int:
    """How many bytes an upload of `compressed` bytes may inflate to before it is a compression bomb:
    `ratio` times its size, never less than `floor` (small archives of text compress well) nor more
    than `ceiling`."""
    return min(ceiling, max(floor, ratio * compressed))


class _BoundedGunzip(io.RawIOBase):
    def __init__(self, file: IO[bytes], limit: int, refuse: Callable[[int], Exception]) -> None:
        self._gzip, self._limit, self._refuse, self._total = (
            gzip.GzipFile(fileobj=file, mode="rb"),
            limit,
            refuse,
            0,
        )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._gzip.read(len(view))
        self._total += len(data)
        if self._total > self._limit:
            raise self._refuse(self._limit)
        view[: len(data)] = data
        return len(data)


def gunzip_bounded(file: IO[bytes], limit: int, refuse: Callable[[int], Exception]) -> IO[bytes]:
    """The gunzipped bytes of `file` as a stream (for `tarfile.open(fileobj=..., mode="r|")`), which
    raises `refuse(limit)` as soon as more than `limit` bytes have come out: a .tgz or .crate is
    never inflated past the limit, however it is compressed. Corrupt data raise `ARCHIVE_ERRORS`."""
    return io.BufferedReader(_BoundedGunzip(file, limit, refuse), 64 * 1024)


# `parse`'s `needed` when a document needs no other.
NOTHING_NEEDED: Mapping[IndexKey, Any] = MappingProxyType({})


@dataclass(frozen=True)
class FileRef:
    """What an upstream index says of one file it lists: where to fetch it (absolute URL) and what
    it must hash to ({"sha256": hex, ...}; sha256, sha512, sha1 or md5)."""

    url: str
    digests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Parsed:
    """An upstream document turned into the format's model, plus the files it declares, keyed by
    their path in this repository. The engine fetches a declared file from its URL and verifies it
    against its digests while streaming; nothing that fails is cached or served as a success."""

    model: Any
    files: Mapping[str, FileRef] = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamDocument:
    """Where a proxy fetches the upstream's copy of a document: a path relative to the proxy's
    upstream URL (or an absolute URL) and the Accept header to ask with. `needs`: other documents of
    the same upstream that `parse` needs to read this one (a Cargo index file needs the registry's
    config.json to know where crates are); the engine fetches and parses them first, through the
    same proxy, and hands their models to `parse` as `needed`."""

    path: str
    accept: str = "*/*"
    needs: tuple[IndexKey, ...] = ()


@dataclass(frozen=True)
class RenderContext:
    """What rendering may depend on besides the model: the media type negotiated for the client,
    this repository's absolute URL as the client reached it (ends with "/"), and its name."""

    media_type: str
    repository_url: str
    repository: str = ""


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


class CachePolicy(enum.Enum):
    IMMUTABLE = "immutable"  # never revalidated once cached (release files, digests)
    METADATA = "metadata"  # revalidated after the proxy's metadata TTL; merged by groups


class Format:
    """Subclass once per format and register an instance through `artifactory_register_formats`."""

    id: ClassVar[str] = ""
    # Characters in a path that this protocol defines as meaningful when percent-encoded, such as
    # npm's "@scope%2fname"; every other encoded slash or backslash is refused.
    encoded_path_characters: ClassVar[frozenset[str]] = frozenset()
    # Repository settings this format accepts besides the core's; any other key is refused with 400.
    config_keys: ClassVar[tuple[str, ...]] = ()
    # Whether a path may name a folder (raw answers one with its listing): a file miss through a
    # group then also reads whether anything is stored under it, for `Repositories.is_folder`.
    folders: ClassVar[bool] = False

    def routes(self) -> Sequence[BaseRoute]:
        """Routes relative to a repository's root, /repository/{name}/.

        Handlers find their repository with `artifactory.plugin.current_repository(request)`.
        """
        return ()

    def global_routes(self) -> Sequence[BaseRoute]:
        """Routes outside /repository/ (the OCI /v2/ API); the format resolves repositories itself."""
        return ()

    def validate_config(self, repo_type: str, config: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise the format's own repository settings; raise ValueError to refuse."""
        return config

    def default_write_policy(self, config: dict[str, Any]) -> str:
        return "allow"

    def coordinates(self, path: str) -> Coordinates | None:
        """Which component a path belongs to, if any (also the name the dependency-confusion guard checks)."""
        return None

    def cache_policy(self, path: str) -> CachePolicy:
        """How a proxy treats a cached copy of `path`: kept for good, or revalidated after the TTL."""
        return CachePolicy.IMMUTABLE

    def render_error(self, problem: HTTPProblem, request: Request) -> Response:
        """An error in the protocol's own shape (default: JSON {"error": message})."""
        return problem.render(request)

    def expected_digests(self, repo: Repo, path: str) -> Mapping[str, str]:
        """Digests a path states by itself (an OCI blob or manifest by digest): {"sha256": hex}.

        The proxy verifies fetched bytes against these (and against what the upstream index
        document that lists the path declared, `Parsed.files`) while streaming; a mismatch is never
        cached or served.
        """
        return {}

    async def verify_fetched(
        self, repo: Repo, path: str, blob: BlobInfo, fetch: Callable[[str], Awaitable[bytes | None]]
    ) -> None:
        """Check a file a proxy fetched, before it is cached; raise ValueError to refuse it.

        A refused file is not cached and the client gets 502 (or the previously cached copy).
        `fetch(other_path)` GETs another upstream path without caching it (such as a published
        checksum file): its bytes, or None when the upstream has none. `blob` carries every digest.
        """
        return None

    def siblings_checked(self, repo: Repo, path: str) -> Sequence[str]:
        """The other upstream paths `verify_fetched` will `fetch` for `path` (a checksum file), so
        that the proxy asks for them while the file itself is still arriving. Default: none."""
        return ()

    def verifies_whole_file(self, repo: Repo, path: str) -> bool:
        """Whether `verify_fetched` may refuse `path` when proxy `repo` fetches it, so that a client
        must not read any of it before the whole file is checked: the engine then fetches it in
        full before answering (a refusal is a clean 502, not a cut-off download), through a group
        too. Default False: fetched files stream to the client while they are stored."""
        return False

    def upstream_auth(self, config: Mapping[str, Any]) -> httpx.Auth | None:
        """An httpx.Auth for a proxy's upstream (None: HTTP Basic from the proxy's username/password)."""
        return None

    def setup_snippets(self, context: Any) -> Sequence[Any] | None:
        """The web UI's "set me up" for a repository of this format: a list of
        `artifactory.ui.setup.Snippet` (title, file name, text) built from `context` (a
        `SetupContext`: the repository's URL, host, name, whether it is plain HTTP). None keeps the
        UI's built-in snippets for this format id, if it has any."""
        return None

    def describe_component(self, component: Mapping[str, Any], read: Any) -> Any:
        """What the web UI shows about a component version: an `artifactory.ui.describe.Description`
        (summary, facts, a README), or None for the UI's built-in description. `component` holds
        namespace, name, version, attributes and assets; `await read(path, limit)` gives an asset's
        bytes. May be a coroutine function."""
        return None

    def content_type(self, path: str) -> str | None:
        """The Content-Type to store an asset with; None lets the engine guess from the extension."""
        return None

    def tombstone(self, path: str) -> str | None:
        """A key that, once an asset at `path` is deleted, may never be stored again in that
        repository (a PyPI filename, an npm name@version); None: the path may be reused. The engine
        records it in the deletion's transaction and refuses a later upload with the same key."""
        return None

    # -- index documents (docs/plugins.md, "Index documents") ------------------------------------
    # A document clients read (a simple page, a packument, maven-metadata.xml, a tag list) is not
    # stored: it is computed from a model. The format gives four pure steps; the engine does the
    # rest for hosted, proxy and group repositories alike (caching by what the document depends
    # on, upstream fetch and revalidation, the member walk, permissions, the dependency-confusion
    # guard, ETag, 304 and gzip). A format serves one with `Repositories.index(request, repo, key)`.

    async def build(self, key: IndexKey, hosted: Any) -> Any:
        """The model of `key` in a hosted repository, read through `hosted` (a `HostedView`:
        components, component names, stored assets). None: there is no such document (404)."""
        return None

    @property
    def builds_documents(self) -> bool:
        """Whether the format builds hosted documents (it overrides `build`). Only then does a change
        move the generations of the names it touches (what a document built for a name is cached
        by): a format without documents (raw) has no such row to write per upload."""
        return type(self).build is not Format.build

    def upstream_document(self, key: IndexKey) -> UpstreamDocument | None:
        """Where a proxy repository finds `key` upstream; None: a proxy has no such document."""
        return None

    def parse(
        self, key: IndexKey, body: bytes, url: str, needed: Mapping[IndexKey, Any] = NOTHING_NEEDED
    ) -> Parsed | None:
        """The model of an upstream's copy of `key` (`url`: where it came from, after redirects, for
        resolving relative links; `needed`: the models of the documents its `UpstreamDocument`
        needs, each present unless the upstream has none, passed only to a document that declares
        needs). Raise ValueError for a malformed
        document (the cached copy keeps being served); None: the document is empty (404)."""
        return None

    def merge(self, key: IndexKey, models: Sequence[Any]) -> Any:
        """One model of a group from its members' models, first member first (the first member wins
        where two members name the same file or version)."""
        return models[0]

    def media_types(self, key: IndexKey) -> Sequence[str]:
        """The media types `key` can be rendered in, preferred first (negotiated against Accept)."""
        return ("application/json",)

    def render(self, key: IndexKey, model: Any, context: RenderContext) -> Rendered:
        """The bytes a client reads. May use `context.repository_url` for absolute links."""
        raise NotImplementedError(f"{self.id} renders no index documents")

    def companions(self, path: str) -> tuple[str, ...]:
        """The paths of files derived from the file at `path` and stored beside it (`Upload.companions`:
        a wheel's .metadata, a module zip's .mod and .info): whatever deletes the file deletes them
        with it, in the same transaction. An upload may carry no companion this does not name."""
        return ()

    def companion_of(self, path: str) -> str | None:
        """The file that the file at `path` is a companion of, if it is one: while that file is
        stored, a DELETE of `path` alone is refused (`CompanionDelete`, 405)."""
        return None

    def declared_by(self, path: str) -> IndexKey | None:
        """Which document lists the file at `path` (a wheel's simple page, a tarball's packument):
        a proxy fetches that file from where the upstream's document says, verified against the
        digests it declares. None: the file is at `path` below the upstream URL, unverified unless
        `expected_digests` names its digests."""
        return None

    def index_source(self, key: IndexKey) -> str | None:
        """What `build(key)` reads, so that a group need not build `key` in a hosted member that
        cannot have it: "" when it reads nothing but the components of `key`'s (namespace, name)
        (and builds None without them), a path when it reads nothing but the asset at that path (and
        builds None without it), None (the default) when it may read anything: built everywhere."""
        return None

    # -- cleanup policies (docs/cleanup.md) ------------------------------------------------------
    def version_key(self, version: str) -> Any:
        """A sort key that orders this format's versions oldest first (PEP 440, semver, Maven's
        order...). Keys of one format must compare with each other whatever the version string;
        the default is a natural sort (digit runs compare as numbers: 1.10 after 1.9)."""
        return natural_key(version)

    def is_prerelease(self, version: str) -> bool:
        """Whether `version` is a prerelease or snapshot (the rule `prerelease_older_than_days`)."""
        return False

    def cleanup_versions(self, components: Sequence[ComponentInfo]) -> list[ComponentInfo]:
        """Of one name's components, those that are versions a cleanup policy may weigh and remove
        (not a document such as an npm packument, not what another collector owns such as OCI
        manifests by digest). The default: all of them."""
        return list(components)

    def newest_first(self, components: Sequence[ComponentInfo]) -> list[ComponentInfo]:
        """One name's versions, newest first: by `version_key`, then by creation time."""
        return sorted(components, key=lambda c: (self.version_key(c.version), c.created_at), reverse=True)

    async def protected_versions(
        self, repositories: Any, repo: Repo, namespace: str, name: str, components: Sequence[ComponentInfo]
    ) -> set[str]:
        """Versions of `namespace`/`name` in `repo` that something still names and that cleanup
        must never remove: a dist-tag, a tag, `latest`, maven-metadata.xml's release. Answered from
        the format's own stored data through `repositories` (the `Repositories` service); never
        fetches from an upstream. Also asked of the other members of every group `repo` is in."""
        return set()

    async def delete_versions(
        self, repositories: Any, repo: Repo, components: Sequence[ComponentInfo], principal: Any
    ) -> list[str]:
        """Remove these versions (all of one name) the way the format's own delete does, so that a
        document listing versions (a packument) is updated; answers the paths deleted. The default
        deletes each asset through `repositories.delete`, a companion with its file."""
        deleted: list[str] = []
        for component in components:
            paths = {asset.path for asset in component.assets}
            for asset in component.assets:
                if self.companion_of(asset.path) in paths:
                    continue  # deleted with its file
                if await repositories.delete(repo, asset.path, principal) is not None:
                    deleted.append(asset.path)
                    deleted.extend(each for each in self.companions(asset.path) if each in paths)
        return deleted


def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Digit runs compare as numbers and everything else as text: 1.2 < 1.10 < 1.10a."""
    return tuple(
        (0, int(part), "") if ascii_digits(part) else (1, 0, part)
        for part in re.split(r"([0-9]+)", text)
        if part
    )


def semver_key(version: str) -> tuple[int, semver.Version | None, str]:
    """A `Format.version_key` for Semantic Versioning 2.0: precedence as the spec says (1.0.0-alpha.2
    < 1.0.0-rc.1 < 1.0.0 < 1.9.0 < 1.10.0, build metadata ignored); what is not a version sorts first."""
    try:
        return (1, semver.Version.parse(version), "")
    except (ValueError, TypeError):
        return (0, None, version)


def semver_prerelease(version: str) -> bool:
    """A `Format.is_prerelease` for Semantic Versioning 2.0: a version with a prerelease part
    (1.0.0-rc.1; not 1.0.0+build-5); what is not a version is not a prerelease either."""
    key = semver_key(version)
    return key[1] is not None and bool(key[1].prerelease)


class FormatRegistry:
    def __init__(self) -> None:
        self._formats: dict[str, Format] = {}

    def add(self, fmt: Format) -> None:
        if not fmt.id:
            raise ValueError(f"{type(fmt).__name__} has no id")
        if fmt.id in self._formats:
            raise ValueError(f"format {fmt.id!r} is registered twice")
        self._formats[fmt.id] = fmt

    def get(self, format_id: str) -> Format | None:
        return self._formats.get(format_id)

    def __getitem__(self, format_id: str) -> Format:
        return self._formats[format_id]

    def __contains__(self, format_id: object) -> bool:
        return format_id in self._formats

    def ids(self) -> list[str]:
        return sorted(self._formats)

    def all(self) -> list[Format]:
        return [self._formats[i] for i in self.ids()]
