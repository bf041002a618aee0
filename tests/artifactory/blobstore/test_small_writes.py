"""Small bodies: staged in memory, written whole to their content address by `BlobDriver.write`
(no temporary object), durable in the right order, and kept in memory for the GC race."""

import errno
import hashlib
import os
from pathlib import Path

import anyio
import pytest

pytest.register_assert_rewrite("artifactory.testing.blobdriver")

from artifactory.blobstore import filesystem  # noqa: E402
from artifactory.blobstore.filesystem import FilesystemDriver  # noqa: E402
from artifactory.blobstore.s3 import S3Driver  # noqa: E402
from artifactory.blobstore.store import FLUSH_BYTES, BlobStore, DigestMismatch, blob_key  # noqa: E402
from artifactory.testing.blobdriver import async_chunks, join, keys, temp_names  # noqa: E402
from tests.artifactory.blobstore.test_s3_driver import s3_settings  # noqa: E402


@pytest.fixture(params=["filesystem", "s3"])
def any_driver(request, tmp_path):
    if request.param == "filesystem":
        return FilesystemDriver(tmp_path / "blobs")
    return S3Driver(s3_settings(request.getfixturevalue("s3_endpoint")))


def key_of(data: bytes) -> str:
    return blob_key(hashlib.sha256(data).hexdigest())


def test_write_stores_the_bytes_at_the_key_and_leaves_no_temporary_object(any_driver):
    data = os.urandom(3000)
    assert any_driver.write(key_of(data), data) is True
    assert join(any_driver.read(key_of(data))) == data
    assert any_driver.size(key_of(data)) == 3000
    assert temp_names(any_driver) == set()
    assert keys(any_driver) == {key_of(data)}


def test_a_second_write_of_a_stored_key_writes_nothing_and_says_so(any_driver):
    data = b"the same bytes"
    assert any_driver.write(key_of(data), data) is True
    assert any_driver.write(key_of(data), data) is False
    assert join(any_driver.read(key_of(data))) == data
    assert temp_names(any_driver) == set()


def test_an_empty_object_can_be_written(any_driver):
    assert any_driver.write(key_of(b""), b"") is True
    assert join(any_driver.read(key_of(b""))) == b""


def test_write_refuses_keys_outside_the_objects_folder(any_driver):
    for key in ("../x", "a/../../x", "/etc/passwd", ""):
        with pytest.raises(ValueError):
            any_driver.write(key, b"data")


def test_filesystem_write_fsyncs_the_bytes_before_linking_and_the_folder_after(tmp_path, monkeypatch):
    """The order that makes a crash harmless: the name appears only for durable bytes, and the
    name itself is durable (its folder fsynced) before `write` returns."""
    driver = FilesystemDriver(tmp_path / "blobs")
    data = os.urandom(100)
    key = key_of(data)
    driver.write(key_of(b"warm up the folders"), b"warm up the folders")
    calls = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd):
        kind = "folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"
        present = (tmp_path / "blobs" / "objects" / key).exists()
        calls.append(("fsync", kind, present))
        real_fsync(fd)

    def link(*args, **kwargs):
        calls.append(("link",))
        real_link(*args, **kwargs)

    monkeypatch.setattr(filesystem.os, "fsync", fsync)
    monkeypatch.setattr(filesystem.os, "link", link)
    assert driver.write(key, data) is True
    linked = calls.index(("link",))
    # Before the link: the bytes (and the folders created for the key, each in its parent).
    assert ("fsync", "file", False) in calls[:linked]
    assert calls[linked + 1 :] == [("fsync", "folder", True)]


def test_filesystem_write_falls_back_to_a_promoted_temp_without_o_tmpfile(tmp_path, monkeypatch):
    driver = FilesystemDriver(tmp_path / "blobs")
    real_open = os.open

    def no_tmpfile(path, flags, *args, **kwargs):
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            raise OSError(errno.EOPNOTSUPP, "not supported here")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(filesystem.os, "open", no_tmpfile)
    data = os.urandom(500)
    assert driver.write(key_of(data), data) is True
    assert driver.write(key_of(data), data) is False
    assert join(driver.read(key_of(data))) == data
    assert temp_names(driver) == set()


