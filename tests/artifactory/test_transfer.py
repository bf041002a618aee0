"""`artifactory export`, `import` and `backup` on data published through a live server by each
format's own protocol, then served again. The commands run in the test process (`run_cli`: the same
argv, environment and exit status, without a subprocess's imports); streaming through a pipe, the
terminal's progress bar, a backup taken while uploads go on and a refused backup run them as an
operator does, as processes of their own."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from artifactory.testing.cli import run_cli
from artifactory.testing.server import LiveServer
from tests.formats.maven.support import jar_bytes, pom_xml
from tests.formats.npm.helpers import escaped, publish_document, tarball
from tests.formats.oci.images import OCI_MANIFEST, digest, image, push
from tests.formats.pypi.dists import wheel_bytes, wheel_name

FORMATS = ("raw", "pypi", "npm", "maven", "oci")


def cli(data_dir: Path, *args: str, database_url: str = "", stdin: bytes | None = None):
    return run_cli(*args, "--data-dir", str(data_dir), database_url=database_url, stdin=stdin)


def cli_process(data_dir: Path, *args: str, database_url: str = "", stdin: bytes | None = None):
    """The command as an operator runs it, in a process of its own."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
    if database_url:
        environment["ARTIFACTORY_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "artifactory", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        timeout=180,
        env=environment,
        input=stdin,
    )


def summary(result) -> dict:
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


# -- what each format publishes, and how a client reads it back --------------------------------
Check = Callable[[httpx.Client, str], None]


def publish_raw(client: httpx.Client, repo: str) -> Check:
    files = {"docs/read me.txt": b"hello\n", "bin/tool.bin": os.urandom(200_000)}
    for path, data in files.items():
        assert client.put(f"/repository/{repo}/{path}", content=data).status_code == 201

    def check(reader: httpx.Client, name: str) -> None:
        for path, data in files.items():
            response = reader.get(f"/repository/{name}/{path}")
            assert response.status_code == 200 and response.content == data

    return check


