"""The scheduled cleanup's lease, in process on SQLite and PostgreSQL: the node that runs cleanup
keeps the lease for the whole run, even when a renewal fails on the way (another node would
otherwise take the lease and run cleanup a second time, at once)."""

from __future__ import annotations

import asyncio
import time

from artifactory import cleanup
from artifactory.db.models import Setting


def test_a_renewal_that_fails_once_does_not_end_the_runs_lease(state, monkeypatch):
    monkeypatch.setattr(cleanup, "LEASE_SECONDS", 0.3)  # renewed every 0.1 s
    real_renew, renewals = cleanup.renew, []

    def flaky_renew(db, owner):
        renewals.append(owner)
        if len(renewals) == 1:
            raise RuntimeError("the database went away for a moment")
        return real_renew(db, owner)

    held: list[bool] = []

    async def slow_run(state_, repository=None, dry_run=False, policies=None, progress=None):
        for _ in range(8):  # 0.8 s: well past the lease's first expiry
            await asyncio.sleep(0.1)
            with state.db.read() as session:
                lease_until = float(session.get(Setting, cleanup.SCHEDULE_KEY).value["lease_until"])
            held.append(lease_until > time.time())
        return cleanup.Report(dry_run=False)

    monkeypatch.setattr(cleanup, "renew", flaky_renew)
    monkeypatch.setattr(cleanup, "run", slow_run)
    report = asyncio.run(cleanup.scheduled_run(state, "this-node", 3600))
    assert report is not None
    assert len(renewals) >= 3 and all(held), (renewals, held)
    with state.db.read() as session:  # handed back at the end, the next run an interval away
        value = session.get(Setting, cleanup.SCHEDULE_KEY).value
    assert value["owner"] == "" and value["next_run"] > time.time() + 3000
