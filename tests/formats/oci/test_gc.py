"""`artifactory gc` (or `oci-gc` then `gc`): untagged manifests and unreferenced blobs are reclaimed
after the grace period; tagged images, their referrers and young uploads stay, and whatever a proxy
cached (by tag or by digest) stays with everything it references."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from artifactory.testing.cli import run_cli
from artifactory.testing.stored import stored
from tests.formats.oci.images import OCI_INDEX, OCI_MANIFEST, digest, image, index, push, push_blob
from tests.formats.oci.stub import StubRegistry


def cli(server, *args):
    """The command's JSON summary, run in this process (as a subprocess would run it, without its imports)."""
    result = run_cli(*args, "--data-dir", str(server.data_dir), database_url=server.database_url)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def cli_process(server, *args):
    """The command as an operator runs it, in a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
    if server.database_url:
        env["ARTIFACTORY_DATABASE_URL"] = server.database_url
    result = subprocess.run(
        [sys.executable, "-m", "artifactory", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_oci_gc_reclaims_untagged_manifests_and_orphan_blobs_only(server, admin, anon):
    repo = server.create_repo("oci")
    kept, untagged = image("gc-kept"), image("gc-untagged")
    signature = image("gc-signature", subject=kept.manifest, artifact_type="application/x.sig")
    push(admin, f"{repo}/app", "v1", kept)
    push(admin, f"{repo}/app", untagged.digest, untagged)
    push(admin, f"{repo}/app", signature.digest, signature)
    orphan = b"an orphan blob"
    push_blob(admin, f"{repo}/app", orphan)
    group = server.create_repo("oci", "group", members=[repo])  # holds nothing of its own to collect

    dry = cli(server, "oci-gc", "--grace", "0", "--dry-run")
    assert dry["dry_run"] and dry["manifests"] == 1
    assert anon.get(f"/v2/{repo}/app/manifests/{untagged.digest}").status_code == 200

    report = cli_process(server, "oci-gc", "--grace", "0")  # the command as an operator runs it
    assert report["manifests"] == 1
    assert f"{repo}/app/blobs/{digest(orphan)}" in report["deleted"]
    assert not [path for path in report["deleted"] if path.startswith(f"{group}/")]
    assert anon.get(f"/v2/{group}/app/manifests/v1").status_code == 200
    assert anon.get(f"/v2/{repo}/app/manifests/{untagged.digest}").status_code == 404
    assert anon.get(f"/v2/{repo}/app/blobs/{digest(orphan)}").status_code == 404
    assert anon.get(f"/v2/{repo}/app/manifests/v1").status_code == 200
    assert anon.get(f"/v2/{repo}/app/manifests/{signature.digest}").status_code == 200
    for blob in kept.blobs:
        assert anon.get(f"/v2/{repo}/app/blobs/{digest(blob)}").status_code == 200

    cli(server, "gc", "--json", "--grace", "0")
    assert not stored(server, orphan)
    assert stored(server, kept.config)


def test_oci_gc_keeps_everything_younger_than_the_grace_period(server, admin, anon):
    repo = server.create_repo("oci")
    untagged = image("gc-young")
    push(admin, f"{repo}/app", untagged.digest, untagged)
    report = cli(server, "oci-gc")
    assert not [d for d in report["deleted"] if d.startswith(f"{repo}/")]
    assert anon.get(f"/v2/{repo}/app/manifests/{untagged.digest}").status_code == 200


def test_plain_gc_reclaims_untagged_manifests_and_their_blobs_in_one_run(server, admin, anon):
    repo = server.create_repo("oci")
    kept, untagged = image("gc-plain-kept"), image("gc-plain-untagged")
    push(admin, f"{repo}/app", "v1", kept)
    push(admin, f"{repo}/app", untagged.digest, untagged)
    report = cli(server, "gc", "--json", "--grace", "0")
    oci = next(r for r in report["formats"] if r["format"] == "oci")
    assert f"{repo}/app/manifests/{untagged.digest}" in oci["deleted"]
    assert anon.get(f"/v2/{repo}/app/manifests/{untagged.digest}").status_code == 404
    assert anon.get(f"/v2/{repo}/app/manifests/v1").status_code == 200
    assert not stored(server, untagged.manifest)
    assert stored(server, kept.manifest)


def test_index_children_and_referrers_with_their_blobs_survive_gc(server, admin, anon):
    repo = server.create_repo("oci")
    name = f"{repo}/multi"
    arm, amd = image("gc-arm"), image("gc-amd", layers=2)
    for child in (arm, amd):
        assert push(admin, name, child.digest, child).status_code == 201
    multi = index([arm.manifest, amd.manifest])
    put = admin.put(f"/v2/{name}/manifests/v1", content=multi, headers={"Content-Type": OCI_INDEX})
    assert put.status_code == 201
    sbom = image("gc-sbom", subject=multi, artifact_type="application/x.sbom")
    assert push(admin, name, sbom.digest, sbom).status_code == 201
    report = cli(server, "gc", "--json", "--grace", "0")
    oci = next(r for r in report["formats"] if r["format"] == "oci")
    assert not [d for d in oci["deleted"] if d.startswith(f"{repo}/")]
    for img in (arm, amd, sbom):
        assert anon.get(f"/v2/{name}/manifests/{img.digest}").content == img.manifest
        for blob in img.blobs:
            assert anon.get(f"/v2/{name}/blobs/{digest(blob)}").content == blob


@pytest.fixture
def stub():
    registry = StubRegistry().start()
    try:
        yield registry
    finally:
        registry.stop()


def serve(stub, image_name, img, ref=None):
    """Let the stub upstream answer an image's manifest (by `ref`, else its digest) and blobs."""
    stub.answers[f"/v2/{image_name}/manifests/{ref or img.digest}"] = (OCI_MANIFEST, img.manifest)
    for blob in img.blobs:
        stub.answers[f"/v2/{image_name}/blobs/{digest(blob)}"] = ("application/octet-stream", blob)


