"""Uploaded archives that are corrupt in any byte: every format that looks inside one (a wheel or
sdist for PyPI, a plugin jar for Maven, a package tarball for npm, a .crate for Cargo) answers with
its own refusal or reads it, and never lets the standard library's exception through as a 500. Bytes
are mutated by hypothesis across every compression method zipfile writes; plus a zip member with two
names (the raw one and a Unicode Path field's), which other unzips would extract under the name we
did not check."""

from __future__ import annotations

import binascii
import io
import struct
import tarfile
import zipfile

import pytest
from artifactory_formats.cargo.upload import check_crate
from artifactory_formats.maven.upload import InvalidUpload, read_plugin_descriptor
from artifactory_formats.npm.upload import inspect_tarball
from artifactory_formats.pypi.coordinates import parse_filename
from artifactory_formats.pypi.upload import inspect
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifactory.plugin import HTTPProblem
from tests.formats.cargo.helpers import crate

METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
WHEEL = parse_filename("demo-1.0-py3-none-any.whl")


def _zip(method: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("demo/__init__.py", "x = 1\n" * 50)
        archive.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        archive.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        archive.writestr("META-INF/maven/plugin.xml", "<plugin><goalPrefix>x</goalPrefix></plugin>")
    return buffer.getvalue()


def _tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        body = b'{"name": "demo", "version": "1.0.0"}'
        member = tarfile.TarInfo("package/package.json")
        member.size = len(body)
        archive.addfile(member, io.BytesIO(body))
    return buffer.getvalue()


ZIPS = [_zip(method) for method in METHODS]
TARBALL = _tarball()
CRATE = crate("demo", "1.0.0")


def _mutated(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    changed = bytearray(data)
    for position, value in edits:
        changed[position % len(changed)] = value
    return bytes(changed)


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=4)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(ZIPS))), edits)
def test_a_corrupt_wheel_or_plugin_jar_is_refused_or_read_never_a_500(which, changes):
    data = _mutated(ZIPS[which], changes)
    try:
        inspect(io.BytesIO(data), WHEEL, len(data))
    except HTTPProblem:
        pass
    try:
        read_plugin_descriptor(io.BytesIO(data))
    except InvalidUpload:
        pass


@settings(max_examples=300, deadline=None)
@given(edits)
def test_a_corrupt_npm_tarball_is_refused_or_read_never_a_500(changes):
    try:
        inspect_tarball(io.BytesIO(_mutated(TARBALL, changes)))
    except HTTPProblem:
        pass


@settings(max_examples=300, deadline=None)
@given(edits)
def test_a_corrupt_crate_is_refused_or_read_never_a_500(changes):
    try:
        check_crate(io.BytesIO(_mutated(CRATE, changes)), "demo", "1.0.0")
    except HTTPProblem:
        pass


def _with_unicode_path(data: bytes, raw: str, shown: str) -> bytes:
    """The zip with the entry named `raw` given an Info-ZIP Unicode Path field (0x7075) naming
    `shown`: Python 3.12 and later report that name as the entry's filename."""
    field = struct.pack("<B", 1) + struct.pack("<I", binascii.crc32(raw.encode())) + shown.encode()
    extra = struct.pack("<HH", 0x7075, len(field)) + field
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            if info.filename == raw:
                info.extra = extra
            target.writestr(info, source.read(info))
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(
    "raw", ["demo-1.0.dist-info/METADATA", "../evil.py", "demo/\x00.py"], ids=["metadata", "dotdot", "nul"]
)
def test_a_wheel_member_whose_names_disagree_is_refused(raw):
    placeholder = raw.replace("\x00", "X")  # zipfile cannot write a NUL in a name: patched in below
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        archive.writestr(zipfile.ZipInfo(placeholder), b"print('hi')\n")
    if "\x00" in raw:
        data = buffer.getvalue().replace(placeholder.encode(), raw.encode())
    else:
        data = _with_unicode_path(buffer.getvalue(), raw, "demo/ok.py")
    with pytest.raises(HTTPProblem) as refused:
        inspect(io.BytesIO(data), WHEEL, len(data))
    assert refused.value.status == 400


@pytest.mark.parametrize("shown", ["../evil.py", "demo-1.0.dist-info/METADATA"], ids=["dotdot", "metadata"])
def test_a_wheel_member_a_unicode_path_field_renames_is_refused_on_every_python(shown):
    """A harmless stored name whose Unicode Path field says `../evil.py` (what pip on Python 3.12
    and Info-ZIP's unzip would extract) is refused here on 3.11 too, whatever the field says."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        archive.writestr("demo/ok.py", b"print('hi')\n")
    data = _with_unicode_path(buffer.getvalue(), "demo/ok.py", shown)
    with pytest.raises(HTTPProblem, match="second name") as refused:
        inspect(io.BytesIO(data), WHEEL, len(data))
    assert refused.value.status == 400
