"""Cleanup policies: rules defined once, attached to repositories of any format, run on a schedule
inside the server (one node at a time, through a lease in the database) and from `artifactory
cleanup`. docs/cleanup.md is the operator's reference.

A policy selects versions of a component (one namespace and name) that meet every rule it sets:
- `keep_newest`: the version is not among the newest N, in the format's own order
  (`Format.newest_first`: PEP 440, semver, Maven's order, OCI tags by push time);
- `not_downloaded_days`: no asset of the version was downloaded for D days (never downloaded counts
  from when the asset was stored);
- `prerelease_older_than_days`: a prerelease or snapshot (`Format.is_prerelease`) stored more than D
  days ago.
Names matching the `allow` globs are never touched. Whatever the format says is still referenced
(`Format.protected_versions`: dist-tags, `latest`, maven-metadata.xml's release, the same answers of
the other members of every group the repository is in) is never removed. A policy that would remove
every version of a component keeps the newest unless it says `allow_empty`.
Versions go through the format's own delete (`Format.delete_versions`), so a packument is rewritten
and its dist-tags recomputed as an unpublish would; the blobs they leave are collected by blob GC.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
import logging
import math
import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
from sqlalchemy import select

from artifactory.db import queries
from artifactory.db.models import Asset, Blob, Component, Setting, utcnow
from artifactory.keeper import Keeper
from artifactory.repository.model import GROUP, ComponentInfo, Repo, StoredAsset

if TYPE_CHECKING:
    from artifactory.db.engine import Database
    from artifactory.state import AppState

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("artifactory")

POLICIES_KEY = "cleanup_policies"  # Setting row: {name: policy}
SCHEDULE_KEY = "cleanup.schedule"  # Setting row: {next_run, owner, lease_until} (epoch seconds)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
RULES = ("keep_newest", "not_downloaded_days", "prerelease_older_than_days")
FIELDS = (*RULES, "allow", "allow_empty", "description")
MAX_DAYS = 100 * 366
MAX_POLICIES = 1000
# A scheduled run holds the lease this long and renews it while it works; a node that dies
# mid-run leaves it to expire, and another node takes over at its next check.
LEASE_SECONDS = 300.0
POLL_SECONDS = 30.0


class PolicyError(ValueError):
    """A policy definition refused; the message says which field and why."""


@dataclass(frozen=True)
class Policy:
    name: str
    keep_newest: int | None = None
    not_downloaded_days: float | None = None
    prerelease_older_than_days: float | None = None
    allow: tuple[str, ...] = ()
    allow_empty: bool = False
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key in RULES:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(allow=list(self.allow), allow_empty=self.allow_empty, description=self.description)
        return out

    def allows(self, namespace: str, name: str) -> bool:
        """Whether a name is on the allow-list: globs over `name`, `namespace/name` and
        `namespace:name` (npm `@scope/pkg`, Maven `groupId:artifactId`, an OCI image path)."""
        forms = {name, f"{namespace}/{name}", f"{namespace}:{name}"} if namespace else {name}
        return any(fnmatch.fnmatchcase(form, pattern) for pattern in self.allow for form in forms)


def parse_policy(name: str, body: Any) -> Policy:
    """A checked policy from its JSON definition."""
    if not isinstance(name, str) or not NAME.match(name):
        raise PolicyError(
            "a policy name is 1-100 characters: letters, digits, '.', '_' and '-', not starting with a symbol"
        )
    if not isinstance(body, dict):
        raise PolicyError("a policy must be a JSON object")
    body = {k: v for k, v in body.items() if k != "name" or v == name}
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise PolicyError(f"unknown policy fields: {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    if all(body.get(rule) is None for rule in RULES):
        raise PolicyError(f"a policy needs at least one rule: {', '.join(RULES)}")
    keep = body.get("keep_newest")
    if keep is not None and (
        isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= 1_000_000
    ):
        raise PolicyError("keep_newest must be a whole number of versions from 0 to 1000000")
    days: dict[str, float | None] = {}
    for key in ("not_downloaded_days", "prerelease_older_than_days"):
        value = body.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0 <= value <= MAX_DAYS
        ):
            raise PolicyError(f"{key} must be a number of days from 0 to {MAX_DAYS}")
        days[key] = float(value) if value is not None else None
    allow = body.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(p, str) and 0 < len(p) <= 500 for p in allow):
        raise PolicyError("allow must be a list of names or globs (such as 'internal-*' or 'com.acme:*')")
    if len(allow) > 1000:
        raise PolicyError("allow lists at most 1000 patterns")
    allow_empty = body.get("allow_empty", False)
    if not isinstance(allow_empty, bool):
        raise PolicyError("allow_empty must be true or false")
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 1000:
        raise PolicyError("description must be a string of at most 1000 characters")
    return Policy(
        name=name,
        keep_newest=keep,
        not_downloaded_days=days["not_downloaded_days"],
        prerelease_older_than_days=days["prerelease_older_than_days"],
        allow=tuple(allow),
        allow_empty=allow_empty,
        description=description,
    )


# -- the stored definitions ---------------------------------------------------------------------
def load_policies(db: Database) -> dict[str, Policy]:
    """Every stored policy by name (blocking). A stored definition that no longer parses is left out."""
    with db.read() as session:
        row = session.get(Setting, POLICIES_KEY)
        stored = dict(row.value) if row is not None and isinstance(row.value, dict) else {}
    policies = {}
    for name, body in stored.items():
        try:
            policies[name] = parse_policy(name, body)
        except PolicyError as exc:
            log.warning("cleanup policy %s is unusable: %s", name, exc)
    return policies


def _change(db: Database, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    with db.write() as session:
        queries.insert_ignore(session, Setting, {"key": POLICIES_KEY, "value": {}}, ["key"])
        row = session.execute(
            select(Setting).where(Setting.key == POLICIES_KEY).with_for_update()
        ).scalar_one()
        row.value = fn(dict(row.value or {}))


def save_policy(db: Database, policy: Policy) -> bool:
    """Store (create or replace) a policy; True when it is new."""
    created: list[bool] = []

    def put(stored: dict[str, Any]) -> dict[str, Any]:
        created.append(policy.name not in stored)
        if created[0] and len(stored) >= MAX_POLICIES:
            raise PolicyError(f"at most {MAX_POLICIES} cleanup policies")
        stored[policy.name] = {k: v for k, v in policy.as_dict().items() if k != "name"}
        return stored

    _change(db, put)
    return created[0]


def delete_policy(db: Database, name: str) -> bool:
    found: list[bool] = []

    def drop(stored: dict[str, Any]) -> dict[str, Any]:
        found.append(stored.pop(name, None) is not None)
        return stored

    _change(db, drop)
    return found[0]


def attached(repos: Sequence[Repo], name: str) -> list[str]:
    """Repositories whose `cleanup_policies` name this policy."""
    return sorted(r.name for r in repos if name in (r.config.get("cleanup_policies") or []))


# -- planning ---------------------------------------------------------------------------------
@dataclass
class Removal:
    """One version to remove (or, in a dry run, that would go)."""

    repository: str
    component: ComponentInfo
    policies: list[str]

    @property
    def paths(self) -> list[str]:
        return [a.path for a in self.component.assets]

    @property
    def bytes(self) -> int:
        return sum(a.size for a in self.component.assets)

    def as_dict(self) -> dict[str, Any]:
        c = self.component
        return {
            "repository": self.repository,
            "namespace": c.namespace,
            "name": c.name,
            "version": c.version,
            "assets": self.paths,
            "bytes": self.bytes,
            "policies": self.policies,
        }


@dataclass
class Report:
    dry_run: bool
    repositories: list[str] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)  # what allow_empty would have let go
    errors: list[str] = field(default_factory=list)
    deleted_assets: int = 0
    seconds: float = 0.0
    gc: dict[str, Any] | None = None

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removals)

    def summary(self) -> dict[str, Any]:
        found = {
            "dry_run": self.dry_run,
            "repositories": self.repositories,
            "versions": len(self.removals),
            "assets": sum(len(r.component.assets) for r in self.removals),
            "bytes": self.bytes,
            "kept": len(self.kept),
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }
        if not self.dry_run:  # what the run deleted: the planned assets, unless a deletion failed
            found["deleted_assets"] = self.deleted_assets
        return found

    def as_dict(self) -> dict[str, Any]:
        out = {**self.summary(), "removals": [r.as_dict() for r in self.removals], "kept": self.kept}
        if self.gc is not None:
            out["gc"] = self.gc
        return out


@dataclass
class _Version:
    component: ComponentInfo
    last_active: datetime  # last download, else when its newest asset was stored


def _versions_of(db: Database, repo: Repo) -> dict[tuple[str, str], list[_Version]]:
    """Every component of `repo` that has assets, with download facts, by (namespace, name). Blocking."""
    columns = (
        *queries._ASSET_COLUMNS,
        Asset.created_at.label("asset_created_at"),
        Asset.last_downloaded,
        Component.namespace,
        Component.name,
        Component.version,
        Component.attributes.label("component_attributes"),
        Component.created_at.label("component_created_at"),
    )
    query = (
        select(*columns)
        .join(Blob, Blob.sha256 == Asset.blob_sha256)
        .join(Component, Component.id == Asset.component_id)
        .where(Component.repository_id == repo.id)
        .order_by(Asset.component_id, Asset.path)
    )
    found: dict[int, tuple[Any, list[StoredAsset], datetime]] = {}
    with db.read() as session:
        for row in session.execute(query):
            active = row.last_downloaded or row.asset_created_at
            entry = found.get(row.component_id)
            if entry is None:
                found[row.component_id] = (row, [queries.to_asset(repo.name, row)], active)
            else:
                entry[1].append(queries.to_asset(repo.name, row))
                if active > entry[2]:
                    found[row.component_id] = (entry[0], entry[1], active)
    grouped: dict[tuple[str, str], list[_Version]] = {}
    for component_id, (row, assets, active) in found.items():
        info = ComponentInfo(
            id=component_id,
            repository=repo.name,
            namespace=row.namespace,
            name=row.name,
            version=row.version,
            attributes=row.component_attributes or {},
            created_at=row.component_created_at,
            assets=tuple(assets),
        )
        grouped.setdefault((row.namespace, row.name), []).append(_Version(info, active))
    return grouped


def _selects(policy: Policy, index: int, version: _Version, prerelease: bool, now: datetime) -> bool:
    """Whether `policy` selects the version at `index` (0 = newest): every rule it sets must hold."""
    if policy.keep_newest is not None and index < policy.keep_newest:
        return False
    if policy.not_downloaded_days is not None and version.last_active > now - timedelta(
        days=policy.not_downloaded_days
    ):
        return False
    if policy.prerelease_older_than_days is not None and not (
        prerelease and version.component.created_at <= now - timedelta(days=policy.prerelease_older_than_days)
    ):
        return False
    return True


def _group_siblings(state: AppState, repo: Repo, repos: Sequence[Repo]) -> list[Repo]:
    """The other leaf members of every group that contains `repo` (directly or through a nested
    group): their tags name versions that clients of the group may resolve to this repository."""
    by_name = {r.name: r for r in repos}

    def leaves(group: Repo, seen: frozenset[str]) -> list[Repo]:
        out: list[Repo] = []
        for name in group.members:
            member = by_name.get(name)
            if member is None or member.name in seen:
                continue
            out.extend(leaves(member, seen | {name}) if member.type == GROUP else [member])
        return out

    siblings: dict[str, Repo] = {}
    for group in repos:
        if group.type != GROUP or group.format != repo.format:
            continue
        members = leaves(group, frozenset({group.name}))
        if any(m.name == repo.name for m in members):
            siblings.update({m.name: m for m in members if m.name != repo.name})
    return list(siblings.values())


async def plan_repository(
    state: AppState,
    repo: Repo,
    policies: Sequence[Policy],
    report: Report,
    now: datetime,
    repos: Sequence[Repo],
) -> list[tuple[tuple[str, str], list[Removal]]]:
    """What `policies` remove from `repo`, by component name (added to `report` too)."""
    fmt = state.formats.get(repo.format)
    if fmt is None:
        report.errors.append(f"{repo.name}: format {repo.format!r} is not installed")
        return []
    eng = state.engine
    siblings = _group_siblings(state, repo, repos)
    grouped = await eng.db_call(_versions_of, state.db, repo)
    planned: list[tuple[tuple[str, str], list[Removal]]] = []
    for (namespace, name), versions in sorted(grouped.items()):
        active = [p for p in policies if not p.allows(namespace, name)]
        if not active:
            continue
        facts = {v.component.id: v for v in versions}
        components = [v.component for v in versions]
        try:
            candidates = fmt.newest_first(fmt.cleanup_versions(components))
        except Exception as exc:  # noqa: BLE001 - a format that cannot order them: leave the name alone
            report.errors.append(f"{repo.name}: {namespace}/{name}: cannot order versions: {exc}")
            continue
        if not candidates:
            continue
        chosen: dict[int, list[str]] = {}
        for index, component in enumerate(candidates):
            prerelease = fmt.is_prerelease(component.version)
            for policy in active:
                if _selects(policy, index, facts[component.id], prerelease, now):
                    chosen.setdefault(component.id, []).append(policy.name)
        if not chosen:
            continue
        try:
            protected = set(
                await fmt.protected_versions(state.repositories, repo, namespace, name, components)
            )
            for sibling in siblings:
                theirs = await eng.components(sibling, name=name, namespace=namespace)
                if theirs:
                    protected |= set(
                        await fmt.protected_versions(state.repositories, sibling, namespace, name, theirs)
                    )
        except Exception as exc:  # noqa: BLE001 - when in doubt, nothing of this name goes
            report.errors.append(f"{repo.name}: {namespace}/{name}: cannot tell what is protected: {exc}")
            continue
        removals = [
            Removal(repo.name, c, chosen[c.id])
            for c in candidates
            if c.id in chosen and c.version not in protected
        ]
        going = {r.component.id for r in removals}
        remaining = [c for c in candidates if c.id not in going]
        if removals and not remaining:
            allowing = all(any(p.allow_empty for p in active if p.name in r.policies) for r in removals)
            if not allowing:
                newest = removals.pop(0)  # candidates are newest first, and so are the removals
                report.kept.append(
                    {
                        "repository": repo.name,
                        "namespace": namespace,
                        "name": name,
                        "version": newest.component.version,
                        "reason": "the policies would remove every version; allow_empty lets them",
                    }
                )
        if removals:
            report.removals.extend(removals)
            planned.append(((namespace, name), removals))
    return planned


def _targets(state: AppState, repos: Sequence[Repo], repository: str | None) -> list[Repo]:
    if repository is not None:
        found = [r for r in repos if r.name == repository]
        if not found:
            raise LookupError(f"no repository {repository!r}")
        return found
    return [r for r in repos if r.config.get("cleanup_policies")]


async def run(
    state: AppState,
    repository: str | None = None,
    dry_run: bool = False,
    policies: Sequence[Policy] | None = None,
    progress: Any = None,
) -> Report:
    """Plan (and unless `dry_run`, carry out) cleanup: of `repository` or of every repository with
    policies attached; `policies` overrides the attached ones (a preview of one policy)."""
    started = time.monotonic()
    report = Report(dry_run=dry_run)
    eng = state.engine
    repos = await eng.db_call(eng.repos.all)
    stored = await eng.db_call(load_policies, state.db) if policies is None else {}
    now = utcnow()
    work: list[tuple[Repo, list[tuple[tuple[str, str], list[Removal]]]]] = []
    for repo in _targets(state, repos, repository):
        if repo.type == GROUP:
            if repository is not None:
                report.errors.append(f"{repo.name} is a group: attach policies to its members")
            continue
        chosen = list(policies) if policies is not None else []
        if policies is None:
            for name in repo.config.get("cleanup_policies") or []:
                if name in stored:
                    chosen.append(stored[name])
                else:
                    report.errors.append(f"{repo.name}: no cleanup policy named {name!r}")
        if not chosen:
            continue
        report.repositories.append(repo.name)
        work.append((repo, await plan_repository(state, repo, chosen, report, now, repos)))
    if not dry_run:
        if progress is not None:
            progress.start("versions", len(report.removals), report.bytes)
        for repo, planned in work:
            fmt = state.formats[repo.format]
            for _key, removals in planned:
                try:
                    components = [r.component for r in removals]
                    deleted = await fmt.delete_versions(state.repositories, repo, components, _system())
                    report.deleted_assets += len(deleted)
                except Exception as exc:  # noqa: BLE001 - one name's failure does not stop the run
                    log.exception("cleanup of %s in %s failed", removals[0].component.name, repo.name)
                    report.errors.append(f"{repo.name}: {removals[0].component.name}: {exc}")
                if progress is not None:
                    progress.advance(items=len(removals), nbytes=sum(r.bytes for r in removals))
        if progress is not None:
            progress.finish()
    report.seconds = time.monotonic() - started
    return report


def _system() -> Any:
    from artifactory.plugin import SYSTEM

    return SYSTEM


def audit_details(report: Report, trigger: str) -> dict[str, Any]:
    return {**report.summary(), "trigger": trigger, "errors": report.errors[:50]}


# -- the schedule -------------------------------------------------------------------------------
def acquire(db: Database, owner: str, interval: float, now: float | None = None) -> bool:
    """Take the schedule's lease when a run is due and nobody holds it (blocking)."""
    now = time.time() if now is None else now
    with db.write() as session:
        queries.insert_ignore(
            session,
            Setting,
            {"key": SCHEDULE_KEY, "value": {"next_run": 0, "owner": "", "lease_until": 0}},
            ["key"],
        )
        row = session.execute(
            select(Setting).where(Setting.key == SCHEDULE_KEY).with_for_update()
        ).scalar_one()
        value = dict(row.value or {})
        if now < float(value.get("next_run", 0)):
            return False
        if value.get("owner") and float(value.get("lease_until", 0)) > now:
            return False
        row.value = {**value, "owner": owner, "lease_until": now + LEASE_SECONDS}
        return True


