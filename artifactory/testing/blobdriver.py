"""The conformance suite every blob driver must pass (the contracts are in artifactory.blobstore.api).

Use it by subclassing and providing a `driver` fixture that returns a fresh, empty driver:

    class TestMyDriver(BlobDriverSuite):
        @pytest.fixture
        def driver(self, tmp_path):
            return MyDriver(tmp_path)

Where the driver can be made to fail part-way through a write (a full disk, a connection cut mid-body),
override `failing_writes` too, so that the suite checks a failed `write` leaves nothing behind; without
it those cases are skipped.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import anyio
import pytest

from artifactory.blobstore.api import BlobDriver
from artifactory.blobstore.store import ALGORITHMS, BlobStore, DigestMismatch, StagedBlob, TooLarge, blob_key

MIB = 1024 * 1024


def key_for(data: bytes) -> str:
    return blob_key(hashlib.sha256(data).hexdigest())


def join(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


def write_temp(driver: BlobDriver, *chunks: bytes) -> str:
    temp = driver.create_temp()
    for chunk in chunks:
        temp.write(chunk)
    temp.close()
    return temp.name


def store_object(driver: BlobDriver, data: bytes) -> str:
    key = key_for(data)
    driver.promote(write_temp(driver, data), key)
    return key


def temp_names(driver: BlobDriver) -> set[str]:
    return {name for name, _mtime in driver.list_temps()}


def keys(driver: BlobDriver) -> set[str]:
    return {key for key, _mtime in driver.list_keys()}


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def async_chunks(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def ingest(
    store: BlobStore,
    chunks: Iterable[bytes],
    expected: Mapping[str, str | None] | None = None,
    max_size: int | None = None,
) -> StagedBlob:
    async def run() -> StagedBlob:
        return await store.ingest(async_chunks(chunks), expected, max_size)

    return anyio.run(run)


def hashlib_digests(data: bytes) -> dict[str, str]:
    return {algorithm: hashlib.new(algorithm, data).hexdigest() for algorithm in ALGORITHMS}


class BlobDriverSuite:
    """Subclasses provide the `driver` fixture; every test gets a fresh, empty driver."""

    @contextmanager
    def failing_writes(self, driver: BlobDriver) -> Iterator[None]:
        """While open, `driver.write` raises OSError part-way through the bytes, as a disk that fills
        up or a connection cut mid-body would. Override it where the driver can be made to fail."""
        pytest.skip(f"the suite of {type(driver).__name__} gives no way to make a write fail")
        yield

    # temporary objects

    def test_new_temp_is_empty_and_listed(self, driver: BlobDriver) -> None:
        name = write_temp(driver)
        assert driver.temp_size(name) == 0
        assert join(driver.read_temp(name)) == b""
        assert name in temp_names(driver)

    def test_new_temps_get_distinct_names(self, driver: BlobDriver) -> None:
        assert write_temp(driver) != write_temp(driver)

    def test_temp_holds_what_was_written(self, driver: BlobDriver) -> None:
        name = write_temp(driver, b"hello ", b"", b"world")
        assert driver.temp_size(name) == 11
        assert join(driver.read_temp(name)) == b"hello world"

    def test_append_temp_continues_where_the_last_writer_stopped(self, driver: BlobDriver) -> None:
        name = write_temp(driver, b"first,")
        second = driver.append_temp(name)
        assert second.name == name
        second.write(b"second,")
        second.close()
        third = driver.append_temp(name)
        third.write(b"third")
        third.close()
        assert driver.temp_size(name) == len(b"first,second,third")
        assert join(driver.read_temp(name)) == b"first,second,third"
        assert temp_names(driver) == {name}

    def test_append_temp_missing_raises_key_error(self, driver: BlobDriver) -> None:
        with pytest.raises(KeyError):
            driver.append_temp("0123456789abcdef0123456789abcdef")

    def test_temp_size_missing_is_none(self, driver: BlobDriver) -> None:
        assert driver.temp_size("0123456789abcdef0123456789abcdef") is None

    def test_delete_temp_removes_it_and_is_idempotent(self, driver: BlobDriver) -> None:
        keep = write_temp(driver, b"keep")
        name = write_temp(driver, b"data")
        driver.delete_temp(name)
        assert driver.temp_size(name) is None
        assert temp_names(driver) == {keep}
        driver.delete_temp(name)
        driver.delete_temp("0123456789abcdef0123456789abcdef")
        assert join(driver.read_temp(keep)) == b"keep"

    def test_list_temps_gives_each_temp_once_with_its_mtime(self, driver: BlobDriver) -> None:
        before = time.time()
        first = write_temp(driver, b"a")
        second = driver.create_temp()
        second.write(b"b")
        second.close()
        appended = driver.append_temp(second.name)
        appended.write(b"c")
        appended.close()
        after = time.time()
        listed = list(driver.list_temps())
        assert sorted(name for name, _ in listed) == sorted([first, second.name])
        for _name, mtime in listed:
            assert before - 5 <= mtime <= after + 5

    # promote

    def test_promote_makes_the_object_and_removes_the_temp(self, driver: BlobDriver) -> None:
        data = b"promoted bytes"
        key = key_for(data)
        name = write_temp(driver, b"promoted ", b"bytes")
        assert not driver.exists(key)
        driver.promote(name, key)
        assert driver.exists(key)
        assert driver.size(key) == len(data)
        assert join(driver.read(key)) == data
        assert driver.temp_size(name) is None
        assert temp_names(driver) == set()

    def test_promote_of_an_appended_temp_gives_all_its_bytes(self, driver: BlobDriver) -> None:
        name = write_temp(driver, b"abc")
        temp = driver.append_temp(name)
        temp.write(b"def")
        temp.close()
        driver.promote(name, key_for(b"abcdef"))
        assert join(driver.read(key_for(b"abcdef"))) == b"abcdef"

    def test_promote_of_an_empty_temp_gives_an_empty_object(self, driver: BlobDriver) -> None:
        key = key_for(b"")
        driver.promote(write_temp(driver), key)
        assert driver.exists(key)
        assert driver.size(key) == 0
        assert join(driver.read(key)) == b""
        assert join(driver.read(key, 0, 5)) == b""
        assert join(driver.read(key, 3)) == b""

    def test_promote_keeps_the_existing_object_and_removes_the_temp(self, driver: BlobDriver) -> None:
        original = b"the original bytes"
        key = store_object(driver, original)
        # Different bytes under the same key prove which one survived; real keys are content addresses.
        second = write_temp(driver, b"other bytes, same key")
        driver.promote(second, key)
        assert join(driver.read(key)) == original
        assert driver.size(key) == len(original)
        assert driver.temp_size(second) is None
        assert temp_names(driver) == set()
        assert keys(driver) == {key}

    # write: a small object, whole, straight to its key

    def test_write_stores_the_bytes_whole_at_the_key_and_no_temp(self, driver: BlobDriver) -> None:
        data = os.urandom(64 * 1024 + 7)
        key = key_for(data)
        before = time.time()
        assert driver.write(key, data) is True
        assert driver.exists(key)
        assert driver.size(key) == len(data)
        assert join(driver.read(key)) == data
        assert join(driver.read(key, 1000, 1010)) == data[1000:1010]
        assert temp_names(driver) == set()  # nothing for the caller to clean up
        [(listed, mtime)] = list(driver.list_keys())
        assert listed == key and before - 5 <= mtime <= time.time() + 5

    def test_write_of_an_empty_object(self, driver: BlobDriver) -> None:
        key = key_for(b"")
        assert driver.write(key, b"") is True
        assert driver.exists(key)
        assert driver.size(key) == 0
        assert join(driver.read(key)) == b""
        assert join(driver.read(key, 0, 5)) == b""

    def test_written_bytes_have_the_size_and_digests_the_store_computed(self, driver: BlobDriver) -> None:
        store = BlobStore(driver)
        data = os.urandom(5000)
        staged = anyio.run(store.ingest_bytes, data)
        assert staged.in_memory  # a small body: publish writes it with BlobDriver.write
        anyio.run(store.publish, staged)
        stored = join(driver.read(blob_key(staged.info.sha256)))
        assert driver.size(blob_key(staged.info.sha256)) == staged.info.size == len(data)
        assert hashlib_digests(stored) == hashlib_digests(data)
        assert {a: staged.info.digest(a) for a in ALGORITHMS} == hashlib_digests(data)
        assert temp_names(driver) == set()
        assert keys(driver) == {key_for(data)}

    def test_write_of_an_existing_key_keeps_the_object_and_says_so(self, driver: BlobDriver) -> None:
        original = b"the original bytes"
        key = key_for(original)
        assert driver.write(key, original) is True
        # Different bytes under the same key prove which one survived; real keys are content addresses.
        assert driver.write(key, b"other bytes, same key") is False
        assert join(driver.read(key)) == original
        assert driver.size(key) == len(original)
        assert keys(driver) == {key}
        assert temp_names(driver) == set()

    def test_write_and_promote_each_keep_what_the_other_stored(self, driver: BlobDriver) -> None:
        promoted = store_object(driver, b"promoted first")
        assert driver.write(promoted, b"other bytes, same key") is False
        assert join(driver.read(promoted)) == b"promoted first"
        written = key_for(b"written first")
        assert driver.write(written, b"written first") is True
        driver.promote(write_temp(driver, b"other bytes, same key"), written)
        assert join(driver.read(written)) == b"written first"
        assert keys(driver) == {promoted, written}
        assert temp_names(driver) == set()

    def test_a_deleted_object_can_be_written_again(self, driver: BlobDriver) -> None:
        data = b"collected, then uploaded again"
        key = key_for(data)
        assert driver.write(key, data) is True
        driver.delete(key)
        assert driver.write(key, data) is True
        assert join(driver.read(key)) == data

    def test_writes_beside_each_other_under_one_prefix(self, driver: BlobDriver) -> None:
        # Keys that share every folder of the layout but the last part (sha256/00/00/...).
        first, second = blob_key("00" * 32), blob_key("00" * 31 + "01")
        assert driver.write(first, b"first") is True
        assert driver.write(second, b"second") is True
        assert join(driver.read(first)) == b"first"
        assert join(driver.read(second)) == b"second"
        assert keys(driver) == {first, second}

    def test_concurrent_writes_of_one_key_leave_one_whole_object(self, driver: BlobDriver) -> None:
        data = os.urandom(256 * 1024)
        key = key_for(data)
        with ThreadPoolExecutor(max_workers=8) as pool:
            written = list(pool.map(lambda _: driver.write(key, data), range(8)))
        # At least one wrote it; where a backend cannot tell, several may say so (they wrote the same bytes).
        assert True in written
        assert join(driver.read(key)) == data
        assert keys(driver) == {key}
        assert temp_names(driver) == set()

    def test_a_write_is_never_seen_half_done(self, driver: BlobDriver) -> None:
        data = os.urandom(4 * MIB)
        key = key_for(data)
        done = threading.Event()
        seen: list[tuple[int, int]] = []  # (size, bytes read) at the first sight of the key
        failed: list[BaseException] = []

        def watch() -> None:
            try:
                while not done.is_set():
                    size = driver.size(key)
                    if size is not None:
                        seen.append((size, len(join(driver.read(key)))))
                        return
            except BaseException as exc:  # noqa: BLE001 - reported below, on the test's thread
                failed.append(exc)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            assert driver.write(key, data) is True
        finally:
            done.set()
            watcher.join()
        assert failed == []
        assert seen in ([], [(len(data), len(data))])

    def test_a_failed_write_leaves_nothing_under_the_key(self, driver: BlobDriver) -> None:
        data = os.urandom(300 * 1024)
        key = key_for(data)
        with self.failing_writes(driver), pytest.raises(OSError):
            driver.write(key, data)
        assert not driver.exists(key)
        assert driver.size(key) is None
        with pytest.raises(KeyError):
            join(driver.read(key))
        assert keys(driver) == set()
        assert temp_names(driver) == set()  # no temporary object left for anyone to clean up
        # Nothing in the way of the retry: not a partial object that would make it say "exists".
        assert driver.write(key, data) is True
        assert join(driver.read(key)) == data

    # objects

    def test_missing_object_does_not_exist_and_has_no_size(self, driver: BlobDriver) -> None:
        key = key_for(b"never stored")
        assert not driver.exists(key)
        assert driver.size(key) is None

    def test_read_missing_raises_key_error(self, driver: BlobDriver) -> None:
        key = key_for(b"never stored")
        with pytest.raises(KeyError):
            join(driver.read(key))
        with pytest.raises(KeyError):
            join(driver.read(key, 0, 0))
        with pytest.raises(KeyError):
            join(driver.read(key, 5, 10))

    def test_read_ranges_match_python_slices(self, driver: BlobDriver) -> None:
        data = os.urandom(2 * MIB + 12345)  # spans the usual 1 MiB read chunk
        key = store_object(driver, data)
        n = len(data)
        ranges: list[tuple[int, int | None]] = [
            (0, None), (0, n), (0, n + 100), (0, 0), (0, 1), (1, None), (1, 2), (7, 7),
            (n - 1, None), (n - 1, n), (n, None), (n, n), (n + 10, None), (n + 10, n + 20),
            (MIB - 1, MIB + 1), (MIB, 2 * MIB), (100, MIB * 2 + 7), (10, 5),
        ]  # fmt: skip
        for start, end in ranges:
            got = join(driver.read(key, start, end))
            assert got == data[start:end], f"read({start}, {end}) gave {len(got)} bytes"
        assert join(driver.read(key)) == data

    def test_read_streams_in_bounded_chunks(self, driver: BlobDriver) -> None:
        data = os.urandom(6 * MIB)
        key = store_object(driver, data)
        chunks = list(driver.read(key))
        assert join(chunks) == data
        assert max(len(chunk) for chunk in chunks) <= 4 * MIB

    def test_local_path_is_none_or_holds_the_bytes(self, driver: BlobDriver) -> None:
        data = b"served without copying"
        key = store_object(driver, data)
        path = driver.local_path(key)
        if path is not None:
            assert path.read_bytes() == data

    def test_delete_removes_the_object_and_missing_is_no_error(self, driver: BlobDriver) -> None:
        keep = store_object(driver, b"keep")
        key = store_object(driver, b"delete me")
        driver.delete(key)
        assert not driver.exists(key)
        assert driver.size(key) is None
        with pytest.raises(KeyError):
            join(driver.read(key))
        driver.delete(key)
        driver.delete(key_for(b"never stored"))
        assert keys(driver) == {keep}

    def test_list_keys_shows_promoted_keys_with_mtimes(self, driver: BlobDriver) -> None:
        assert keys(driver) == set()
        before = time.time()
        first = store_object(driver, b"one")
        second = store_object(driver, b"two")
        write_temp(driver, b"a temp is not a key")
        after = time.time()
        listed = list(driver.list_keys())
        assert sorted(key for key, _ in listed) == sorted([first, second])
        for _key, mtime in listed:
            assert before - 5 <= mtime <= after + 5

    def test_twenty_mib_across_several_appends_streams_correctly(self, driver: BlobDriver) -> None:
        data = os.urandom(20 * MIB + 3)
        sizes = [6 * MIB, MIB + 1, 13 * MIB + 2]  # a small middle session, a big last one
        offset = 0
        name: str | None = None
        for size in sizes:
            temp = driver.create_temp() if name is None else driver.append_temp(name)
            name = temp.name
            for chunk in pieces(data[offset : offset + size], MIB):
                temp.write(chunk)
            temp.close()
            offset += size
        assert name is not None and offset == len(data)
        assert driver.temp_size(name) == len(data)
        temp_chunks = list(driver.read_temp(name))
        assert max(len(chunk) for chunk in temp_chunks) <= 8 * MIB
        assert hashlib.sha256(join(temp_chunks)).digest() == hashlib.sha256(data).digest()
        key = key_for(data)
        driver.promote(name, key)
        assert driver.size(key) == len(data)
        assert temp_names(driver) == set()
        chunks = list(driver.read(key))
        assert max(len(chunk) for chunk in chunks) <= 8 * MIB
        assert hashlib.sha256(join(chunks)).digest() == hashlib.sha256(data).digest()
        assert join(driver.read(key, 6 * MIB - 10, 7 * MIB + 10)) == data[6 * MIB - 10 : 7 * MIB + 10]

    # the blob store on this driver

    def test_store_ingest_publish_read_back_with_every_digest(self, driver: BlobDriver) -> None:
        store = BlobStore(driver)
        data = os.urandom(3 * MIB + 17)
        chunk_sizes = [1, 1000, MIB - 1, 2 * MIB, 4096]
        chunks, offset = [], 0
        for size in chunk_sizes:
            chunks.append(data[offset : offset + size])
            offset += size
        chunks.append(data[offset:])
        expected = hashlib_digests(data)
        staged = ingest(
            store, chunks, expected={"sha256": expected["sha256"].upper(), "md5": expected["md5"]}
        )
        assert staged.info.size == len(data)
        for algorithm in ALGORITHMS:
            assert staged.info.digest(algorithm) == expected[algorithm], algorithm
        assert not store.exists(expected["sha256"])
        anyio.run(store.publish, staged)
        assert store.exists(expected["sha256"])
        assert hashlib.sha256(join(store.read(expected["sha256"]))).hexdigest() == expected["sha256"]
        assert anyio.run(store.read_all, expected["sha256"], len(data)) == data
        assert temp_names(driver) == set()
        assert keys(driver) == {blob_key(expected["sha256"])}

    @pytest.mark.parametrize("algorithm", ALGORITHMS)
    def test_store_wrong_digest_raises_and_leaves_no_temp(self, driver: BlobDriver, algorithm: str) -> None:
        store = BlobStore(driver)
        data = b"some bytes" * 1000
        wrong = hashlib.new(algorithm, b"other bytes").hexdigest()
        with pytest.raises(DigestMismatch) as raised:
            ingest(store, pieces(data, 333), expected={algorithm: wrong})
        assert raised.value.algorithm == algorithm
        assert raised.value.actual == hashlib.new(algorithm, data).hexdigest()
        assert temp_names(driver) == set()
        assert keys(driver) == set()

    def test_store_max_size_is_inclusive_and_exceeding_it_leaves_no_temp(self, driver: BlobDriver) -> None:
        store = BlobStore(driver)
        data = os.urandom(2 * MIB + 5)
        with pytest.raises(TooLarge):
            ingest(store, pieces(data, 64 * 1024), max_size=len(data) - 1)
        assert temp_names(driver) == set()
        assert keys(driver) == set()
        staged = ingest(store, pieces(data, 64 * 1024), max_size=len(data))
        assert staged.info.size == len(data)
        anyio.run(store.discard, staged)
        assert temp_names(driver) == set()

    def test_store_stream_failure_leaves_no_temp(self, driver: BlobDriver) -> None:
        store = BlobStore(driver)

        async def broken() -> AsyncIterator[bytes]:
            yield b"x" * (MIB + 1)
            raise ConnectionResetError("client went away")

        async def run() -> StagedBlob:
            return await store.ingest(broken())

        with pytest.raises(ConnectionResetError):
            anyio.run(run)
        assert temp_names(driver) == set()

    def test_store_publishing_the_same_content_twice_keeps_one_object(self, driver: BlobDriver) -> None:
        store = BlobStore(driver)
        data = b"same content"
        for _ in range(2):
            staged = anyio.run(store.ingest_bytes, data)
            anyio.run(store.publish, staged)
        assert keys(driver) == {key_for(data)}
        assert temp_names(driver) == set()
        assert join(store.read(hashlib.sha256(data).hexdigest())) == data
