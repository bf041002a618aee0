"""`python -m artifactory ARGS` run inside the test process, for tests of what a command does (which
versions a cleanup removes, what an import refuses) rather than of how it is started: a subprocess
pays ~1.5 CPU-seconds of imports before its first line of work, this pays nothing.

The command sees the environment a subprocess started by the tests would: no ARTIFACTORY_* variable
of the test process, only `database_url` as ARTIFACTORY_DATABASE_URL. Standard input, output and error
are bytes, as `subprocess.run(..., capture_output=True)` hands them back, and os.environ, sys.std*
and the working directory are restored afterwards. Keep a few tests on the real subprocess so that
the wiring (console script, exit codes, a terminal) stays covered.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def _environment(database_url: str) -> Iterator[None]:
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("ARTIFACTORY_")]:
        del os.environ[key]
    if database_url:
        os.environ["ARTIFACTORY_DATABASE_URL"] = database_url
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _text(raw: io.BytesIO) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", write_through=True)


def run_cli(
    *args: str, database_url: str = "", stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the `artifactory` command line with `args` here; its exit status, output and error."""
    from artifactory.cli import main

    threads = set(threading.enumerate())
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    cwd = os.getcwd()
    with _environment(database_url):
        streams = _text(io.BytesIO(stdin or b"")), _text(out), _text(err)
        sys.stdin, sys.stdout, sys.stderr = streams
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse errors, --help, --version
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
            for stream in streams:
                stream.detach()  # not closed with the wrapper: the bytes are read below
            os.chdir(cwd)
    for thread in set(threading.enumerate()) - threads:
        if not thread.daemon:  # e.g. AnyIO's worker threads, told to stop as the event loop closed
            thread.join(timeout=5)
    left = [t for t in set(threading.enumerate()) - threads if t.is_alive() and not t.daemon]
    if left:
        raise AssertionError(f"`artifactory {' '.join(args)}` left threads running: {left}")
    return subprocess.CompletedProcess(["artifactory", *args], status, out.getvalue(), err.getvalue())
