"""What a proxy fetch may leave held after it ends, for tests that check none is: the process's
descriptors of node leases (SQLite), the node's lease files, and lease rows (PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from artifactory.db.models import ProxyLease


def leases_left(state, repo, paths) -> list[str]:
    """Every lease still held for `repo`: an owner's descriptor, a path whose node lease is locked
    (of `paths`), a lease row. Empty when every fetch let go of its lease."""
    proxy = state.engine.proxy
    left = [f"descriptor of {owner}" for owner in proxy._held]
    if state.db.node_leases is not None:
        left += [path for path in paths if state.db.node_leases.held(repo.id, path)]
    with state.db.read() as session:
        left += list(session.scalars(select(ProxyLease.path).where(ProxyLease.repository_id == repo.id)))
    return left
