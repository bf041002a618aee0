"""Plain data the engine hands to formats and routes: never ORM objects, never sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from artifactory.blobstore.store import BlobInfo

HOSTED, PROXY, GROUP = "hosted", "proxy", "group"
REPOSITORY_TYPES = (HOSTED, PROXY, GROUP)
WRITE_POLICIES = ("allow", "allow_once", "deny")


@dataclass(frozen=True)
class Repo:
    """A snapshot of one repository's row, cached per process and replaced when its revision moves."""

    id: int
    name: str
    format: str
    type: str
    config: Mapping[str, Any]
    revision: int
    state: Mapping[str, Any] = field(default_factory=dict)

    @property
    def write_policy(self) -> str:
        return str(self.config.get("write_policy", "allow"))

    @property
    def members(self) -> list[str]:
        return list(self.config.get("members", []))


@dataclass(frozen=True)
class StoredAsset:
    """An asset whose bytes are a blob in the blob store."""

    repository: str
    path: str
    sha256: str
    size: int
    md5: str
    sha1: str
    sha512: str
    content_type: str
    updated_at: datetime
    attributes: Mapping[str, Any]
    asset_id: int = 0
    component_id: int | None = None
    # The bytes, when the blob keeps them in its database row and the lookup read them with it.
    inline: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of_blob(
        cls,
        repository: str,
        path: str,
        info: BlobInfo,
        content_type: str,
        updated_at: datetime,
        attributes: Mapping[str, Any],
        asset_id: int = 0,
        component_id: int | None = None,
    ) -> StoredAsset:
        """The asset at `path` serving the blob `info` describes (as a commit is about to save it,
        or has just saved it)."""
        return cls(
            repository=repository,
            path=path,
            sha256=info.sha256,
            size=info.size,
            md5=info.md5,
            sha1=info.sha1,
            sha512=info.sha512,
            content_type=content_type,
            updated_at=updated_at,
            attributes=attributes,
            asset_id=asset_id,
            component_id=component_id,
        )


# The most bytes of small files read with their assets (`StoredAsset.inline`) a cache of assets holds.
INLINE_CACHE_BYTES = 32 * 1024 * 1024


def inline_size(asset: StoredAsset) -> int:
    """The bytes an asset holds in memory (`StoredAsset.inline`): the weight of a cached asset."""
    return len(asset.inline) if asset.inline is not None else 0


@dataclass(frozen=True)
class Document:
    """A document computed in memory (a group's merged metadata)."""

    repository: str
    path: str
    body: bytes
    content_type: str
    sha256: str
    updated_at: datetime


@dataclass
class Streaming:
    """A proxied file arriving from upstream: the client reads it while it is being stored."""

    repository: str
    path: str
    chunks: AsyncIterator[bytes]
    size: int | None
    content_type: str
    upstream_headers: Mapping[str, str]


Content = StoredAsset | Document | Streaming


@dataclass(frozen=True)
class ComponentInfo:
    id: int
    repository: str
    namespace: str
    name: str
    version: str
    attributes: Mapping[str, Any]
    created_at: datetime
    assets: tuple[StoredAsset, ...] = ()
