"""What the routes ask the engine for, in Maven terms.

- `metadata_document`: maven-metadata.xml of any repository. Hosted: computed from components and
  cached per repository revision (never stored, never taken from an upload). Proxy: the upstream's,
  cached for the TTL. Group: every member's document merged, cached by the members' digests, under
  the dependency-confusion guard (`guarded`): when a hosted repository anywhere in the group holds
  groupId:artifactId, no proxy's versions of it are merged in, just as no proxy serves its files.
- `listing`: a folder's entries; inside a guarded groupId:artifactId a group lists no proxy's cache.
- `fetch`: a file; a proxy checks each fetched file against the upstream's `.sha1` before caching it
  (`checksum_verdict`, called from MavenFormat.verify_fetched) under its `checksum_policy`.
- `apply_retention`: keep the newest N builds of a SNAPSHOT version.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from artifactory_formats.maven import metadata as md
from artifactory_formats.maven.coordinates import (
    Artifact,
    metadata_scope,
    try_artifact,
)
from artifactory_formats.maven.upload import InvalidUpload, read_checksum

from artifactory.plugin import (
    BadGateway,
    Content,
    Engine,
    Entry,
    Principal,
    Repo,
    StoredAsset,
)

log = logging.getLogger(__name__)
SYSTEM = Principal(username="system:maven", roles=frozenset({"admin"}))
MAX_UPSTREAM_METADATA = 16 * 1024 * 1024
PROXY_MEMO_SECONDS = 1.0
PROXY_MEMO_SIZE = 4096
GUARD_MEMO_SIZE = 8192
_holders: OrderedDict[tuple[int, int, str, str], bool] = OrderedDict()
_proxy_answers: OrderedDict[tuple[int, int, str], tuple[float, tuple[bytes, str] | None]] = OrderedDict()


# -- maven-metadata.xml --------------------------------------------------------------------------
async def metadata_document(
    eng: Engine,
    repo: Repo,
    path: str,
    principal: Principal,
    seen: frozenset[str] = frozenset(),
    cached_only: bool = False,
    guard: bool = False,
) -> tuple[bytes, str] | None:
    """(body, etag) of the maven-metadata.xml at `path` in `repo`, or None when there is none.

    `cached_only` keeps proxies from asking their upstream (a folder listing must not fetch).
    `guard`: an enclosing group has decided that its proxies may not speak for this artifact.
    """
    if repo.type == "hosted":
        body, etag = await eng.document(
            repo, "maven-metadata:" + path, lambda: _build_hosted(eng, repo, path)
        )
        return (body, etag) if body else None
    if repo.type == "proxy":
        return await _proxy_metadata(eng, repo, path, principal, cached_only, in_group=bool(seen))
    if not guard:
        scope = metadata_scope(path)
        held = None if scope is None else scope.snapshot[:2] if scope.snapshot else scope.artifact
        guard = held is not None and await guarded(eng, repo, *held)
    seen = seen | {repo.name}
    # Hosted (and nested groups') documents first, proxies' after: a plugin prefix that a hosted
    # member maps is never taken over by a proxy listed before it.
    own: list[tuple[bytes, str]] = []
    proxied: list[tuple[bytes, str]] = []
    for member in eng.group.members(repo, principal):
        if member.name in seen or (guard and member.type == "proxy"):
            continue  # a guarded name is not even asked of a proxy's upstream
        try:
            found = await metadata_document(eng, member, path, principal, seen, cached_only, guard)
        except BadGateway as exc:
            log.warning("group %s: member %s left out of %s: %s", repo.name, member.name, path, exc)
            continue
        if found is not None:
            (proxied if member.type == "proxy" else own).append(found)
    parts = own + proxied
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    key = "maven-merged:" + path + ":" + ",".join(etag for _, etag in parts)
    return await eng.document(repo, key, lambda: md.merge_bodies([body for body, _ in parts]))


def _leaves(eng: Engine, repo: Repo, seen: frozenset[str] = frozenset()) -> list[Repo]:
    """Every hosted and proxy repository inside a group, nested groups included, whoever asks: the
    guard must not depend on the caller, or someone who may not read the internal repository would
    be handed the public lookalike instead."""
    found: list[Repo] = []
    for name in repo.members:
        member = eng.repos.get(name)
        if member is None or member.name in seen:
            continue
        if member.type == "group":
            found.extend(_leaves(eng, member, seen | {repo.name, member.name}))
        else:
            found.append(member)
    return found


async def guarded(eng: Engine, group: Repo, group_id: str, artifact_id: str) -> bool:
    """Whether a hosted repository anywhere in `group` holds groupId:artifactId, so that no proxy
    of the group may speak for it (unless the group allows proxy shadowing): the rule the engine's
    group walk applies to files, applied to the documents this format merges itself."""
    if group.config.get("allow_proxy_shadowing", False):
        return False
    leaves = _leaves(eng, group)
    if not any(r.type == "proxy" for r in leaves):
        return False  # nothing to guard against: spare the queries
    for hosted in (r for r in leaves if r.type == "hosted"):
        # Keyed by the hosted revision: a deploy or a deletion there moves the key.
        key = (hosted.id, hosted.revision, group_id, artifact_id)
        held = _holders.get(key)
        if held is None:
            held = bool(await eng.components(hosted, name=artifact_id, namespace=group_id))
            _holders[key] = held
            if len(_holders) > GUARD_MEMO_SIZE:
                _holders.popitem(last=False)
        if held:
            return True
    return False


async def listing(eng: Engine, repo: Repo, prefix: str, principal: Principal) -> list[Entry]:
    """The entries under `prefix`. A group leaves its proxies out below a groupId:artifactId folder
    that a hosted member holds: their cached versions are ones the group would not serve."""
    if repo.type != "group" or not await _guarded_folder(eng, repo, prefix):
        return await eng.listing(repo, prefix, principal)
    return await _listing_without_proxies(eng, repo, prefix, principal, frozenset())


async def _guarded_folder(eng: Engine, group: Repo, prefix: str) -> bool:
    folders = prefix.rstrip("/").split("/") if prefix else []
    # g/a/ and anything below it; a folder can be read as g/a at several depths (a.b/c or a/b.c).
    for depth in range(1, len(folders)):
        if await guarded(eng, group, ".".join(folders[:depth]), folders[depth]):
            return True
    return False


async def _listing_without_proxies(
    eng: Engine, repo: Repo, prefix: str, principal: Principal, seen: frozenset[str]
) -> list[Entry]:
    names: dict[str, Entry] = {}
    for member in eng.group.members(repo, principal):
        if member.type == "proxy" or member.name in seen:
            continue
        if member.type == "group":
            entries = await _listing_without_proxies(eng, member, prefix, principal, seen | {repo.name})
        else:
            entries = await eng.listing(member, prefix, principal)
        for entry in entries:
            names.setdefault(entry.name, entry)
    return sorted(names.values(), key=lambda e: (not e.is_folder, e.name))


async def _proxy_metadata(
    eng: Engine, repo: Repo, path: str, principal: Principal, cached_only: bool, in_group: bool
) -> tuple[bytes, str] | None:
    """A proxy's cached (or freshly fetched) document. Inside a group merge the answer is reused for
    PROXY_MEMO_SECONDS, sparing the proxy's cache and negative-cache lookups on every request for a
    document that is itself only revalidated after the proxy's TTL."""
    key = (repo.id, repo.revision, path)
    memo = in_group and not cached_only
    if memo:
        hit = _proxy_answers.get(key)
        if hit is not None and time.monotonic() - hit[0] < PROXY_MEMO_SECONDS:
            return hit[1]
    content: Content | None
    if cached_only:
        content = await eng.db_call(eng.lookup, repo, path)
    else:
        content = await eng.get(repo, path, principal, stream=False)
    found = None
    if isinstance(content, StoredAsset):
        if content.size > MAX_UPSTREAM_METADATA:
            raise BadGateway(
                f"{path} from the upstream of {repo.name} is larger than {MAX_UPSTREAM_METADATA} bytes, "
                "too large for a maven-metadata.xml"
            )
        found = (await eng.read_bytes(content.sha256, MAX_UPSTREAM_METADATA), content.sha256)
    if memo:
        _proxy_answers[key] = (time.monotonic(), found)
        _proxy_answers.move_to_end(key)
        if len(_proxy_answers) > PROXY_MEMO_SIZE:
            _proxy_answers.popitem(last=False)
    return found


