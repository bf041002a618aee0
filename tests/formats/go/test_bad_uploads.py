"""Refused uploads, each with a clear 400 (or 413) and nothing stored: no .zip, .mod or .info, and
no version in @v/list. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zipfile
from collections.abc import Iterator

import pytest
from artifactory_formats.go.upload import MAX_GO_MOD

from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import LiveServer
from tests.formats.go.conftest import escaped, module_zip, put_zip, raw_zip
from tests.formats.go.test_zip_check import archive, patch

MODULE = "example.com/bad"
ROOT = f"{MODULE}@v1.0.0/"
GOMOD = b"module example.com/bad\n"
LIMIT = 64 * 1024


@pytest.fixture(scope="module", params=DATABASES)
def live(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    with live_server(request, "gobad") as server:
        server.create_repo("go", name="go-bad", max_upload_bytes=LIMIT)
        yield server


def assert_nothing_stored(live: LiveServer, module: str = MODULE, version: str = "v1.0.0") -> None:
    base = f"/repository/go-bad/{escaped(module)}/@v/"
    with live.client(auth=None) as client:
        for ext in ("zip", "mod", "info"):
            assert client.get(f"{base}{escaped(version)}.{ext}").status_code == 404, ext
        assert client.get(f"{base}list").status_code == 404


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            {ROOT + "go.mod": GOMOD, "example.com/other@v1.0.0/x.go": b"package x\n"},
            "outside the module root",
        ),
        ({ROOT + "go.mod": GOMOD, ROOT + "../../escape.go": b"package x\n"}, "'..'"),
        ({ROOT + "go.mod": GOMOD, "/etc/passwd": b"root\n"}, "outside the module root"),
        ({ROOT + "go.mod": GOMOD, ROOT + "a//b.go": b"package x\n"}, "invalid path element ''"),
        ({ROOT + "go.mod": GOMOD, ROOT + "dir\\x.go": b"package x\n"}, "invalid path element 'dir\\\\x.go'"),
        ({ROOT + "go.mod": GOMOD, ROOT + "a:b.go": b"package x\n"}, "invalid path element 'a:b.go'"),
        ({ROOT + "go.mod": GOMOD, ROOT + "aux.go": b"package x\n"}, "reserved on Windows"),
        (
            {ROOT + "go.mod": GOMOD, ROOT + "File.go": b"package x\n", ROOT + "file.go": b"package x\n"},
            "collides",
        ),
        ({ROOT + "go.mod": GOMOD, ROOT + "A/x.go": b"package a\n", ROOT + "a/y.go": b"package a\n"}, "case"),
        ({ROOT + "go.mod": GOMOD, ROOT + "a": b"", ROOT + "a/b.go": b"package a\n"}, "file and a directory"),
        ({ROOT + "go.mod": GOMOD, ROOT + "sub/go.mod": b"module example.com/bad/sub\n"}, "at its root"),
    ],
    ids=[
        "other-root",
        "dot-dot",
        "absolute",
        "empty-element",
        "backslash",
        "colon",
        "windows-reserved",
        "case-fold-collision",
        "parent-case-collision",
        "file-and-directory",
        "nested-go-mod",
    ],
)
def test_a_zip_with_paths_outside_the_module_root_is_refused(
    live: LiveServer, entries: dict[str, bytes], message: str
) -> None:
    response = put_zip(live, "go-bad", MODULE, "v1.0.0", raw_zip(entries))
    assert response.status_code == 400, response.text
    assert message in response.text
    assert_nothing_stored(live)


def bad_zip(*entries: tuple[str, bytes]) -> bytes:
    return archive(ROOT, [("go.mod", GOMOD), *entries])


def corrupt_deflate() -> bytes:
    data = bytearray(bad_zip())
    data[30 + len(ROOT + "go.mod")] = 0xFF  # the first byte of go.mod's deflate stream: no block type
    return bytes(data)


def negative_offset() -> bytes:
    data = bytearray(bad_zip())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<L", data, end + 16, struct.unpack_from("<L", data, end + 16)[0] + 1000)
    return bytes(data)


def utf8_flag_on_other_bytes() -> bytes:
    # zipfile sets the UTF-8 flag for a name that is not ASCII.
    return bad_zip(("é.go", b"")).replace("é".encode(), b"\xff\xfe")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (patch(bad_zip(), ROOT + "go.mod", flags=1), "encrypted"),  # was a RuntimeError
        (patch(bad_zip(), ROOT + "go.mod", method=99), "compressed otherwise"),  # NotImplementedError
        (corrupt_deflate(), "not a readable zip"),  # zlib.error
        (negative_offset(), "not a readable zip"),  # ValueError
        (utf8_flag_on_other_bytes(), "not a readable zip"),  # UnicodeDecodeError
        (patch(bad_zip(("a.go", b"package bad\n")), ROOT + "a.go", crc=1), "corrupt"),
    ],
    ids=["encrypted", "unknown-method", "bad-deflate", "negative-offset", "utf8-flag", "bad-crc"],
)
def test_a_zip_that_cannot_be_read_is_refused_with_400_and_nothing_stored(
    live: LiveServer, data: bytes, message: str
) -> None:
    response = put_zip(live, "go-bad", MODULE, "v1.0.0", data)
    assert response.status_code == 400, response.text
    assert message in response.text
    assert_nothing_stored(live)


def test_a_zip_with_a_duplicate_entry_is_refused(live: LiveServer) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        archive.writestr(ROOT + "go.mod", GOMOD)
        archive.writestr(ROOT + "x.go", b"package x\n")
        archive.writestr(ROOT + "x.go", b"package y\n")
    response = put_zip(live, "go-bad", MODULE, "v1.0.0", buffer.getvalue())
    assert response.status_code == 400 and "collides" in response.text
    assert_nothing_stored(live)


def test_a_zip_larger_than_the_repository_limit_is_refused(live: LiveServer) -> None:
    data = module_zip(MODULE, "v1.0.0", {"blob.go": os.urandom(LIMIT).hex()})
    response = put_zip(live, "go-bad", MODULE, "v1.0.0", data)
    assert response.status_code == 413, response.text
    assert f"exceeds the limit of {LIMIT} bytes" in response.text
    assert_nothing_stored(live)


def test_a_zip_expanding_beyond_the_repository_limit_is_refused(live: LiveServer) -> None:
    data = module_zip(MODULE, "v1.0.0", {"zeros.go": "0" * (4 * LIMIT)})
    assert len(data) < LIMIT  # small on the wire, large once extracted
    response = put_zip(live, "go-bad", MODULE, "v1.0.0", data)
    assert response.status_code == 400 and "expands to" in response.text
    assert_nothing_stored(live)


def test_bytes_that_are_not_a_zip_are_refused(live: LiveServer) -> None:
    response = put_zip(live, "go-bad", MODULE, "v1.0.0", b"not a zip at all")
    assert response.status_code == 400 and "not a zip file" in response.text
    assert_nothing_stored(live)


@pytest.mark.parametrize(
    ("module", "version", "message"),
    [
        (MODULE, "1.0.0", "canonical semantic version"),
        (MODULE, "v1.0", "canonical semantic version"),
        (MODULE, "v1.0.0+build.5", "canonical semantic version"),
        (MODULE, "v01.0.0", "canonical semantic version"),
        (MODULE, "v2.0.0", "needs a /v2 path or +incompatible"),
        (MODULE, "v1.0.0+incompatible", "+incompatible only applies"),
        (MODULE + "/v3", "v2.0.0", "major version is v3"),
        (MODULE + "/v1", "v1.0.0", "/v2 or higher"),
        ("nodot/lib", "v1.0.0", "domain name"),
    ],
)
def test_an_invalid_version_or_module_path_is_refused(
    live: LiveServer, module: str, version: str, message: str
) -> None:
    response = put_zip(live, "go-bad", module, version, module_zip(module, version))
    assert response.status_code == 400, response.text
    assert message in response.text
    assert_nothing_stored(live, module, version)


def test_a_go_mod_naming_another_module_is_refused(live: LiveServer) -> None:
    data = module_zip(MODULE, "v1.0.0", gomod="module example.com/other\n")
    response = put_zip(live, "go-bad", MODULE, "v1.0.0", data)
    assert response.status_code == 400
    assert "go.mod says module 'example.com/other'" in response.text
    assert_nothing_stored(live)


def test_a_mod_file_naming_another_module_is_refused(live: LiveServer) -> None:
    with live.client() as admin:
        response = admin.put(f"/repository/go-bad/{MODULE}/@v/v1.0.0.mod", content=b"module example.com/x\n")
    assert response.status_code == 400 and "go.mod says module" in response.text
    assert_nothing_stored(live)


def test_a_mod_file_over_the_go_commands_limit_is_refused_with_413(live: LiveServer) -> None:
    big = GOMOD + b"//" + b"x" * MAX_GO_MOD
    with live.client() as admin:
        response = admin.put(f"/repository/go-bad/{MODULE}/@v/v1.0.0.mod", content=big)
    assert response.status_code == 413 and f"larger than {MAX_GO_MOD} bytes" in response.text
    assert response.headers["content-type"].startswith("text/plain")  # what the go command prints
    assert_nothing_stored(live)


def test_an_upload_without_write_permission_is_refused(live: LiveServer) -> None:
    user = live.create_user([])
    with live.client(auth=user) as client:
        response = client.put(
            f"/repository/go-bad/{MODULE}/@v/v1.0.0.zip", content=module_zip(MODULE, "v1.0.0")
        )
    assert response.status_code == 403
    assert_nothing_stored(live)