def renew(db: Database, owner: str) -> bool:
    with db.write() as session:
        row = session.execute(
            select(Setting).where(Setting.key == SCHEDULE_KEY).with_for_update()
        ).scalar_one()
        value = dict(row.value or {})
        if value.get("owner") != owner:
            return False
        row.value = {**value, "lease_until": time.time() + LEASE_SECONDS}
        return True


def release(db: Database, owner: str, interval: float) -> None:
    """Hand the lease back and set the next run `interval` seconds from now."""
    with db.write() as session:
        row = session.execute(
            select(Setting).where(Setting.key == SCHEDULE_KEY).with_for_update()
        ).scalar_one()
        value = dict(row.value or {})
        if value.get("owner") == owner:
            row.value = {
                "next_run": time.time() + interval,
                "owner": "",
                "lease_until": 0,
                "last_owner": owner,
            }


async def scheduled_run(state: AppState, owner: str, interval: float) -> Report | None:
    """One check of the schedule: run cleanup (and blob GC) if it is due and this process wins the lease."""
    from anyio import to_thread

    if not await to_thread.run_sync(acquire, state.db, owner, interval):
        return None

    async def renew_held(owners: list[str]) -> None:
        for each in owners:
            await to_thread.run_sync(renew, state.db, each)

    keeper: Keeper[str] = Keeper(lambda: LEASE_SECONDS / 3, renew_held, "the cleanup schedule's lease")
    keeper.hold(owner)
    try:
        report = await run(state)
        report.gc = await to_thread.run_sync(_gc, state, report)
        await state.record(
            "system", "cleanup.run", details={**audit_details(report, "schedule"), "gc": report.gc}
        )
        return report
    finally:
        await keeper.close()
        await to_thread.run_sync(release, state.db, owner, interval)


