"""`artifactory gc` online, on both metadata backends."""

import hashlib
import json
import os
import subprocess
import sys


def run_gc(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
    if server.database_url:
        env["ARTIFACTORY_DATABASE_URL"] = server.database_url
    result = subprocess.run(
        [sys.executable, "-m", "artifactory", "gc", "--data-dir", str(server.data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def blob_file(server, data):
    digest = hashlib.sha256(data).hexdigest()
    return server.data_dir / "blobs" / "objects" / "sha256" / digest[:2] / digest[2:4] / digest


def test_gc_removes_only_unreferenced_blobs_past_the_grace_while_serving(any_server):
    name = any_server.create_repo("raw")
    kept, dropped = os.urandom(1000), os.urandom(1000)
    with any_server.client() as admin:
        admin.put(f"/repository/{name}/kept.bin", content=kept)
        admin.put(f"/repository/{name}/dropped.bin", content=dropped)
        assert admin.delete(f"/repository/{name}/dropped.bin").status_code == 204

        within_grace = run_gc(any_server, "--grace", "3600")
        assert blob_file(any_server, dropped).exists()
        assert within_grace["dry_run"] is False

        dry = run_gc(any_server, "--grace", "0", "--dry-run")
        assert dry["blobs"] >= 1 and blob_file(any_server, dropped).exists()

        report = run_gc(any_server, "--grace", "0")
        assert report["blobs"] >= 1
        assert not blob_file(any_server, dropped).exists()
        assert blob_file(any_server, kept).exists()
        assert admin.get(f"/repository/{name}/kept.bin").content == kept

        again = run_gc(any_server, "--grace", "0")
        assert again["blobs"] == 0

        # The collected content can be uploaded again and is served.
        assert admin.put(f"/repository/{name}/again.bin", content=dropped).status_code == 201
        assert admin.get(f"/repository/{name}/again.bin").content == dropped