def publish_pypi(client: httpx.Client, repo: str) -> Check:
    data = wheel_bytes("moved-pkg", "1.2.0")
    filename = wheel_name("moved-pkg", "1.2.0")
    response = client.post(
        f"/repository/{repo}/",
        data={
            ":action": "file_upload",
            "protocol_version": "1",
            "name": "moved-pkg",
            "version": "1.2.0",
            "sha256_digest": hashlib.sha256(data).hexdigest(),
        },
        files={"content": (filename, data, "application/octet-stream")},
    )
    assert response.status_code == 200, response.text

    def check(reader: httpx.Client, name: str) -> None:
        page = reader.get(
            f"/repository/{name}/simple/moved-pkg/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        assert page.status_code == 200
        [entry] = page.json()["files"]
        assert entry["filename"] == filename and entry["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert reader.get(f"/repository/{name}/packages/moved-pkg/{filename}").content == data
        metadata = reader.get(f"/repository/{name}/packages/moved-pkg/{filename}.metadata")
        assert metadata.status_code == 200 and b"Name: moved-pkg" in metadata.content

    return check


def publish_npm(client: httpx.Client, repo: str) -> Check:
    data = tarball("@team/moved", "2.0.0")
    document = publish_document("@team/moved", "2.0.0", data, tags={"latest": "2.0.0", "next": "2.0.0"})
    response = client.put(f"/repository/{repo}/{escaped('@team/moved')}", json=document)
    assert response.status_code in (200, 201), response.text

    def check(reader: httpx.Client, name: str) -> None:
        packument = reader.get(f"/repository/{name}/{escaped('@team/moved')}").json()
        assert packument["dist-tags"] == {"latest": "2.0.0", "next": "2.0.0"}
        url = packument["versions"]["2.0.0"]["dist"]["tarball"]
        assert f"/repository/{name}/" in url
        assert reader.get(url).content == data

    return check


def publish_maven(client: httpx.Client, repo: str) -> Check:
    base = "com/example/moved/1.0"
    files = {
        f"{base}/moved-1.0.jar": jar_bytes({"a.txt": b"a"}),
        f"{base}/moved-1.0.pom": pom_xml("com.example", "moved", "1.0"),
    }
    for path, data in files.items():
        assert client.put(f"/repository/{repo}/{path}", content=data).status_code == 201

    def check(reader: httpx.Client, name: str) -> None:
        for path, data in files.items():
            assert reader.get(f"/repository/{name}/{path}").content == data
            sha1 = reader.get(f"/repository/{name}/{path}.sha1")
            assert sha1.text.strip() == hashlib.sha1(data).hexdigest()
        metadata = reader.get(f"/repository/{name}/com/example/moved/maven-metadata.xml")
        assert metadata.status_code == 200 and b"<version>1.0</version>" in metadata.content

    return check


def publish_oci(client: httpx.Client, repo: str) -> Check:
    img = image("moved", layers=2)
    assert push(client, f"{repo}/team/app", "1.0", img).status_code == 201

    def check(reader: httpx.Client, name: str) -> None:
        manifest = reader.get(f"/v2/{name}/team/app/manifests/1.0", headers={"Accept": OCI_MANIFEST})
        assert manifest.status_code == 200 and manifest.content == img.manifest
        assert manifest.headers["docker-content-digest"] == img.digest
        for blob in img.blobs:
            assert reader.get(f"/v2/{name}/team/app/blobs/{digest(blob)}").content == blob
        assert reader.get(f"/v2/{name}/team/app/tags/list").json()["tags"] == ["1.0"]

    return check


PUBLISHERS = {
    "raw": publish_raw,
    "pypi": publish_pypi,
    "npm": publish_npm,
    "maven": publish_maven,
    "oci": publish_oci,
}


class Published:
    def __init__(self, repo: str, archive: Path, check: Check, export: dict) -> None:
        self.repo, self.archive, self.check, self.export = repo, archive, check, export


@pytest.fixture(scope="module")
def published(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Published]:
    """One repository of each format on the SQLite server, filled over HTTP, exported by the CLI while
    the server runs (gzip-compressed for some formats, plain tar for the others)."""
    folder = tmp_path_factory.mktemp("archives")
    result = {}
    with server.client() as client:
        for fmt in FORMATS:
            repo = server.create_repo(fmt, name=f"{fmt}-src-{uuid.uuid4().hex[:6]}")
            check = PUBLISHERS[fmt](client, repo)
            check(client, repo)
            archive = folder / (f"{fmt}.tar.gz" if fmt in ("pypi", "oci") else f"{fmt}.tar")
            export = summary(cli(server.data_dir, "export", repo, str(archive), "--json"))
            result[fmt] = Published(repo, archive, check, export)
    return result


def archive_records(path: Path) -> tuple[dict, list[dict], list[dict]]:
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        components = [json.loads(line) for line in tar.extractfile("components.jsonl")]
        assets = [json.loads(line) for line in tar.extractfile("assets.jsonl")]
    return manifest, components, assets


def stored_rows(data_dir: Path, repo: str) -> tuple[list, list]:
    """A repository's components and assets as the database holds them (ids left out)."""
    with sqlite3.connect(data_dir / "artifactory.db") as db:
        components = db.execute(
            "select c.namespace, c.name, c.version, c.attributes, c.created_at from component c "
            "join repository r on r.id = c.repository_id where r.name = ? order by c.name, c.version",
            (repo,),
        ).fetchall()
        assets = db.execute(
            "select a.path, a.blob_sha256, a.content_type, a.attributes, a.conflict_key, a.created_at, "
            "a.updated_at, a.last_downloaded, a.download_count, c.namespace, c.name, c.version from asset a "
            "join repository r on r.id = a.repository_id left join component c on c.id = a.component_id "
            "where r.name = ? order by a.path",
            (repo,),
        ).fetchall()
    return components, assets


# -- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_as_another_name_serves_the_same_bytes_and_metadata(
    server, published, fmt, tmp_path
):
    source = published[fmt]
    assert source.export["format"] == fmt and source.export["assets"] >= 1
    assert source.export["blobs"] >= 1 and source.export["bytes"] > 0
    copy = f"{fmt}-copy-{uuid.uuid4().hex[:6]}"
    imported = summary(cli(server.data_dir, "import", str(source.archive), "--as", copy, "--json"))
    assert (imported["repository"], imported["format"], imported["assets"]) == (
        copy,
        fmt,
        source.export["assets"],
    )
    copied, original = stored_rows(server.data_dir, copy), stored_rows(server.data_dir, source.repo)
    assert copied[0] == original[0], "components keep their coordinates, attributes and creation time"
    # Download facts move on as the original is read (counted in batches): compare those with the
    # archive, and everything else with the original.
    assert [r[:7] + r[9:] for r in copied[1]] == [r[:7] + r[9:] for r in original[1]], (
        "assets keep blob, content type, attributes, conflict key, component link and timestamps"
    )
    manifest, components, assets = archive_records(source.archive)
    exported = {a["path"]: (moment(a["last_downloaded"]), a["download_count"]) for a in assets}
    assert {r[0]: (moment(r[7]), r[8]) for r in copied[1]} == exported
    assert manifest["version"] == 1 and manifest["repository"]["name"] == source.repo
    assert len(components) == len(original[0]) and len(assets) == len(original[1])
    assert sorted(b["sha256"] for b in manifest["blobs"]) == sorted({row[1] for row in original[1]})
    with server.client() as client:
        source.check(client, copy)
        source.check(client, source.repo)  # the original is untouched
        definition = client.get(f"/api/v1/repositories/{copy}").json()
        assert (definition["format"], definition["type"]) == (fmt, "hosted")


def moment(value: str | None) -> datetime | None:
    """A time as the archive (ISO 8601, UTC) or SQLite (naive UTC text) spells it, made comparable."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_archive_from_sqlite_imports_into_postgresql_and_serves_there(pg_server, published, fmt):
    source = published[fmt]
    result = cli(pg_server.data_dir, "import", str(source.archive), database_url=pg_server.database_url)
    assert result.returncode == 0, result.stderr.decode()
    assert f"import {source.repo} ({fmt} hosted)" in result.stdout.decode()
    assert re.search(rb"import: blobs (\d+)/\1, ", result.stderr)  # plain progress off a terminal
    with pg_server.client() as client:
        source.check(client, source.repo)


def test_an_export_from_postgresql_holds_the_same_records_as_the_sqlite_one(pg_server, published, tmp_path):
    source = published["oci"]
    name = f"oci-pg-{uuid.uuid4().hex[:6]}"
    url = pg_server.database_url
    assert (
        cli(pg_server.data_dir, "import", str(source.archive), "--as", name, database_url=url).returncode == 0
    )
    again = tmp_path / "from-pg.tar.gz"
    assert cli(pg_server.data_dir, "export", name, str(again), database_url=url).returncode == 0

    def normalised(path: Path) -> tuple:
        manifest, components, assets = archive_records(path)
        coordinates = {c.pop("id"): (c["namespace"], c["name"], c["version"]) for c in components}
        for asset in assets:
            asset["component"] = coordinates.get(asset["component"])
        return manifest["blobs"], sorted(components, key=lambda c: c["version"]), assets

    assert normalised(again) == normalised(source.archive)


def test_export_and_import_stream_through_a_pipe(server, published, tmp_path):
    source = published["raw"]
    exported = cli_process(server.data_dir, "export", source.repo, "-")
    assert exported.returncode == 0, exported.stderr.decode()
    assert exported.stdout[:512].startswith(b"manifest.json")  # a tar stream, nothing printed before it
    name = f"piped-{uuid.uuid4().hex[:6]}"
    imported = cli_process(server.data_dir, "import", "-", "--as", name, "--json", stdin=exported.stdout)
    assert summary(imported)["repository"] == name
    with server.client() as client:
        source.check(client, name)


def test_an_export_keeps_no_upstream_password(server, tmp_path):
    name = server.create_repo(
        "raw", "proxy", url="http://127.0.0.1:9/files/", username="robot", password="upstream-secret"
    )
    archive = tmp_path / "proxy.tar"
    summary(cli(server.data_dir, "export", name, str(archive), "--json"))
    manifest, _, _ = archive_records(archive)
    assert manifest["repository"]["config"]["username"] == "robot"
    assert "password" not in manifest["repository"]["config"]
    assert b"upstream-secret" not in archive.read_bytes()


def test_exporting_a_repository_that_does_not_exist_fails_and_leaves_no_file(server, tmp_path):
    result = cli(server.data_dir, "export", "no-such-repo", str(tmp_path / "x.tar"))
    assert result.returncode == 1 and b"no repository 'no-such-repo'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_export_refuses_damaged_stored_bytes_and_leaves_no_archive(published, tmp_path):
    data = tmp_path / "data"
    assert cli(data, "import", str(published["raw"].archive)).returncode == 0
    [large] = [
        p for p in (data / "blobs" / "objects").rglob("*") if p.is_file() and p.stat().st_size > 100_000
    ]
    original = large.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    large.write_bytes(bytes([original[0] ^ 1]) + original[1:])
    flipped = cli(data, "export", published["raw"].repo, str(out / "a.tar"))
    assert flipped.returncode == 1 and b"does not match its digest" in flipped.stderr
    large.write_bytes(original[:-10])
    short = cli(data, "export", published["raw"].repo, str(out / "a.tar.gz"))
    assert short.returncode == 1 and b"shorter than recorded" in short.stderr, short.stderr
    assert list(out.iterdir()) == []
    nowhere = cli(data, "export", published["raw"].repo, str(tmp_path / "no" / "such" / "dir.tar"))
    assert nowhere.returncode == 1 and b"cannot write" in nowhere.stderr


# -- bad archives ---------------------------------------------------------------------------------
def rewrite(source: Path, target: Path, change: Callable[[tarfile.TarInfo, bytes], tuple], extra=()) -> Path:
    """Copy an archive member by member through `change` (returning (info, data) or None to drop
    it), then append `extra` (info, data) members: those come after the good blobs were staged."""
    with tarfile.open(source) as old, tarfile.open(target, "w") as new:
        for info in old.getmembers():
            data = old.extractfile(info).read()
            changed = change(info, data)
            if changed is not None:
                info, data = changed
                info.size = len(data) if info.isreg() else 0
                new.addfile(info, io.BytesIO(data) if info.isreg() else None)
        for info, data in extra:
            new.addfile(info, io.BytesIO(data) if data else None)
    return target


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data), linkname
    return info, data


def with_manifest(edit: Callable[[dict], None]):
    def change(info, data):
        if info.name == "manifest.json":
            manifest = json.loads(data)
            edit(manifest)
            return info, json.dumps(manifest).encode()
        return info, data

    return change


def flip_last_blob(info, data):
    if info.name.startswith("blobs/") and len(data) > 100_000:  # the 200 kB raw file
        return info, bytes([data[0] ^ 1]) + data[1:]
    return info, data


def escape_asset_path(info, data):
    if info.name == "assets.jsonl":
        records = [json.loads(line) for line in data.splitlines()]
        records[-1]["path"] = "../../outside.txt"
        return info, b"".join(json.dumps(r).encode() + b"\n" for r in records)
    return info, data


def drop_blobs(info, data):
    return None if info.name.startswith("blobs/") else (info, data)


def keep(info, data):
    return info, data


BLOB_NAME = "blobs/sha256/00/00/" + "0" * 64
BAD_ARCHIVES = {
    "parent-escape": (keep, [member("blobs/../../../etc/evil", data=b"x")], "escapes the archive"),
    "absolute-path": (keep, [member("/tmp/evil", data=b"x")], "escapes the archive"),
    "symlink": (keep, [member(BLOB_NAME, tarfile.SYMTYPE, linkname="/etc/passwd")], "symbolic link"),
    "hard-link": (keep, [member(BLOB_NAME, tarfile.LNKTYPE, linkname="manifest.json")], "hard link"),
    "device": (keep, [member(BLOB_NAME, tarfile.CHRTYPE)], "device"),
    "digest-mismatch": (flip_last_blob, [], "does not match its digest"),
    "unknown-version": (
        with_manifest(lambda m: m.update(version=99)),
        [],
        "unknown archive format version 99",
    ),
    "unknown-format": (
        with_manifest(lambda m: m["repository"].update(format="cobol")),
        [],
        "this server has no format 'cobol'",
    ),
    "not-an-export": (with_manifest(lambda m: m.update(format="zip")), [], "not an artifactory export"),
    "asset-path-escape": (escape_asset_path, [], "escapes its repository"),
    "blob-missing": (drop_blobs, [], "is listed but not in the archive"),
    "blob-not-listed": (keep, [member(BLOB_NAME, data=b"")], "is not in the manifest"),
}


def state_of(data_dir: Path) -> dict:
    """Everything an import could write: rows, stored objects and temporary objects."""
    with sqlite3.connect(data_dir / "artifactory.db") as db:
        rows = {
            t: db.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ("repository", "component", "asset", "blob")
        }
    blobs = data_dir / "blobs"
    return {
        **rows,
        "objects": sorted(str(p.relative_to(blobs)) for p in (blobs / "objects").rglob("*") if p.is_file()),
        "temps": sorted(p.name for p in (blobs / "tmp").iterdir()),
    }


@pytest.fixture(scope="module")
def empty_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("fresh") / "data"
    assert cli(data, "repo", "list").returncode == 0
    return data


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_a_bad_archive_is_refused_before_anything_is_written(published, empty_data, case, tmp_path):
    change, extra, message = BAD_ARCHIVES[case]
    bad = rewrite(published["raw"].archive, tmp_path / f"{case}.tar", change, extra)
    before = state_of(empty_data)
    result = cli(empty_data, "import", str(bad), "--as", "victim")
    assert result.returncode == 1, result.stdout
    assert message in result.stderr.decode()
    assert state_of(empty_data) == before


@pytest.mark.parametrize("fmt", ["raw", "pypi"])  # a plain tar and a gzip-compressed one
def test_an_archive_cut_off_in_a_blob_is_refused_and_leaves_nothing(published, empty_data, fmt, tmp_path):
    data = published[fmt].archive.read_bytes()
    cut = tmp_path / f"cut-{published[fmt].archive.name}"
    cut.write_bytes(data[: len(data) * 3 // 4])
    before = state_of(empty_data)
    result = cli(empty_data, "import", str(cut), "--as", "victim")
    assert result.returncode == 1 and b"refusing the archive" in result.stderr, result.stderr
    assert state_of(empty_data) == before


def test_importing_over_an_existing_name_is_refused_and_changes_nothing(published, empty_data):
    source = published["maven"]
    first = summary(cli(empty_data, "import", str(source.archive), "--as", "taken", "--json"))
    assert first["repository"] == "taken" and first["blobs"] == source.export["blobs"]
    before = state_of(empty_data)
    assert before["temps"] == [] and len(before["objects"]) == first["blobs"]
    again = cli(empty_data, "import", str(source.archive), "--as", "taken")
    assert again.returncode == 1 and b"'taken' already exists" in again.stderr
    assert state_of(empty_data) == before


# -- backup ---------------------------------------------------------------------------------------
def test_backup_while_the_server_takes_uploads_then_restore_into_a_fresh_data_dir_and_serve(
    server, published, tmp_path
):
    repo = server.create_repo("raw", name=f"busy-{uuid.uuid4().hex[:6]}")
    stored: dict[str, bytes] = {}
    stop = threading.Event()

    def upload() -> None:
        with server.client() as client:
            for i in range(2000):
                if stop.is_set():
                    return
                # Files of the blob store, and every third one small enough for its row to keep it.
                data = os.urandom(500 + i if i % 3 == 0 else 20_000 + i)
                if client.put(f"/repository/{repo}/f{i}.bin", content=data).status_code == 201:
                    stored[f"f{i}.bin"] = data

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        while len(stored) < 10:
            threading.Event().wait(0.05)
        before_backup = dict(stored)
        target = tmp_path / "backup"
        # A process of its own, as an operator runs it: its start-up alone leaves the uploads time to
        # go on while it runs (in this process, a backup of a few files can finish before the next one).
        first = summary(cli_process(server.data_dir, "backup", str(target), "--json"))
        during = len(stored) - len(before_backup)
    finally:
        stop.set()
        uploader.join()
    assert during > 0, "the server took uploads while the backup ran"
    assert first["copied"] > 0 and first["unchanged"] == 0
    second = summary(cli(server.data_dir, "backup", str(target), "--json"))
    # Only new content is copied: everything the first run copied is found unchanged.
    assert second["unchanged"] >= first["copied"]
    assert second["copied"] + second["unchanged"] + second["in_database"] == second["blobs"]
    assert second["in_database"] > 0  # the snapshot holds them

    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy2(target / "artifactory.db", restored / "artifactory.db")
    shutil.copytree(target / "blobs", restored / "blobs")
    shutil.copy2(target / "token.secret", restored / "token.secret")
    with sqlite3.connect(restored / "artifactory.db") as db:
        paths = [
            row[0]
            for row in db.execute(
                "select a.path from asset a join repository r on r.id = a.repository_id where r.name = ?",
                (repo,),
            )
        ]
    assert set(before_backup) <= set(paths)
    live = LiveServer(restored).start()
    try:
        with live.client() as client:
            for path in paths:
                response = client.get(f"/repository/{repo}/{path}")
                assert response.status_code == 200 and response.content == stored[path]
            for fmt in FORMATS:
                published[fmt].check(client, published[fmt].repo)
    finally:
        live.stop()


def test_backup_on_postgresql_says_to_use_pg_dump_and_fails(pg_url, tmp_path):
    result = cli_process(tmp_path / "data", "backup", str(tmp_path / "backup"), database_url=pg_url)
    assert result.returncode == 2
    assert b"pg_dump" in result.stderr and b"versioning" in result.stderr
    assert not (tmp_path / "backup").exists()


def test_progress_is_a_bar_on_a_terminal(server, published, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "artifactory",
            "export",
            published["oci"].repo,
            str(tmp_path / "tty.tar"),
            "--data-dir",
            str(server.data_dir),
        ],
        env={**env, "COLUMNS": "120", "TERM": "xterm"},
        timeout=120,
    )
    output = child.read().decode(errors="replace")
    child.close()
    assert child.exitstatus == 0, output
    assert "━" in output and re.search(r"export blobs (\d+)/\1", output)
    assert (tmp_path / "tty.tar").stat().st_size > 0


def test_the_server_lives_through_backups_taken_while_it_commits(tmp_path):
    """A backup's own connection to the database (another process) must never take the server down:
    a change watcher that read SQLite's WAL index from a mapping of its -shm file was killed by
    SIGBUS when a backup's connection shrank that file, mid-upload."""
    server = LiveServer(tmp_path / "data").start()
    try:
        repo = server.create_repo("raw", name=f"live-{uuid.uuid4().hex[:6]}")
        errors: list[str] = []
        stop = threading.Event()

        def upload(worker: int) -> None:
            with server.client() as client:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        client.put(f"/repository/{repo}/{worker}/{i}.bin", content=os.urandom(20_000))
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))

        uploaders = [threading.Thread(target=upload, args=(n,)) for n in range(3)]
        for thread in uploaders:
            thread.start()
        try:
            for round_ in range(3):
                cli(server.data_dir, "backup", str(tmp_path / f"backup-{round_}"), "--json")
                assert server.process is not None and server.process.poll() is None, "the server died"
        finally:
            stop.set()
            for thread in uploaders:
                thread.join()
        assert errors == []
    finally:
        server.stop()