def _gc(state: AppState, report: Report) -> dict[str, Any] | None:
    """Blob GC after a run that removed something, with the default grace."""
    if report.dry_run or not report.removals:
        return None
    from artifactory.blobstore.gc import collect

    return collect(state.db, state.blobs).as_dict()


async def _schedule(state: AppState, interval: float) -> None:
    owner = uuid.uuid4().hex
    await asyncio.sleep(random.uniform(0.0, 0.5))  # workers started together do not all ask at once
    while True:
        try:
            await scheduled_run(state, owner, interval)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the next check tries again
            log.exception("scheduled cleanup failed")
        await asyncio.sleep(min(interval, POLL_SECONDS) * random.uniform(0.9, 1.1))


_tasks: dict[int, asyncio.Task[None]] = {}


@hookimpl
def artifactory_startup(state: AppState) -> None:
    interval = float(getattr(state.settings, "cleanup_interval_seconds", 0) or 0)
    if interval <= 0:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # not inside a server's event loop
    _tasks[id(state)] = loop.create_task(_schedule(state, interval))


@hookimpl
def artifactory_shutdown(state: AppState) -> None:
    task = _tasks.pop(id(state), None)
    if task is not None:
        task.cancel()


# -- the command line ---------------------------------------------------------------------------
def _print_plan(report: Report, stream: Any) -> None:
    from artifactory.transfer import human

    for removal in report.removals:
        c = removal.component
        name = f"{c.namespace}/{c.name}" if c.namespace else c.name
        print(
            f"{'would remove' if report.dry_run else 'removed'} {removal.repository} {name} {c.version} "
            f"({len(c.assets)} files, {human(removal.bytes)})",
            file=stream,
        )
    for kept in report.kept:
        print(f"kept {kept['repository']} {kept['name']} {kept['version']}: {kept['reason']}", file=stream)
    for error in report.errors:
        print(f"error: {error}", file=stream)


