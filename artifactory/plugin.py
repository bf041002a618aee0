"""The public facade: what formats (formats/) and plugins (plugins/) import, and nothing else.

from artifactory.plugin import Format, hookimpl, Upload, current_repository, respond
"""

from __future__ import annotations

import pluggy
from starlette.requests import HTTPConnection, Request

from artifactory.blobstore.store import BlobInfo, StagedBlob
from artifactory.events import AssetEvent, RepositoryEvent
from artifactory.formats import (
    ARCHIVE_ERRORS,
    NOTHING_NEEDED,
    CachePolicy,
    Coordinates,
    FileRef,
    Format,
    FormatRegistry,
    IndexKey,
    Parsed,
    RenderContext,
    Rendered,
    UpstreamDocument,
    gunzip_bounded,
    inflation_limit,
    semver_key,
    semver_prerelease,
    zip_member_name,
)
from artifactory.http.bodies import InvalidJSON, loads, read_body
from artifactory.http.documents import RenderedDocument, respond_document
from artifactory.http.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    HTTPProblem,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UploadRefused,
)
from artifactory.http.urls import base_url, repository_url
from artifactory.lru import Lru
from artifactory.repository.engine import Entry
from artifactory.repository.errors import (
    CompanionDelete,
    DigestMismatch,
    EngineError,
    TooLarge,
    UploadOffsetMismatch,
    UploadUnknown,
    UpstreamUnavailable,
    WritePolicyViolation,
)
from artifactory.repository.hosted import Companion, Upload
from artifactory.repository.index import HostedView
from artifactory.repository.model import ComponentInfo, Content, Document, Repo, StoredAsset, Streaming
from artifactory.repository.service import Access, Repositories, UpstreamAnswer, run_sync
from artifactory.repository.uploads import UploadState
from artifactory.security.principal import ANONYMOUS, Credentials, Grant, Principal
from artifactory.security.service import InvalidCredentials
from artifactory.serve import respond
from artifactory.state import AppState
from artifactory.text import ascii_digits

hookimpl = pluggy.HookimplMarker("artifactory")

# The principal for changes the server makes itself (retention, cache repairs): it may do anything.
SYSTEM = Principal(username="system", roles=frozenset({"admin"}))


def _state(connection: HTTPConnection) -> AppState:
    return connection.scope["artifactory.state"]  # type: ignore[no-any-return]


def repositories(connection: HTTPConnection) -> Repositories:
    """The repository service: everything a format does with repositories goes through it."""
    return _state(connection).repositories


def access(connection: HTTPConnection) -> Access:
    """Authentication, the permission check and tokens."""
    return _state(connection).access


def current_repository(request: Request) -> Repo:
    """The repository a /repository/{name}/... request is for (resolved before the format runs)."""
    return request.scope["artifactory.repo"]  # type: ignore[no-any-return]


def current_path(request: Request) -> str:
    """The checked, decoded path below the repository root."""
    return request.scope["artifactory.path"]  # type: ignore[no-any-return]


async def current_principal(connection: HTTPConnection) -> Principal:
    return await _state(connection).principal(connection)


__all__ = [
    "ANONYMOUS",
    "Lru",
    "RenderedDocument",
    "respond_document",
    "Access",
    "DigestMismatch",
    "EngineError",
    "FileRef",
    "HostedView",
    "IndexKey",
    "Parsed",
    "RenderContext",
    "Rendered",
    "Repositories",
    "TooLarge",
    "UpstreamAnswer",
    "UpstreamDocument",
    "NOTHING_NEEDED",
    "ascii_digits",
    "loads",
    "InvalidJSON",
    "zip_member_name",
    "gunzip_bounded",
    "inflation_limit",
    "ARCHIVE_ERRORS",
    "UpstreamUnavailable",
    "WritePolicyViolation",
    "access",
    "repositories",
    "run_sync",
    "BlobInfo",
    "Companion",
    "InvalidCredentials",
    "SYSTEM",
    "StagedBlob",
    "UploadOffsetMismatch",
    "UploadState",
    "UploadUnknown",
    "CompanionDelete",
    "AppState",
    "AssetEvent",
    "BadGateway",
    "BadRequest",
    "CachePolicy",
    "ComponentInfo",
    "Conflict",
    "Content",
    "Coordinates",
    "Credentials",
    "Document",
    "Entry",
    "Forbidden",
    "Format",
    "FormatRegistry",
    "HTTPProblem",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "Grant",
    "Principal",
    "Repo",
    "RepositoryEvent",
    "StoredAsset",
    "Streaming",
    "Unauthorized",
    "Upload",
    "UploadRefused",
    "base_url",
    "current_path",
    "current_principal",
    "current_repository",
    "hookimpl",
    "repository_url",
    "read_body",
    "respond",
    "semver_key",
    "semver_prerelease",
]
