"""The S3 driver against a real S3 API: moto's standalone server on loopback, one bucket per test."""

import contextlib
import http.client
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest

pytest.register_assert_rewrite("artifactory.testing.blobdriver")

from artifactory.blobstore.api import BlobDriver  # noqa: E402
from artifactory.blobstore.s3 import S3Driver, parse_endpoint  # noqa: E402
from artifactory.settings import S3Settings  # noqa: E402
from artifactory.testing.blobdriver import (  # noqa: E402
    MIB,
    BlobDriverSuite,
    join,
    key_for,
    keys,
    store_object,
    temp_names,
    write_temp,
)


@pytest.fixture(scope="module")
def moto_endpoint(s3_endpoint: str) -> str:
    return s3_endpoint


def s3_settings(endpoint: str, **overrides: object) -> S3Settings:
    values: dict = {
        "endpoint": endpoint,
        "bucket": f"test-{uuid.uuid4().hex}",
        "access_key": "testing",
        "secret_key": "testing",
        "region": "us-east-1",
        "secure": False,
        "prefix": "pfx/",
    }
    values.update(overrides)
    return S3Settings(**values)


class CutPuts:
    """The S3 client's connection pool, except that the PUT of an object sends half its body and then
    the connection drops, as a network cut mid-upload would (every other request goes through)."""

    def __init__(self, http: Any, objects: str) -> None:
        self.http = http
        self.objects = objects  # "/bucket/prefix/objects/"
        self.cut = 0

    def urlopen(self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        parts = urlsplit(url)
        if method != "PUT" or not parts.path.startswith(self.objects) or not body:
            return self.http.urlopen(method, url, body=body, headers=headers, **kwargs)
        self.cut += 1
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            connection.send(bytes(body[: len(body) // 2]))
            assert connection.sock is not None
            connection.sock.shutdown(socket.SHUT_WR)  # no more bytes: the server sees a short body
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection.getresponse().read()  # whatever it answers, it is done with the request
        finally:
            connection.close()
        raise ConnectionResetError("connection cut half-way through the body")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)


class TestS3Driver(BlobDriverSuite):
    @pytest.fixture
    def driver(self, moto_endpoint: str) -> S3Driver:
        return S3Driver(s3_settings(moto_endpoint))

    @contextmanager
    def failing_writes(self, driver: BlobDriver) -> Iterator[None]:
        assert isinstance(driver, S3Driver)
        client = driver.client
        cut = CutPuts(client._http, f"/{driver.bucket}/{driver.objects_prefix}")
        with mock.patch.object(client, "_http", cut):
            yield
        assert cut.cut, "the write sent no PUT: this injection no longer fails it"


@pytest.fixture
def driver(moto_endpoint):
    return S3Driver(s3_settings(moto_endpoint))


def bucket_names(driver: S3Driver) -> list[str]:
    return sorted(obj.object_name for obj in driver.client.list_objects(driver.bucket, recursive=True))


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("minio:9000", True, ("minio:9000", True)),
        ("minio:9000", False, ("minio:9000", False)),
        ("http://minio:9000", True, ("minio:9000", False)),
        ("https://s3.example.com/", False, ("s3.example.com", True)),
        ("  http://127.0.0.1:9000  ", True, ("127.0.0.1:9000", False)),
    ],
)
def test_endpoint_may_be_host_port_or_url(endpoint, secure, expected):
    assert parse_endpoint(endpoint, secure) == expected


@pytest.mark.parametrize(
    "endpoint", ["", "ftp://host:21", "http://host:9000/bucket", "http://user:pw@host", "a/b"]
)
def test_malformed_endpoint_raises_value_error(endpoint):
    with pytest.raises(ValueError):
        parse_endpoint(endpoint, True)


def test_url_endpoint_reaches_the_server(moto_endpoint):
    driver = S3Driver(s3_settings(f"http://{moto_endpoint}", secure=True))
    key = store_object(driver, b"via a url endpoint")
    assert join(driver.read(key)) == b"via a url endpoint"


def test_bucket_is_created_when_missing_and_reused_when_present(moto_endpoint):
    settings = s3_settings(moto_endpoint)
    first = S3Driver(settings)
    assert first.client.bucket_exists(settings.bucket)
    key = store_object(first, b"survives a second driver")
    second = S3Driver(settings)
    assert join(second.read(key)) == b"survives a second driver"


def test_layout_puts_objects_and_temp_parts_under_the_prefix(driver):
    key = store_object(driver, b"object")
    temp = driver.create_temp()
    temp.write(b"part one")
    temp.close()
    temp.write(b"part two")
    temp.close()
    assert bucket_names(driver) == [
        f"pfx/objects/{key}",
        f"pfx/tmp/{temp.name}/000000",
        f"pfx/tmp/{temp.name}/000001",
        f"pfx/tmp/{temp.name}/000002",
    ]


def test_empty_prefix_uses_top_level_folders(moto_endpoint):
    driver = S3Driver(s3_settings(moto_endpoint, prefix=""))
    key = store_object(driver, b"top level")
    name = write_temp(driver)
    assert bucket_names(driver) == [f"objects/{key}", f"tmp/{name}/000000"]
    assert keys(driver) == {key}
    assert temp_names(driver) == {name}


def test_another_process_can_append_to_a_temp(moto_endpoint):
    settings = s3_settings(moto_endpoint)
    name = write_temp(S3Driver(settings), b"written here, ")
    other = S3Driver(settings)  # a second client stands in for a second process
    temp = other.append_temp(name)
    temp.write(b"continued there")
    temp.close()
    assert join(S3Driver(settings).read_temp(name)) == b"written here, continued there"


def test_write_uploads_a_part_once_the_buffer_passes_eight_mib(driver):
    temp = driver.create_temp()
    for _ in range(9):
        temp.write(b"x" * MIB)
    # The part went up as the buffer reached 8 MiB, before any close: memory stays bounded.
    assert driver.temp_size(temp.name) == 8 * MIB
    temp.write(b"tail")
    temp.close()
    assert driver.temp_size(temp.name) == 9 * MIB + 4


@pytest.mark.parametrize(
    ("sessions", "composed"),
    [
        ([5 * MIB, 1000], True),  # every part but the last is at least 5 MiB
        ([1000], True),
        ([1000, 5 * MIB], False),  # a small part before the last one: S3 cannot compose it
        ([10, 20, 30], False),
    ],
)
def test_promote_composes_large_parts_and_streams_small_ones(driver, monkeypatch, sessions, composed):
    calls = []
    original = driver.client.compose_object

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(driver.client, "compose_object", spy)
    data = os.urandom(sum(sessions))
    name, offset = None, 0
    for size in sessions:
        temp = driver.create_temp() if name is None else driver.append_temp(name)
        name = temp.name
        temp.write(data[offset : offset + size])
        temp.close()
        offset += size
    key = key_for(data)
    driver.promote(name, key)
    assert bool(calls) is composed
    assert join(driver.read(key)) == data
    assert bucket_names(driver) == [f"pfx/objects/{key}"]


def test_promote_of_a_missing_temp_raises_key_error(driver):
    with pytest.raises(KeyError):
        driver.promote("0123456789abcdef0123456789abcdef", key_for(b"x"))
    assert keys(driver) == set()


@pytest.mark.parametrize("key", ["../x", "a/../x", "/abs", "", "a//b", "a/./b"])
def test_invalid_keys_raise_value_error(driver, key):
    with pytest.raises(ValueError):
        driver.exists(key)
    with pytest.raises(ValueError):
        driver.read(key)
    with pytest.raises(ValueError):
        driver.local_path(key)
    with pytest.raises(ValueError):
        driver.delete(key)
