"""`artifactory oci-gc`: drop untagged manifests and blobs no manifest references, after a grace period.

Kept: every tagged manifest, what it references (an index's child manifests, a manifest's config and
layers, transitively), and every manifest whose `subject` is kept (signatures, SBOMs). Everything
else in an image's manifests/ and blobs/ folders is deleted once it is older than the grace period,
so a push in progress (blobs uploaded, manifest not yet pushed) is never broken; the bytes of an
upload session are temporaries that the core `artifactory gc` keeps while the session lives. Run
`artifactory gc` afterwards to reclaim the bytes of blobs that no asset references any more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from artifactory.plugin import AppState, Engine, Principal, Repo, StoredAsset

SYSTEM = Principal(username="system:oci-gc", roles=frozenset({"admin"}))
DEFAULT_GRACE_SECONDS = 24 * 3600


@dataclass
class Report:
    manifests: int = 0
    blobs: int = 0
    dry_run: bool = False
    deleted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifests": self.manifests,
            "blobs": self.blobs,
            "dry_run": self.dry_run,
            "deleted": self.deleted,
        }


async def _walk(eng: Engine, repo: Repo, prefix: str, found: dict[str, StoredAsset]) -> None:
    for entry in await eng.listing(repo, prefix, SYSTEM):
        if entry.is_folder:
            await _walk(eng, repo, f"{prefix}{entry.name}/", found)
        elif entry.asset is not None:
            found[entry.asset.path] = entry.asset


def _images(assets: dict[str, StoredAsset]) -> dict[str, dict[str, dict[str, StoredAsset]]]:
    """image -> {"manifests": {ref: asset}, "blobs": {digest: asset}}"""
    images: dict[str, dict[str, dict[str, StoredAsset]]] = {}
    for path, asset in assets.items():
        for folder in ("manifests", "blobs"):
            head, sep, ref = path.rpartition(f"/{folder}/")
            if sep and ref and "/" not in ref:
                images.setdefault(head, {"manifests": {}, "blobs": {}})[folder][ref] = asset
                break
    return images


def _oci(asset: StoredAsset) -> dict[str, Any]:
    return dict(asset.attributes.get("oci") or {})


def plan(image: dict[str, dict[str, StoredAsset]], cutoff: datetime) -> list[str]:
    """The paths to delete in one image (pure: decided from the assets and their attributes)."""
    manifests, blobs = image["manifests"], image["blobs"]
    by_digest = {ref: a for ref, a in manifests.items() if ":" in ref}
    live: set[str] = {f"sha256:{a.sha256}" for ref, a in manifests.items() if ":" not in ref}
    pending = list(live)
    while True:
        while pending:
            digest = pending.pop()
            asset = by_digest.get(digest)
            for ref in _oci(asset).get("references", []) if asset is not None else []:
                if ref not in live:
                    live.add(ref)
                    pending.append(ref)
        referrers = [d for d, a in by_digest.items() if d not in live and _oci(a).get("subject") in live]
        if not referrers:
            break
        live.update(referrers)
        pending.extend(referrers)
    doomed = [a.path for d, a in by_digest.items() if d not in live and a.updated_at < cutoff]
    doomed += [a.path for d, a in blobs.items() if d not in live and a.updated_at < cutoff]
    return doomed


async def collect(eng: Engine, grace_seconds: int, dry_run: bool) -> Report:
    report = Report(dry_run=dry_run)
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    repos = await eng.db_call(eng.repos.all)
    for repo in repos:
        if repo.format != "oci" or repo.type == "group":
            continue
        assets: dict[str, StoredAsset] = {}
        await _walk(eng, repo, "", assets)
        for image in _images(assets).values():
            for path in plan(image, cutoff):
                if "/manifests/" in path:
                    report.manifests += 1
                else:
                    report.blobs += 1
                report.deleted.append(f"{repo.name}/{path}")
                if not dry_run:
                    await eng.delete(repo, path, SYSTEM)
    return report


def run(args: argparse.Namespace, state: AppState) -> int:
    report = asyncio.run(collect(state.engine, args.grace, args.dry_run))
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