async def _build_hosted(eng: Engine, repo: Repo, path: str) -> bytes:
    scope = metadata_scope(path)
    if scope is None:
        return b""
    doc = md.Metadata()
    if scope.snapshot is not None:
        group_id, artifact_id, version = scope.snapshot
        files = [
            (artifact, asset.updated_at)
            for component in await eng.components(repo, name=artifact_id, namespace=group_id, version=version)
            for asset in component.assets
            if (artifact := try_artifact(asset.path)) is not None and artifact.base_version == version
        ]
        if files:
            doc.group_id, doc.artifact_id, doc.version = group_id, artifact_id, version
            md.snapshot_of(doc, files)
    if doc.empty() and scope.artifact is not None:
        group_id, artifact_id = scope.artifact
        components = [c for c in await eng.components(repo, name=artifact_id, namespace=group_id) if c.assets]
        if components:
            doc.group_id, doc.artifact_id = group_id, artifact_id
            newest = max(asset.updated_at for c in components for asset in c.assets)
            md.versions_of(doc, [c.version for c in components], md.stamp(newest))
    plugins: dict[str, md.Plugin] = {}
    for component in await eng.components(repo, namespace=scope.group_level):
        for asset in component.assets:
            plugin = asset.attributes.get("maven", {}).get("plugin")
            if plugin and plugin.get("prefix") and component.name not in plugins:
                plugins[component.name] = md.Plugin(plugin["prefix"], component.name, plugin.get("name", ""))
    doc.plugins = list({p.prefix: p for p in plugins.values()}.values())
    return b"" if doc.empty() else md.render(doc)


