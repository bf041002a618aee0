"""`artifactory oci-gc`: drop untagged manifests and blobs no manifest references, after a grace period.

Marked as live, in every oci repository, hosted and proxy alike: every manifest that stays (a tag,
anything younger than the grace period, and in a proxy every cached manifest, whether it was
fetched by tag or by digest), what each references (an index's child manifests, a manifest's config
and layers, transitively), and every manifest whose `subject` is live (signatures, SBOMs). What a
manifest references is read from the attributes stored with a push, or from its bytes (a proxy
caches an upstream's manifest as it came). Everything else in an image's manifests/ and blobs/
folders is deleted once it is older than the grace period, so a push in progress (blobs uploaded,
manifest not yet pushed) is never broken; the bytes of an upload session are temporaries that the
core `artifactory gc` keeps while the session lives. Run `artifactory gc` afterwards to reclaim the
bytes of blobs that no asset references any more.

When in doubt nothing is deleted: an image whose folders cannot be listed completely or one of
whose manifests cannot be read is skipped (and named in the report).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from artifactory_formats.oci.manifests import DEFAULT_MAX_MANIFEST_BYTES
from artifactory_formats.oci.metadata import references_of

from artifactory.plugin import AppState, Principal, Repo, Repositories, StoredAsset

SYSTEM = Principal(username="system:oci-gc", roles=frozenset({"admin"}))
DEFAULT_GRACE_SECONDS = 24 * 3600
# The engine's listing returns at most this many rows under a prefix: a folder that reaches it may
# be incomplete, and an incomplete list of manifests would doom the blobs of the ones left out.
LISTING_LIMIT = 10_000
MAX_MANIFEST_READ = 16 * 1024 * 1024


@dataclass
class Report:
    manifests: int = 0
    blobs: int = 0
    dry_run: bool = False
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifests": self.manifests,
            "blobs": self.blobs,
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class Facts:
    """What one manifest points at: descriptor digests, and the subject it refers to."""

    references: tuple[str, ...]
    subject: str | None = None


@dataclass
class Image:
    manifests: dict[str, StoredAsset]  # reference (tag or digest) -> asset
    blobs: dict[str, StoredAsset]  # digest -> asset


def _keys(asset: StoredAsset) -> set[str]:
    """The digests an asset's bytes answer to."""
    keys = {f"sha256:{asset.sha256}"}
    if asset.sha512:
        keys.add(f"sha512:{asset.sha512}")
    return keys


def plan(image: Image, facts: Mapping[str, Facts], cutoff: datetime, cache: bool) -> list[str]:
    """The paths to delete in one image (pure: decided from the assets and what they reference).

    `facts` maps each manifest's sha256 to what it references; `cache` is true for a proxy, whose
    manifests are all kept (they were fetched because someone pulled them).
    """
    manifests, blobs = image.manifests, image.blobs
    holders: dict[str, list[StoredAsset]] = {}
    for asset in manifests.values():
        for key in _keys(asset):
            holders.setdefault(key, []).append(asset)
    live: set[str] = set()
    pending: list[str] = []

    def mark(digests: Iterable[str]) -> None:
        for digest in digests:
            if digest not in live:
                live.add(digest)
                pending.append(digest)

    for ref, asset in manifests.items():
        if cache or ":" not in ref or asset.updated_at >= cutoff:
            mark(_keys(asset))
    while True:
        while pending:
            for asset in holders.get(pending.pop(), []):
                mark(facts[asset.sha256].references)
        referrers = [a for a in manifests.values() if not _keys(a) & live and facts[a.sha256].subject in live]
        if not referrers:
            break
        for asset in referrers:
            mark(_keys(asset))
    doomed = [
        a.path
        for ref, a in manifests.items()
        if not cache and ":" in ref and not _keys(a) & live and a.updated_at < cutoff
    ]
    doomed += [
        a.path
        for ref, a in blobs.items()
        if ref not in live and not _keys(a) & live and a.updated_at < cutoff
    ]
    return doomed


