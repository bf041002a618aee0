"""End to end with the real skopeo against a server with two worker processes: copy to and from the
registry (docker token flow with credentials), inspect, list-tags, delete; and chunked uploads whose
chunks reach different processes."""

import hashlib
import json
import shutil
import subprocess
import tempfile
import time

import httpx
import pytest

from artifactory.testing.server import ADMIN_PASSWORD, LiveServer
from tests.formats.oci.images import digest, image, write_layout

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("oci2") / "data", workers=2).start()
    try:
        yield live
    finally:
        live.stop()


def skopeo(*args, check=True):
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def host(server):
    return server.url.removeprefix("http://")


def test_skopeo_copies_in_and_out_inspects_lists_and_deletes(two_workers, tmp_path):
    repo = two_workers.create_repo("oci")
    img = image("skopeo", layers=3)
    write_layout(tmp_path / "in", "v1", img)
    ref = f"docker://{host(two_workers)}/{repo}/team/app"
    creds = f"admin:{ADMIN_PASSWORD}"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{tmp_path / 'in'}:v1", f"{ref}:v1")
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{tmp_path / 'in'}:v1", f"{ref}:v2")

    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"{ref}:v1").stdout)
    assert inspected["Digest"] == img.digest
    assert inspected["Layers"] == [digest(layer) for layer in img.layers]
    assert inspected["Labels"] == {"seed": "skopeo"}

    tags = json.loads(skopeo("list-tags", "--tls-verify=false", ref).stdout)["Tags"]
    assert sorted(tags) == ["v1", "v2"]

    skopeo("copy", "--src-tls-verify=false", f"{ref}:v1", f"oci:{tmp_path / 'out'}:v1")
    out_index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert out_index["manifests"][0]["digest"] == img.digest
    for blob in (*img.blobs, img.manifest):
        stored = tmp_path / "out" / "blobs" / "sha256" / hashlib.sha256(blob).hexdigest()
        assert stored.read_bytes() == blob

    skopeo("delete", "--tls-verify=false", "--creds", creds, f"{ref}:v2")
    # The other worker sees a deletion within a tenth of a second (docs/configuration.md).
    time.sleep(0.2)
    # skopeo deletes by digest: v1, the same manifest, goes too.
    assert skopeo("inspect", "--tls-verify=false", f"{ref}:v1", check=False).returncode != 0
    assert "manifest unknown" in skopeo("inspect", "--tls-verify=false", f"{ref}:v2", check=False).stderr


def test_skopeo_without_credentials_cannot_push(two_workers, tmp_path):
    repo = two_workers.create_repo("oci")
    write_layout(tmp_path / "in", "v1", image("nocreds"))
    result = skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'in'}:v1",
        f"docker://{host(two_workers)}/{repo}/app:v1",
        check=False,
    )
    assert result.returncode != 0
    assert "unauthorized" in result.stderr.lower() or "authentication" in result.stderr.lower()


def test_chunks_of_one_upload_may_reach_different_processes(two_workers):
    repo = two_workers.create_repo("oci")
    data = bytes(range(256)) * 400
    chunk = 4096
    auth = ("admin", ADMIN_PASSWORD)
    location = httpx.post(f"{two_workers.url}/v2/{repo}/app/blobs/uploads/", auth=auth).headers["location"]
    for start in range(0, len(data), chunk):
        part = data[start : start + chunk]
        # A new connection each time, so the kernel spreads the requests over both workers.
        response = httpx.patch(
            location, content=part, auth=auth, headers={"Content-Range": f"{start}-{start + len(part) - 1}"}
        )
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{start + len(part) - 1}"
        status = httpx.get(location, auth=auth)
        assert status.headers["range"] == f"0-{start + len(part) - 1}"
    done = httpx.put(location, params={"digest": digest(data)}, auth=auth)
    assert done.status_code == 201
    assert httpx.get(f"{two_workers.url}/v2/{repo}/app/blobs/{digest(data)}").content == data


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_podman_logs_in_pulls_and_pushes_as_root(two_workers, tmp_path):
    repo = two_workers.create_repo("oci")
    img = image("podman")
    write_layout(tmp_path / "in", "v1", img)
    ref = f"{host(two_workers)}/{repo}/app"
    skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", f"admin:{ADMIN_PASSWORD}",
        f"oci:{tmp_path / 'in'}:v1", f"docker://{ref}:v1",
    )  # fmt: skip
    runroot = tempfile.mkdtemp(prefix="pm")  # podman wants a short runroot path
    base = [
        "podman", "--storage-driver", "vfs", "--root", str(tmp_path / "root"), "--runroot", runroot,
    ]  # fmt: skip
    auth = ["--authfile", str(tmp_path / "auth.json")]

    def podman(*args):
        result = subprocess.run([*base, *args], capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr
        return result.stdout

    try:
        _podman_flow(podman, auth, ref, two_workers)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def _podman_flow(podman, auth, ref, two_workers):
    podman("login", *auth, "--tls-verify=false", "-u", "admin", "-p", ADMIN_PASSWORD, host(two_workers))
    podman("pull", *auth, "--tls-verify=false", f"{ref}:v1")
    podman("tag", f"{ref}:v1", f"{ref}:v2")
    podman("push", *auth, "--tls-verify=false", f"{ref}:v2")
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{ref}").stdout)["Tags"]
    assert sorted(tags) == ["v1", "v2"]
