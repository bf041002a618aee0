"""The module zip check (`inspect_zip`) against the go command's own (no server): each zip of CASES
is accepted or refused as the table says, and `go mod download`, served the same zips from a
file:// GOPROXY, refuses exactly those (but for the few refused here that it accepts, marked
`stricter`); corrupted zips give InvalidZip and nothing else, and none accepted here is refused by
the go command. Checking the raw name means the same on every Python (3.12 reads Unicode path fields).
"""

from __future__ import annotations

import io
import json
import random
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from artifactory_formats.go.upload import InvalidZip, inspect_zip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.formats.go.conftest import go, go_env

MODULE = "example.com/z"
GOMOD = b"module example.com/z\n"
CODE = b"package z\n"
PLAIN = b"package z\n\nconst Text = `" + b"a longer text to deflate, " * 40 + b"`\n"


class Unseekable(io.RawIOBase):
    """Where zipfile writes a data descriptor after each entry, as Go's writer always does."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.data += data
        return len(data)


def archive(
    root: str, entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED, seekable: bool = True
) -> bytes:
    """A zip of these entries (names under `root`, go.mod first unless named), written as given."""
    if not any(name.lower() == "go.mod" for name, _ in entries):
        entries = [("go.mod", GOMOD), *entries]
    out: io.BytesIO | Unseekable = io.BytesIO() if seekable else Unseekable()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", method) as zipped:
        warnings.simplefilter("ignore")  # zipfile warns of a name written twice
        for name, data in entries:
            zipped.writestr(zipfile.ZipInfo(root + name, (2024, 1, 2, 3, 4, 6)), data, method)
    return bytes(out.getvalue() if isinstance(out, io.BytesIO) else out.data)


HEADER_FIELDS = {"flags": (6, "<H"), "method": (8, "<H"), "crc": (14, "<L"), "size": (22, "<L")}


def patch(data: bytes, name: str, **fields: int) -> bytes:
    """The zip with these fields of entry `name` rewritten in its local header and its central
    directory entry (whose fields sit 2 bytes further)."""
    out = bytearray(data)
    for signature, shift, name_at in ((b"PK\x03\x04", 0, 30), (b"PK\x01\x02", 2, 46)):
        at = out.find(signature)
        while out[at + name_at : at + name_at + len(name)] != name.encode():
            at = out.find(signature, at + 1)
        for field, value in fields.items():
            offset, layout = HEADER_FIELDS[field]
            struct.pack_into(layout, out, at + offset + shift, value)
    return bytes(out)


def end_record(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<H", out, out.rfind(b"PK\x05\x06") + offset, value)
    return bytes(out)


def files(*entries: tuple[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Callable[[str], bytes]:
    return lambda root: archive(root, list(entries), method)


def renamed(name: str, raw: bytes) -> Callable[[str], bytes]:
    """A zip whose entry `name` is stored as the bytes `raw` instead (an ASCII name of their length)."""
    return lambda root: archive(root, [(name, CODE)]).replace(name.encode(), raw)


def unicode_path(stored: str, shown: str) -> Callable[[str], bytes]:
    """An entry stored as `stored` with an Info-ZIP Unicode Path field naming it `shown`, built by
    hand: a version byte 1, the CRC-32 of the stored name, the name in UTF-8."""

    def build(root: str) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zipped:
            zipped.writestr(root + "go.mod", GOMOD)
            entry = zipfile.ZipInfo(root + stored)
            field = struct.pack("<BL", 1, zlib.crc32((root + stored).encode())) + (root + shown).encode()
            entry.extra = struct.pack("<HH", 0x7075, len(field)) + field
            zipped.writestr(entry, CODE)
        return buffer.getvalue()

    return build


def unterminated_deflate(root: str) -> bytes:
    """A deflated entry whose stream gives all its bytes but never ends (no final block)."""
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = squeezer.compress(PLAIN) + squeezer.flush(zlib.Z_SYNC_FLUSH)
    data = archive(root, [("a.go", stream)], zipfile.ZIP_STORED)
    return patch(data, root + "a.go", method=8, crc=zlib.crc32(PLAIN), size=len(PLAIN))


def descriptor_crc(root: str) -> bytes:
    data = archive(root, [("a.go", PLAIN)], seekable=False)
    crc = struct.pack("<L", zlib.crc32(PLAIN))
    return data.replace(b"PK\x07\x08" + crc, b"PK\x07\x08" + struct.pack("<L", zlib.crc32(PLAIN) ^ 1))


def last_entry_overrun(root: str) -> bytes:
    out = bytearray(archive(root, [("a.go", CODE)]))
    struct.pack_into("<H", out, out.rfind(b"PK\x01\x02") + 32, 40)  # its comment runs past the directory
    return bytes(out)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[str], bytes]
    refusal: str | None  # words of the refusal; None: accepted
    stricter: bool = False  # refused here, though the go command accepts it

    def zip(self, version: str) -> bytes:
        return self.build(f"{MODULE}@{version}/")


BAD_ELEMENT = "invalid path element"
CASES = [
    Case(
        "clean names, letters of any script, ß and ss apart",
        files(
            ("a.go", CODE),
            ("sub/b.go", b"package sub\n"),
            ("dé/ü -x~1 #$%&()+,=@[]^_{}.txt", b""),
            ("ß.txt", b""),
            ("ss.txt", b""),
            ("LICENSE", b"x"),
            ("vendor/modules.txt", b""),
        ),
        None,
    ),
    Case("stored entries", files(("a.go", CODE), ("b.go", PLAIN), method=zipfile.ZIP_STORED), None),
    Case("explicit directories", files(("d/", b""), ("d/x.go", CODE), ("d/", b"")), None),
    Case(
        "a data descriptor after each entry, as Go writes them",
        lambda r: archive(r, [("a.go", PLAIN)], seekable=False),
        None,
    ),
    Case("parent directories differing in case", files(("A/x.go", CODE), ("a/y.go", CODE)), "up to case"),
    Case("micro and mu", files(("µ.txt", b""), ("μ.txt", b"")), "up to case"),
    Case("kelvin sign and k", files(("\u212a.txt", b""), ("k.txt", b"")), "up to case"),
    Case("a file that is also a directory", files(("a", CODE), ("a/b.go", CODE)), "a file and a directory"),
    Case("go.mod as a directory", files(("go.mod", GOMOD), ("go.mod/", b"")), "a file and a directory"),
    Case("a file twice", files(("a.go", CODE), ("a.go", CODE)), "the same file twice"),
    *(
        Case(f"the character {c!r}", files((f"a{c}b.txt", b"")), BAD_ELEMENT)
        for c in ":\"*<>?`|'\\\t€٣"  # the last an Arabic-Indic digit: no letter
    ),
    Case("CON.txt", files(("CON.txt", b"")), BAD_ELEMENT),
    Case("lpt9 below a directory", files(("d/lpt9", b"")), BAD_ELEMENT),
    Case("an element of dots", files((".../x.go", CODE)), BAD_ELEMENT),
    Case("an element ending in a dot", files(("x.", b"")), BAD_ELEMENT),
    Case("a '.' element", files(("./x.go", CODE)), BAD_ELEMENT),
    Case("an empty element", files(("a//b.go", CODE)), BAD_ELEMENT),
    Case("a go.mod below the root", files(("sub/go.mod", b"module example.com/z/sub\n")), "at its root"),
    Case("GO.MOD at the root", files(("GO.MOD", GOMOD)), "at its root"),
    Case("a LICENSE over 16 MiB", files(("LICENSE", bytes(16 * 1024 * 1024 + 1))), "LICENSE is larger"),
    Case("a name that is not UTF-8", renamed("a-b.txt", b"a\xffb.txt"), "not valid UTF-8"),
    Case("a NUL in a name", renamed("x.go-y", b"x.go\x00y"), "second name"),
    Case("a Unicode path field hiding ..", unicode_path("../../../evil.go", "evil.go"), "second name"),
    Case("a Unicode path field renaming", unicode_path("x.go", "y.go"), "second name", stricter=True),
    Case("bzip2", files(("a.go", CODE), method=zipfile.ZIP_BZIP2), "compressed otherwise"),
    Case(
        "the encrypted flag",
        lambda r: patch(archive(r, []), r + "go.mod", flags=1),
        "encrypted",
        stricter=True,
    ),
    Case("a wrong CRC-32", lambda r: patch(archive(r, [("a.go", PLAIN)]), r + "a.go", crc=1), "corrupt"),
    Case("a data descriptor's wrong CRC-32", descriptor_crc, "corrupt"),
    Case(
        "fewer bytes than declared",
        lambda r: patch(archive(r, [("a.go", PLAIN)]), r + "a.go", size=9999),
        "corrupt",
    ),
    Case("a deflate stream with no end", unterminated_deflate, "corrupt"),
    Case("another entry count", lambda r: end_record(archive(r, [("a.go", CODE)]), 10, 3), "end record"),
    Case("a comment past the end", lambda r: end_record(archive(r, [("a.go", CODE)]), 20, 5), "comment"),
    Case("the last entry past the directory", last_entry_overrun, "end record"),
]


def version(index: int) -> str:
    return f"v1.0.{index}"


@pytest.mark.parametrize(("index", "case"), enumerate(CASES), ids=[c.id for c in CASES])
def test_a_zip_is_accepted_or_refused_as_the_table_says(index: int, case: Case) -> None:
    data = case.zip(version(index))
    if case.refusal is None:
        assert inspect_zip(io.BytesIO(data), MODULE, version(index), 10**9) == GOMOD
    else:
        with pytest.raises(InvalidZip, match=case.refusal):
            inspect_zip(io.BytesIO(data), MODULE, version(index), 10**9)


def go_refusals(tmp_path: Path, zips: dict[str, bytes]) -> dict[str, str]:
    """Version -> the go command's error, for each zip `go mod download` refuses (all at once)."""
    versions = tmp_path / "goproxy" / MODULE / "@v"
    versions.mkdir(parents=True)
    for number, data in zips.items():
        (versions / f"{number}.zip").write_bytes(data)
        (versions / f"{number}.mod").write_bytes(GOMOD)
        (versions / f"{number}.info").write_text(json.dumps({"Version": number}))
    env = go_env(tmp_path / "home", (tmp_path / "goproxy").as_uri())
    result = go(["mod", "download", "-json", *(f"{MODULE}@{v}" for v in zips)], tmp_path, env)
    decoder, text, answers = json.JSONDecoder(), result.stdout.strip(), {}
    while text:
        found, end = decoder.raw_decode(text)
        answers[found["Version"]], text = found.get("Error"), text[end:].strip()
    assert set(answers) == set(zips), result.stderr  # the go command answered for every zip
    return {number: error for number, error in answers.items() if error is not None}