def test_a_small_body_is_staged_in_memory_and_written_only_when_placed(tmp_path):
    driver = FilesystemDriver(tmp_path / "blobs")
    store = BlobStore(driver)
    data = os.urandom(2048)

    async def stage():
        return await store.ingest_then(async_chunks([data[:1000], data[1000:]]), None, None, None)

    staged, _ = anyio.run(stage)
    assert staged.in_memory and staged.data == data and staged.temp_name == ""
    assert staged.info.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.info.md5 == hashlib.md5(data).hexdigest()
    assert keys(driver) == set() and temp_names(driver) == set()
    with store.open_staged(staged) as handle:
        assert handle.read() == data
    assert store.place(staged) is True
    assert join(store.read(staged.info.sha256)) == data
    assert store.place(staged) is False  # stored already: the caller keeps the bytes it holds


def test_a_body_past_the_flush_size_still_goes_through_a_temporary_object(tmp_path):
    driver = FilesystemDriver(tmp_path / "blobs")
    store = BlobStore(driver)
    data = os.urandom(FLUSH_BYTES + 10)

    async def stage():
        return await store.ingest_then(async_chunks([data]), None, None, None)

    staged, _ = anyio.run(stage)
    assert not staged.in_memory and temp_names(driver) == {staged.temp_name}
    assert store.place(staged) is True
    assert join(store.read(staged.info.sha256)) == data
    assert temp_names(driver) == set()


def test_a_small_body_with_a_wrong_digest_leaves_nothing_anywhere(tmp_path):
    driver = FilesystemDriver(tmp_path / "blobs")
    store = BlobStore(driver)
    placed = []

    async def stage():
        return await store.ingest_then(
            async_chunks([b"hello"]), {"sha256": "0" * 64}, None, lambda staged: placed.append(staged)
        )

    with pytest.raises(DigestMismatch):
        anyio.run(stage)
    assert placed == [] and keys(driver) == set() and temp_names(driver) == set()


def test_bytes_kept_in_memory_are_written_again_if_gc_took_the_stored_copy(tmp_path):
    """`place` found the bytes stored (so it kept its own copy, in memory); GC then collected the
    stored copy before the caller's row took hold: `publish_kept` writes the kept bytes back."""
    driver = FilesystemDriver(tmp_path / "blobs")
    store = BlobStore(driver)
    data = os.urandom(700)
    staged = store.stage_bytes_sync(data)
    assert driver.write(key_of(data), data) is True
    assert store.place(staged) is False
    store.delete(staged.info.sha256)
    assert store.publish_kept(staged) is True
    assert join(store.read(staged.info.sha256)) == data
    anyio.run(store.discard, staged)  # nothing to remove for bytes held in memory
    assert temp_names(driver) == set()


def test_a_link_to_a_collected_blob_is_refused(tmp_path):
    """A staged blob with neither a temporary object nor bytes in memory (a link to a known blob)
    cannot bring collected bytes back."""
    store = BlobStore(FilesystemDriver(tmp_path / "blobs"))
    staged = store.stage_bytes_sync(b"linked")
    gone = type(staged)(info=staged.info, temp_name="")
    assert store.publish_kept(gone) is False


def test_an_upload_session_file_is_not_confused_with_a_small_body(tmp_path: Path):
    """`ingest` (upload sessions, imports) keeps a temporary object even for a small body."""
    driver = FilesystemDriver(tmp_path / "blobs")
    store = BlobStore(driver)
    staged = anyio.run(store.ingest, async_chunks([b"small"]))
    assert not staged.in_memory and temp_names(driver) == {staged.temp_name}
    anyio.run(store.discard, staged)
    assert temp_names(driver) == set()


def test_discarded_bytes_held_in_memory_can_no_longer_be_placed(tmp_path):
    store = BlobStore(FilesystemDriver(tmp_path / "blobs"))
    staged = store.stage_bytes_sync(b"thrown away")
    anyio.run(store.discard, staged)
    with pytest.raises(KeyError):
        store.place(staged)
    with pytest.raises(KeyError):
        store.open_staged(staged)
    assert store.publish_kept(staged) is False
    assert not store.exists(staged.info.sha256)