def test_what_a_proxy_cached_survives_gc_and_pulls_without_the_upstream(server, anon, stub):
    """By tag (an image, an index and its children), by digest (a referrer), and tag lists."""
    app, arm, amd = image("gc-proxy-app", layers=2), image("gc-proxy-arm"), image("gc-proxy-amd")
    multi = index([arm.manifest, amd.manifest])
    signature = image("gc-proxy-sig", subject=app.manifest, artifact_type="application/x.sig")
    serve(stub, "app", app, "v1")
    serve(stub, "app", signature)
    stub.answers["/v2/multi/manifests/v1"] = (OCI_INDEX, multi)
    serve(stub, "multi", arm)
    serve(stub, "multi", amd)
    for image_name in ("app", "blobs"):  # an image named like a folder of the layout, too
        stub.answers[f"/v2/{image_name}/tags/list"] = (
            "application/json",
            json.dumps({"name": image_name, "tags": ["v1"]}).encode(),
        )
    proxy = server.create_repo("oci", "proxy", url=stub.url, metadata_ttl_seconds=3600)

    def pull():
        for image_name in ("app", "blobs"):  # the engine's cached copy of each tag list stays too
            assert anon.get(f"/v2/{proxy}/{image_name}/tags/list").json()["tags"] == ["v1"]
        expected = {
            "app/manifests/v1": app.manifest,
            f"app/manifests/{signature.digest}": signature.manifest,
            "multi/manifests/v1": multi,
        }
        for image_name, img in (("app", app), ("app", signature), ("multi", arm), ("multi", amd)):
            if img is not app:  # pulled by tag only
                expected[f"{image_name}/manifests/{img.digest}"] = img.manifest
            for blob in img.blobs:
                expected[f"{image_name}/blobs/{digest(blob)}"] = blob
        for path, body in expected.items():
            response = anon.get(f"/v2/{proxy}/{path}")
            assert response.status_code == 200 and response.content == body, path
            assert anon.head(f"/v2/{proxy}/{path}").status_code == 200  # cached before gc runs

    pull()
    report = cli(server, "gc", "--json", "--grace", "0")
    oci = next(r for r in report["formats"] if r["format"] == "oci")
    assert not [d for d in oci["deleted"] if d.startswith(f"{proxy}/")]
    stub.stop()
    pull()


def test_a_proxy_still_drops_blobs_no_cached_manifest_references(server, anon, stub):
    img = image("gc-proxy-kept")
    stray = b"a blob fetched on its own"
    serve(stub, "app", img, "v1")
    stub.answers[f"/v2/app/blobs/{digest(stray)}"] = ("application/octet-stream", stray)
    proxy = server.create_repo("oci", "proxy", url=stub.url, metadata_ttl_seconds=3600)
    assert anon.get(f"/v2/{proxy}/app/manifests/v1").status_code == 200
    for blob in (*img.blobs, stray):
        assert anon.head(f"/v2/{proxy}/app/blobs/{digest(blob)}").status_code == 200
    report = cli(server, "oci-gc", "--grace", "0")
    assert [d for d in report["deleted"] if d.startswith(f"{proxy}/")] == [
        f"{proxy}/app/blobs/{digest(stray)}"
    ]
    stub.stop()
    for blob in img.blobs:
        assert anon.get(f"/v2/{proxy}/app/blobs/{digest(blob)}").content == blob
    assert httpx.get(f"{server.url}/v2/{proxy}/app/blobs/{digest(stray)}").status_code in (404, 502)