def test_the_go_command_refuses_the_zips_refused_here_and_no_other(tmp_path: Path) -> None:
    refused = go_refusals(tmp_path, {version(i): case.zip(version(i)) for i, case in enumerate(CASES)})
    for index, case in enumerate(CASES):
        go_refuses = case.refusal is not None and not case.stricter
        assert (version(index) in refused) == go_refuses, (case.id, refused.get(version(index)))


def bases(root: str) -> list[bytes]:
    entries = [("a.go", PLAIN), ("sub/b.go", CODE)]
    return [
        archive(root, entries),
        archive(root, entries, zipfile.ZIP_STORED),
        archive(root, entries, seekable=False),
    ]


def mutated(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out[: rng.randrange(len(out))] if rng.random() < 0.1 else out)


def test_no_corrupted_zip_accepted_here_is_refused_by_the_go_command(tmp_path: Path) -> None:
    rng, zips, accepted = random.Random(20240102), {}, []
    for index in range(300):
        number = f"v0.1.{index}"
        zips[number] = mutated(rng.choice(bases(f"{MODULE}@{number}/")), rng)
        try:
            inspect_zip(io.BytesIO(zips[number]), MODULE, number, 10**9)
            accepted.append(number)
        except InvalidZip:
            pass
    refused = go_refusals(tmp_path, zips)
    assert 30 < len(accepted) < 270 and len(refused) > 30  # both kinds are tried
    assert [(v, refused[v]) for v in accepted if v in refused] == []


BASES = bases(f"{MODULE}@v1.0.0/")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASES),
    edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 2000),
)
def test_a_corrupted_zip_is_refused_with_invalid_zip_and_nothing_else(
    base: bytes, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(base)
    for at, value in edits:
        data[at % len(data)] = value
    data = data[: cut % len(data)] if cut is not None else data
    try:
        inspect_zip(io.BytesIO(bytes(data)), MODULE, "v1.0.0", 10**9)
    except InvalidZip:
        pass