def run_command(args: argparse.Namespace, state: AppState) -> int:
    from artifactory.transfer import Progress, human

    progress = Progress("cleanup")
    try:
        report = asyncio.run(run(state, args.repository, args.dry_run, progress=progress))
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    if not args.dry_run and not args.no_gc:
        from artifactory.blobstore.gc import DEFAULT_GRACE_SECONDS, collect

        print("cleanup: blob gc", file=sys.stderr, flush=True)
        report.gc = collect(state.db, state.blobs, grace_seconds=DEFAULT_GRACE_SECONDS).as_dict()
    if not args.dry_run:
        try:
            state.audit.record(
                "system", "cleanup.run", details={**audit_details(report, "cli"), "gc": report.gc}
            )
        except Exception:  # noqa: BLE001 - the work is done; say so rather than fail
            log.exception("could not record the cleanup run")
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        _print_plan(report, sys.stdout)
        verb = "would remove" if args.dry_run else "removed"
        print(
            f"{verb} {len(report.removals)} versions ({human(report.bytes)}) "
            f"in {len(report.repositories)} repositories in {report.seconds:.1f}s"
            + (
                f"; blob gc freed {report.gc['blobs']} blobs ({human(report.gc['bytes'])})"
                if report.gc
                else ""
            )
        )
    return 1 if report.errors else 0


@hookimpl
def artifactory_register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "cleanup",
        help="apply the cleanup policies attached to repositories, then blob gc",
        description="Remove the versions that the repositories' cleanup policies select (docs/cleanup.md).",
    )
    parser.add_argument("--data-dir", type=Path, help="data directory (default ./artifactory-data)")
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--repository", help="only this repository")
    parser.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
    parser.add_argument("--no-gc", action="store_true", help="skip blob gc afterwards")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.set_defaults(run=run_command)


__all__ = [
    "Policy",
    "PolicyError",
    "Removal",
    "Report",
    "attached",
    "delete_policy",
    "load_policies",
    "parse_policy",
    "run",
    "save_policy",
]
