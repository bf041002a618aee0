"""A real server in a subprocess on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ADMIN_PASSWORD = "admin-test-password"


@functools.cache
def client_tls() -> ssl.SSLContext:
    """The TLS context test clients share, as httpx would build it. httpx builds one per client unless
    handed one, loading the CA bundle each time (~40 ms of CPU): a server start polling its status,
    each `client()`, and a test opening a connection per request paid that every time."""
    return httpx.create_ssl_context()


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The thread every server is forked from. Linux sends the parent-death signal when the thread that
# forked a process ends, not its process: a server started from a short-lived thread (a fixture run
# by a thread pool, a test's helper thread) would be stopped with it. This one lives as long as
# the process (its executor's idle thread waits for work until the interpreter exits). One per
# process id: a child forked from a test process has the executor but not its thread.
_SPAWNER: tuple[int, ThreadPoolExecutor] | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> ThreadPoolExecutor:
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None or _SPAWNER[0] != os.getpid():
            _SPAWNER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="artifactory-testing-spawn"))
        return _SPAWNER[1]


def _until_parent_dies(sig: int) -> Callable[[], None] | None:
    """A `preexec_fn` that has the child sent `sig` when this process dies however it ends (kill -9,
    a test timeout); None where there is no such thing (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(sig))
        if os.getppid() != parent:  # the parent died before the signal was asked for
            os.kill(os.getpid(), sig)

    return preexec


def spawn(command: list[str], sig: int = signal.SIGKILL, **options: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(command, **options)` for a process that must not outlive this one: it is
    sent `sig` when this process dies. A server whose own children serve too (uvicorn or granian
    with several workers) is sent SIGTERM, on which it stops them before it exits."""
    preexec = _until_parent_dies(sig)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, preexec_fn=preexec, **options)

    return _spawner().submit(start).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str = "",
        workers: int = 1,
        server: str = "uvicorn",
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self.workers = workers
        self.server = server
        self.extra_env = env or {}
        self.extra_args = list(extra_args or [])
        self.verify: ssl.SSLContext = client_tls()
        self.scheme = "http"
        if tls is not None:
            certfile, keyfile = tls
            self.extra_args += ["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)]
            self.verify = ssl.create_default_context(cafile=str(certfile))
            self.scheme = "https"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def repo_url(self, name: str) -> str:
        return f"{self.url}/repository/{name}/"

    def start(self, timeout: float = 30.0) -> LiveServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
        env.update(
            {
                "ARTIFACTORY_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "ARTIFACTORY_LOG_LEVEL": "warning",
                "ARTIFACTORY_CONFIG_CACHE_SECONDS": "0.2",
            }
        )
        if self.database_url:
            env["ARTIFACTORY_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        command = [
            sys.executable,
            "-m",
            "artifactory",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--server",
            self.server,
            *self.extra_args,
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        # SIGTERM, not SIGKILL: a server with several workers stops them (they are its children,
        # not this process's) and closes its port.
        self.process = spawn(
            command, signal.SIGTERM, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/status", timeout=1.0, verify=self.verify).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        sig = signal.SIGKILL if kill else signal.SIGTERM
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()

    # -- clients -----------------------------------------------------------------------------
    def client(self, auth: tuple[str, str] | None = ("admin", ADMIN_PASSWORD), **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=auth, timeout=60.0, verify=self.verify, **kwargs)

    def create_repo(self, fmt: str, kind: str = "hosted", name: str | None = None, **config: Any) -> str:
        name = name or f"{fmt}-{kind}-{uuid.uuid4().hex[:8]}"
        with self.client() as admin:
            response = admin.post(
                "/api/v1/repositories", json={"name": name, "format": fmt, "type": kind, **config}
            )
        if response.status_code != 201:
            raise AssertionError(f"creating {name}: {response.status_code} {response.text}")
        return name

    def create_user(self, roles: list[str], password: str = "user-password") -> tuple[str, str]:
        username = f"user-{uuid.uuid4().hex[:8]}"
        with self.client() as admin:
            response = admin.post(
                "/api/v1/users", json={"username": username, "password": password, "roles": roles}
            )
        if response.status_code != 201:
            raise AssertionError(response.text)
        return username, password
