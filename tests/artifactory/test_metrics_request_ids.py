"""Request ids made without uuid4: well-formed, never repeated in a process, different per process."""

from __future__ import annotations

import multiprocessing
import re

from artifactory.metrics import request_id


def test_a_sane_client_id_is_kept_and_any_other_is_replaced_by_32_hex_digits():
    assert request_id([(b"host", b"x"), (b"x-request-id", b"trace-123")]) == "trace-123"
    for headers in ([], [(b"x-request-id", b"bad id\twith junk")], [(b"x-request-id", b"a" * 65)]):
        assert re.fullmatch(r"[0-9a-f]{32}", request_id(headers))


def test_made_ids_are_never_repeated_within_a_process():
    made = [request_id([]) for _ in range(10_000)]
    assert len(set(made)) == len(made)


def _child_id(queue: multiprocessing.Queue) -> None:
    queue.put(request_id([]))


def test_a_forked_worker_draws_its_own_prefix():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_id, args=(queue,))
    child.start()
    theirs = queue.get(timeout=30)
    child.join(timeout=30)
    ours = request_id([])
    assert theirs[:16] != ours[:16]
