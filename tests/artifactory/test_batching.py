"""The leader-and-followers primitive: every job runs once, in batches no larger than the limit,
and a failing batch never leaves a follower waiting."""

import threading
import time

import pytest

from artifactory.batching import Together


def test_jobs_of_many_threads_each_run_once_in_batches_within_the_limit():
    batches = []
    gate = threading.Event()

    def run_batch(jobs):
        gate.wait(5)  # the first batch holds until every thread has queued
        batches.append(list(jobs))

    together = Together(run_batch, limit=4)
    threads = [threading.Thread(target=together.run, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(together._pending) < 9 and time.monotonic() < deadline:  # all but the leader queued
        time.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert sorted(job for batch in batches for job in batch) == list(range(10))
    assert all(len(batch) <= 4 for batch in batches)
    assert 3 <= len(batches) <= 4  # ten jobs in batches of at most 4, the waiting ones together


def test_a_failing_batch_raises_to_its_leader_and_releases_its_followers():
    gate = threading.Event()
    calls = []

    def run_batch(jobs):
        calls.append(list(jobs))
        if len(calls) == 1:
            gate.wait(5)
            raise RuntimeError("the batch failed")

    together = Together(run_batch, limit=64)
    errors = []

    def lead():
        try:
            together.run("leader")
        except RuntimeError as exc:
            errors.append(exc)

    leader = threading.Thread(target=lead)
    leader.start()
    followers = [threading.Thread(target=together.run, args=(f"f{i}",)) for i in range(3)]
    for thread in followers:
        thread.start()
    gate.set()
    for thread in [leader, *followers]:
        thread.join(10)
        assert not thread.is_alive()
    assert len(errors) == 1
    assert sorted(job for batch in calls for job in batch) == ["f0", "f1", "f2", "leader"]


@pytest.mark.parametrize("limit", [1, 2])
def test_a_lone_caller_runs_at_once(limit):
    ran = []
    Together(ran.extend, limit).run("alone")
    assert ran == ["alone"]


def test_a_leader_chooses_its_batch_inside_around_and_a_failing_around_runs_nothing_and_hangs_nobody():
    """`around` is entered before the batch is chosen (what queues while the leader waits for it
    joins the batch); when entering it fails, the leader gets the error, the jobs waiting are
    not run, nobody is left waiting, and the next caller leads again."""
    batches, entered = [], threading.Event()
    gate, fail = threading.Event(), threading.Event()

    class Around:
        def __enter__(self):
            entered.set()
            gate.wait(5)
            if fail.is_set():
                raise OSError("no lock")

        def __exit__(self, *exc):
            return False

    together = Together(lambda jobs: batches.append(list(jobs)), limit=10, around=Around)
    errors = []

    def run(job):
        try:
            together.run(job)
        except OSError as exc:
            errors.append((job, exc))

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert entered.wait(5)
    rest = [threading.Thread(target=run, args=(i,)) for i in range(1, 5)]
    for thread in rest:
        thread.start()
    deadline = time.monotonic() + 10
    while len(together._pending) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    for thread in [first, *rest]:
        thread.join(10)
    assert batches == [[0, 1, 2, 3, 4]]  # one batch: chosen once `around` was entered

    fail.set()
    failing = [threading.Thread(target=run, args=(i,)) for i in range(5, 8)]
    for thread in failing:
        thread.start()
    for thread in failing:
        thread.join(10)
    assert not any(thread.is_alive() for thread in failing)
    assert errors and all(isinstance(exc, OSError) for _job, exc in errors)
    assert sum(len(b) for b in batches) == 5  # nothing more ran
    fail.clear()
    together.run(9)
    assert batches[-1] == [9]
