import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.register_assert_rewrite("artifactory.testing.blobdriver")

from artifactory.blobstore import filesystem  # noqa: E402
from artifactory.blobstore.api import BlobDriver  # noqa: E402
from artifactory.blobstore.filesystem import FilesystemDriver  # noqa: E402
from artifactory.blobstore.store import ALGORITHMS, BlobStore, StagedBlob  # noqa: E402
from artifactory.testing.blobdriver import (  # noqa: E402
    MIB,
    BlobDriverSuite,
    async_chunks,
    ingest,
    join,
    key_for,
    keys,
    pieces,
    store_object,
    temp_names,
    write_temp,
)


class TestFilesystemDriver(BlobDriverSuite):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> FilesystemDriver:
        return FilesystemDriver(tmp_path / "blobs")

    @contextmanager
    def failing_writes(self, driver: BlobDriver) -> Iterator[None]:
        """The disk fills up half-way through the bytes of the unnamed file (`os.write`)."""
        real_write = os.write
        calls = 0

        def filling(fd: int, data: bytes) -> int:
            nonlocal calls
            calls += 1
            if calls > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, bytes(data)[: len(data) // 2])

        with mock.patch.object(filesystem.os, "write", filling):
            yield
        assert calls > 1, "the write never reached os.write: this injection no longer fails it"


class TestFilesystemDriverWithoutTmpfile(BlobDriverSuite):
    """The same contracts where the filesystem has no O_TMPFILE (`write` then goes through a
    temporary file renamed into place)."""

    @pytest.fixture
    def driver(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FilesystemDriver:
        real_open = os.open
        tmpfile = getattr(os, "O_TMPFILE", 0)

        def no_tmpfile(path: str, flags: int, *args: object, **kwargs: object) -> int:
            if tmpfile and flags & tmpfile == tmpfile:
                raise OSError(errno.EOPNOTSUPP, "O_TMPFILE is not supported here")
            return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(filesystem.os, "open", no_tmpfile)
        return FilesystemDriver(tmp_path / "blobs")

    @contextmanager
    def failing_writes(self, driver: BlobDriver) -> Iterator[None]:
        """The temporary file's bytes cannot be made durable (`fsync` of a file fails)."""
        real_fsync = os.fsync
        failed = 0

        def failing(fd: int) -> None:
            nonlocal failed
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                real_fsync(fd)
                return
            failed += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        with mock.patch.object(filesystem.os, "fsync", failing):
            yield
        assert failed, "the write never reached fsync: this injection no longer fails it"


@pytest.fixture
def driver(tmp_path: Path) -> FilesystemDriver:
    return FilesystemDriver(tmp_path / "blobs")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "", "."])
def test_keys_escaping_the_objects_folder_raise_value_error(driver, key):
    with pytest.raises(ValueError):
        driver.exists(key)
    with pytest.raises(ValueError):
        driver.size(key)
    with pytest.raises(ValueError):
        driver.read(key)
    with pytest.raises(ValueError):
        driver.local_path(key)
    with pytest.raises(ValueError):
        driver.delete(key)
    name = write_temp(driver, b"data")
    with pytest.raises(ValueError):
        driver.promote(name, key)
    assert join(driver.read_temp(name)) == b"data"


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden"])
def test_temp_names_with_path_parts_raise_value_error(driver, name):
    with pytest.raises(ValueError):
        driver.temp_size(name)
    with pytest.raises(ValueError):
        driver.append_temp(name)
    with pytest.raises(ValueError):
        driver.delete_temp(name)


def test_promote_leaves_no_temp_file(driver):
    store_object(driver, b"first")
    assert os.listdir(driver.tmp) == []
    driver.promote(write_temp(driver, b"first"), key_for(b"first"))
    assert os.listdir(driver.tmp) == []


def test_local_path_is_the_object_file(driver):
    key = store_object(driver, b"zero-copy")
    path = driver.local_path(key)
    assert path is not None
    assert path == driver.root / "objects" / key
    assert path.read_bytes() == b"zero-copy"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=4096),
    cuts=st.lists(st.integers(min_value=0, max_value=4096), max_size=12),
)
def test_any_chunking_round_trips_with_hashlib_digests(tmp_path, data, cuts):
    driver = FilesystemDriver(tmp_path / "property")  # shared by the examples: keys are content addresses
    store = BlobStore(driver)
    points = sorted(min(cut, len(data)) for cut in cuts)
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert b"".join(chunks) == data
    staged = ingest(store, chunks)
    for algorithm in ALGORITHMS:
        assert staged.info.digest(algorithm) == hashlib.new(algorithm, data).hexdigest()
    assert staged.info.size == len(data)
    anyio.run(store.publish, staged)
    assert join(store.read(staged.info.sha256)) == data
    assert temp_names(driver) == set()


def test_concurrent_ingests_of_the_same_content_publish_one_object(driver):
    store = BlobStore(driver)
    data = os.urandom(3 * MIB + 11)
    staged: list[StagedBlob] = []

    async def upload() -> None:
        async def slow_chunks():
            async for chunk in async_chunks(pieces(data, 256 * 1024)):
                await anyio.sleep(0)  # let the other uploads interleave
                yield chunk

        blob = await store.ingest(slow_chunks())
        staged.append(blob)
        await store.publish(blob)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(upload)

    anyio.run(main)
    assert len(staged) == 8
    assert len({blob.temp_name for blob in staged}) == 8
    assert keys(driver) == {key_for(data)}
    assert temp_names(driver) == set()
    assert os.listdir(driver.tmp) == []
    assert join(store.read(hashlib.sha256(data).hexdigest())) == data