# -- files -----------------------------------------------------------------------------------------
def _checksum_policy(repo: Repo) -> str:
    return str(repo.config.get("checksum_policy", "strict"))


async def fetch(eng: Engine, repo: Repo, path: str, principal: Principal, stream: bool) -> Content | None:
    """A file of `repo`. A proxy checks what it fetches against the upstream's .sha1 before caching
    it (MavenFormat.verify_fetched); under `strict` the whole file is checked before the client gets
    any of it, so a mismatch is a clean 502 rather than a cut-off download."""
    if repo.type == "hosted":
        return await eng.get(repo, path, principal, stream=stream)
    checking = repo.type == "group" or _checksum_policy(repo) == "strict"
    return await eng.get(repo, path, principal, stream=stream and not checking)


def checksum_verdict(repo: Repo, path: str, received_sha1: str, published: bytes | None) -> str | None:
    """None when a fetched file may be cached; else why not. A missing or unreadable upstream
    checksum is not a failure; a mismatch is (under `warn` it is only logged)."""
    if published is None:
        return None
    try:
        expected = read_checksum(published, "sha1")
    except (InvalidUpload, ValueError):
        log.warning("proxy %s: upstream %s.sha1 is not a SHA-1 checksum", repo.name, path)
        return None
    if expected == received_sha1:
        return None
    message = (
        f"{path} does not match the upstream's SHA-1 checksum "
        f"(published {expected}, received {received_sha1})"
    )
    if _checksum_policy(repo) == "warn":
        log.warning("proxy %s: %s; cached anyway (checksum_policy warn)", repo.name, message)
        return None
    log.error("proxy %s: %s; not cached (checksum_policy strict)", repo.name, message)
    return message


# -- snapshot retention ----------------------------------------------------------------------------
async def apply_retention(eng: Engine, repo: Repo, artifact: Artifact) -> list[str]:
    """Delete every build of artifact's SNAPSHOT version but the newest `snapshot_retention`."""
    keep = int(repo.config.get("snapshot_retention") or 0)
    if keep <= 0 or not artifact.timestamped:
        return []
    builds: dict[tuple[int, str], list[str]] = {}
    components = await eng.components(
        repo, name=artifact.artifact_id, namespace=artifact.group_id, version=artifact.base_version
    )
    for component in components:
        for asset in component.assets:
            found = try_artifact(asset.path)
            if found is not None and found.timestamped:
                builds.setdefault((found.build_number, found.timestamp), []).append(asset.path)
    removed: list[str] = []
    for build in sorted(builds)[:-keep]:
        for path in builds[build]:
            if await eng.delete(repo, path, SYSTEM) is not None:
                removed.append(path)
    return removed
