"""Test servers (`artifactory.testing.server`) end with the process that started them: a test run
killed by a timeout or kill -9 leaves no server holding a port, its workers included."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artifactory.testing.server import spawn

# Starts a server (from the main thread or from a thread that ends at once), says its port and
# process id, and waits to be killed.
CHILD = """
import sys, threading, time
from pathlib import Path
from artifactory.testing.server import LiveServer

server = LiveServer(Path(sys.argv[1]), workers=int(sys.argv[2]), server=sys.argv[4])
if sys.argv[3] == "thread":
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
else:
    server.start()
print(server.port, server.process.pid, flush=True)
time.sleep(600)
"""


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def group_alive(pgid: int) -> list[int]:
    """The processes of group `pgid` that still run (zombies left unreaped by init do not)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize(
    ("server", "workers", "started_in"),
    [("uvicorn", 1, "main"), ("uvicorn", 2, "main"), ("uvicorn", 1, "thread"), ("granian", 2, "main")],
)
def test_a_server_dies_with_the_process_that_started_it(
    tmp_path: Path, server: str, workers: int, started_in: str
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "data"), str(workers), started_in, server],
        stdout=subprocess.PIPE,
        text=True,
    )
    server_pid = 0
    try:
        assert child.stdout is not None
        port, server_pid = map(int, child.stdout.readline().split())
        time.sleep(0.5)  # a server started from a thread outlives that thread
        assert listening(port)
        assert len(group_alive(server_pid)) >= workers  # the supervisor and its workers
        child.kill()
        child.wait(timeout=10)
        deadline = time.monotonic() + 10
        while (listening(port) or group_alive(server_pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not listening(port)
        assert group_alive(server_pid) == []
    finally:
        child.kill()
        child.wait(timeout=10)
        if server_pid and group_alive(server_pid):
            os.killpg(server_pid, signal.SIGKILL)


def _spawn_and_report(queue: multiprocessing.Queue) -> None:
    process = spawn([sys.executable, "-c", "print('spawned')"], stdout=subprocess.PIPE)
    queue.put(process.communicate(timeout=30)[0])


def test_a_process_forked_after_a_spawn_can_spawn_too() -> None:
    """The spawning thread is per process: a forked child has the parent's executor, not its thread."""
    assert spawn([sys.executable, "-c", "pass"]).wait(timeout=30) == 0
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_spawn_and_report, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=30) == b"spawned\n"
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
