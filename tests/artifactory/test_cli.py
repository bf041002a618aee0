"""The `artifactory` command's subcommands, run as a user would run them: as processes where the
process is the point (the entry points, a password on standard input, progress on standard error),
else in the test process through `run_cli` (the same argv, environment, output and exit status)."""

import json
import os
import subprocess
import sys
import time

import httpx

from artifactory.testing.cli import run_cli
from artifactory.testing.server import LiveServer


def cli(data_dir, *args):
    result = run_cli(*args, "--data-dir", str(data_dir))
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def cli_process(data_dir, *args):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
    return subprocess.run(
        [sys.executable, "-m", "artifactory", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def test_repo_and_user_commands_prepare_what_the_server_then_serves(tmp_path):
    data = tmp_path / "data"
    created = cli_process(data, "repo", "create", "files", "--format", "raw", "--write-policy", "allow_once")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout[created.stdout.index("{") :])["write_policy"] == "allow_once"
    assert (data / "admin.password").exists()
    assert cli(data, "repo", "create", "files", "--format", "raw").returncode == 1
    group = cli(data, "repo", "create", "all", "--format", "raw", "--type", "group", "--members", "files")
    assert group.returncode == 0, group.stderr
    assert cli(data, "repo", "delete", "files").returncode == 1  # used by the group
    user = cli(data, "user", "create", "ci", "--password", "ci-pass", "--roles", "admin")
    assert user.returncode == 0, user.stderr
    listed = cli(data, "repo", "list")
    assert "files\traw\thosted" in listed.stdout and "all\traw\tgroup" in listed.stdout

    live = LiveServer(data).start()
    try:
        response = httpx.put(f"{live.repo_url('files')}a.txt", content=b"a", auth=("ci", "ci-pass"))
        assert response.status_code == 201
        assert httpx.get(f"{live.repo_url('all')}a.txt").content == b"a"
    finally:
        live.stop()
    assert cli(data, "repo", "delete", "all").returncode == 0
    assert "all\t" not in cli(data, "repo", "list").stdout


def test_first_start_writes_a_private_admin_password_file_and_prints_its_path(tmp_path):
    data = tmp_path / "data"
    live = LiveServer(data, env={"ARTIFACTORY_ADMIN_PASSWORD": ""})
    live.start()
    try:
        password_file = data / "admin.password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        assert str(password_file.resolve()) in live.log()
        password = password_file.read_text().strip()
        assert httpx.get(f"{live.url}/api/v1/users", auth=("admin", password)).status_code == 200
    finally:
        live.stop()


def test_python_dash_m_and_console_script_are_the_same_program():
    module = subprocess.run(
        [sys.executable, "-m", "artifactory", "--version"], capture_output=True, text=True
    )
    script = subprocess.run(["artifactory", "--version"], capture_output=True, text=True)
    assert module.returncode == script.returncode == 0
    assert module.stdout == script.stdout


def test_serve_under_granian_with_two_workers(tmp_path):
    live = LiveServer(tmp_path / "data", server="granian", workers=2).start()
    try:
        name = live.create_repo("raw")
        data = os.urandom(300_000)
        with live.client() as client:
            assert client.put(f"/repository/{name}/g.bin", content=data).status_code == 201
            assert client.get(f"/repository/{name}/g.bin").content == data
            ranged = client.get(f"/repository/{name}/g.bin", headers={"Range": "bytes=10-19"})
            assert ranged.status_code == 206 and ranged.content == data[10:20]
    finally:
        live.stop()


def test_user_passwd_resets_a_lost_admin_password_from_stdin_on_a_running_server(tmp_path):
    data = tmp_path / "data"
    live = LiveServer(data).start()  # admin's password is the test default
    try:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
        reset = subprocess.run(
            [sys.executable, "-m", "artifactory", "user", "passwd", "admin", "--data-dir", str(data)],
            input="brand-new-secret\n",
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
        )
        assert reset.returncode == 0, reset.stderr
        assert "brand-new-secret" not in reset.stdout + reset.stderr
        again = cli(data, "user", "create", "admin", "--password", "x")
        assert again.returncode == 1 and "user passwd admin" in again.stderr
        time.sleep(0.5)  # the running server's credential cache (0.2 s in tests)
        assert httpx.get(f"{live.url}/api/v1/users", auth=("admin", "brand-new-secret")).status_code == 200
        assert httpx.get(f"{live.url}/api/v1/users", auth=("admin", "admin-test-password")).status_code == 401
        events = httpx.get(
            f"{live.url}/api/v1/audit", params={"actor": "cli"}, auth=("admin", "brand-new-secret")
        ).json()["items"]
        assert events[0]["action"] == "user.updated" and events[0]["details"]["username"] == "admin"
    finally:
        live.stop()
    assert cli(data, "user", "disable", "nobody").returncode == 1


def test_gc_reports_progress_on_stderr_a_summary_on_stdout_and_json_when_asked(tmp_path):
    data = tmp_path / "data"
    assert cli(data, "repo", "create", "files", "--format", "raw").returncode == 0
    plain = cli_process(data, "gc", "--grace", "0")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("gc removed 0 blobs")
    assert "gc: blobs" in plain.stderr
    machine = cli_process(data, "gc", "--grace", "0", "--dry-run", "--json")
    assert json.loads(machine.stdout.strip().splitlines()[-1])["dry_run"] is True