def _stored_facts(asset: StoredAsset) -> Facts | None:
    """What a pushed manifest's attributes say it references (None: read its bytes instead)."""
    oci = asset.attributes.get("oci")
    references = oci.get("references") if isinstance(oci, dict) else None
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        return None
    subject = oci.get("subject") if isinstance(oci, dict) else None
    return Facts(tuple(references), subject if isinstance(subject, str) else None)


async def _facts(repos: Repositories, manifests: Iterable[StoredAsset], known: dict[str, Facts]) -> bool:
    """Fill `known` (sha256 -> Facts) for every manifest; False if one cannot be read."""
    for asset in manifests:
        if asset.sha256 in known:
            continue
        stored = _stored_facts(asset)
        if stored is None:
            if asset.size > max(MAX_MANIFEST_READ, DEFAULT_MAX_MANIFEST_BYTES):
                return False
            try:
                body = await repos.read(asset, MAX_MANIFEST_READ)
                stored = Facts(*references_of(body))
            except Exception:  # noqa: BLE001 - unreadable for any reason: keep the whole image
                return False
        known[asset.sha256] = stored
    return True


async def _folder(repos: Repositories, repo: Repo, prefix: str) -> dict[str, StoredAsset] | None:
    """The files directly in a folder; None when the list may be incomplete."""
    entries = await repos.listing(repo, prefix, SYSTEM)
    if len(entries) >= LISTING_LIMIT or any(e.is_folder for e in entries):
        return None  # a nested image's rows count towards the limit too
    return {e.name: e.asset for e in entries if e.asset is not None}


async def _walk(repos: Repositories, repo: Repo, prefix: str, found: set[str]) -> None:
    """Image names seen in the folder tree (images with blobs but no manifest included)."""
    for entry in await repos.listing(repo, prefix, SYSTEM):
        if entry.is_folder and not entry.name.startswith("."):  # no image name does: the engine's .index/
            if entry.name in ("manifests", "blobs") and prefix:
                found.add(prefix.rstrip("/"))
            await _walk(repos, repo, f"{prefix}{entry.name}/", found)


async def _image_names(repos: Repositories, repo: Repo) -> list[str]:
    names = {name for _namespace, name in await repos.component_names(repo)}
    await _walk(repos, repo, "", names)
    return sorted(names)


async def collect(repos: Repositories, grace_seconds: int, dry_run: bool) -> Report:
    report = Report(dry_run=dry_run)
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    for repo in await repos.storing("oci"):
        known: dict[str, Facts] = {}
        for name in await _image_names(repos, repo):
            manifests = await _folder(repos, repo, f"{name}/manifests/")
            blobs = await _folder(repos, repo, f"{name}/blobs/")
            if manifests is None or blobs is None or not await _facts(repos, manifests.values(), known):
                report.skipped.append(f"{repo.name}/{name}")
                continue
            for path in plan(Image(manifests, blobs), known, cutoff, cache=repo.type == "proxy"):
                if "/manifests/" in path.removeprefix(name):
                    report.manifests += 1
                else:
                    report.blobs += 1
                report.deleted.append(f"{repo.name}/{path}")
                if not dry_run:
                    await repos.delete(repo, path, SYSTEM)
    return report


def run(args: argparse.Namespace, state: AppState) -> int:
    report = asyncio.run(collect(state.repositories, args.grace, args.dry_run))
    print(json.dumps(report.as_dict()))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "oci-gc", help="delete untagged OCI manifests and unreferenced blobs (then run `gc`)"
    )
    parser.add_argument("--data-dir", type=Path, help="data directory (default ./artifactory-data)")
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument(
        "--grace", type=int, default=DEFAULT_GRACE_SECONDS, help="seconds untagged content is kept"
    )
    parser.set_defaults(run=run)
