"""`artifactory gc` (or `oci-gc` then `gc`): untagged manifests and unreferenced blobs are reclaimed
after the grace period; tagged images, their referrers and young uploads stay."""

import hashlib
import json
import os
import subprocess
import sys

from tests.formats.oci.images import digest, image, push, push_blob


def cli(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
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

    dry = cli(server, "oci-gc", "--grace", "0", "--dry-run")
    assert dry["dry_run"] and dry["manifests"] == 1
    assert anon.get(f"/v2/{repo}/app/manifests/{untagged.digest}").status_code == 200

    report = cli(server, "oci-gc", "--grace", "0")
    assert report["manifests"] == 1
    assert f"{repo}/app/blobs/{digest(orphan)}" in report["deleted"]
    assert anon.get(f"/v2/{repo}/app/manifests/{untagged.digest}").status_code == 404
    assert anon.get(f"/v2/{repo}/app/blobs/{digest(orphan)}").status_code == 404
    assert anon.get(f"/v2/{repo}/app/manifests/v1").status_code == 200
    assert anon.get(f"/v2/{repo}/app/manifests/{signature.digest}").status_code == 200
    for blob in kept.blobs:
        assert anon.get(f"/v2/{repo}/app/blobs/{digest(blob)}").status_code == 200

    cli(server, "gc", "--grace", "0")
    objects = server.data_dir / "blobs" / "objects"
    assert not list(objects.rglob(hashlib.sha256(orphan).hexdigest()))
    assert list(objects.rglob(hashlib.sha256(kept.config).hexdigest()))


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
    report = cli(server, "gc", "--grace", "0")
    oci = next(r for r in report["formats"] if r["format"] == "oci")
    assert f"{repo}/app/manifests/{untagged.digest}" in oci["deleted"]
    assert anon.get(f"/v2/{repo}/app/manifests/{untagged.digest}").status_code == 404
    assert anon.get(f"/v2/{repo}/app/manifests/v1").status_code == 200
    objects = server.data_dir / "blobs" / "objects"
    assert not list(objects.rglob(hashlib.sha256(untagged.manifest).hexdigest()))
    assert list(objects.rglob(hashlib.sha256(kept.manifest).hexdigest()))