def test_write_many_syncs_every_body_before_linking_any_and_the_links_after(tmp_path, monkeypatch):
    """Bodies written together share two filesystem syncs, in `write`'s order: no name appears
    before every body of the batch is durable, and the names are durable before it returns."""
    driver = FilesystemDriver(tmp_path / "blobs")
    bodies = [os.urandom(200) for _ in range(5)]
    existing = bodies[0]
    assert driver.write(key_of(existing), existing) is True
    calls = []
    real_link = os.link
    monkeypatch.setattr(filesystem, "_syncfs", lambda fd: calls.append("sync"))
    monkeypatch.setattr(filesystem.os, "link", lambda *a, **k: (calls.append("link"), real_link(*a, **k)))
    items = [(key_of(b), b) for b in bodies] + [(key_of(bodies[1]), bodies[1])]
    assert driver.write_many(items) == [False, True, True, True, True, False]
    # The stored one is not written again; the repeat within the batch finds EEXIST.
    assert calls == ["sync", *["link"] * 5, "sync"]
    for body in bodies:
        assert join(driver.read(key_of(body))) == body
    assert temp_names(driver) == set()


def test_bytes_stored_already_are_neither_written_nor_flushed_again(tmp_path, monkeypatch):
    """A content address holds its bytes: a write of a stored key (a proxy fetching what another
    repository cached, an upload of a file stored elsewhere) costs a stat, not a write and a flush."""
    driver = FilesystemDriver(tmp_path / "blobs")
    bodies = [os.urandom(200) for _ in range(3)]
    for body in bodies:
        assert driver.write(key_of(body), body) is True
    calls = []
    monkeypatch.setattr(filesystem, "_syncfs", lambda fd: calls.append("syncfs"))
    monkeypatch.setattr(filesystem.os, "fsync", lambda fd: calls.append("fsync"))
    real_open = os.open
    monkeypatch.setattr(filesystem.os, "open", lambda *a, **k: (calls.append("open"), real_open(*a, **k))[1])
    assert driver.write(key_of(bodies[0]), bodies[0]) is False
    assert driver.write_many([(key_of(b), b) for b in bodies]) == [False, False, False]
    assert calls == []
    assert temp_names(driver) == set()


def test_write_many_leaves_no_name_when_a_body_cannot_be_written(tmp_path, monkeypatch):
    driver = FilesystemDriver(tmp_path / "blobs")
    bodies = [os.urandom(100) for _ in range(3)]
    real_write = os.write
    seen = []

    def failing_write(fd, data):
        seen.append(fd)
        if len(seen) == 2:
            raise OSError(errno.ENOSPC, "no space left")
        return real_write(fd, data)

    monkeypatch.setattr(filesystem.os, "write", failing_write)
    with pytest.raises(OSError):
        driver.write_many([(key_of(b), b) for b in bodies])
    assert keys(driver) == set()
    assert temp_names(driver) == set()


def test_place_many_writes_each_body_once_and_keeps_the_repeats(tmp_path):
    store = BlobStore(FilesystemDriver(tmp_path / "blobs"))
    bodies = [b"one", b"two", b"one", b"three"]
    staged = [store.stage_bytes_sync(b) for b in bodies]
    assert store.place_many(staged) == [True, True, False, True]
    assert store.place_many([store.stage_bytes_sync(b"two")]) == [False]
    for body in bodies:
        assert join(store.read(hashlib.sha256(body).hexdigest())) == body


def test_concurrent_places_of_small_bodies_are_written_together_and_each_told_its_outcome(tmp_path):
    import threading

    store = BlobStore(FilesystemDriver(tmp_path / "blobs"))
    bodies = [f"body {i % 12}".encode() for i in range(24)]  # each body twice
    outcomes = [None] * len(bodies)

    def place(i):
        outcomes[i] = store.place(store.stage_bytes_sync(bodies[i]))

    threads = [threading.Thread(target=place, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(12):  # one of the two placed it, the other was told it was there already
        assert sorted([outcomes[n], outcomes[n + 12]]) == [False, True]
        assert join(store.read(hashlib.sha256(f"body {n}".encode()).hexdigest())) == f"body {n}".encode()
