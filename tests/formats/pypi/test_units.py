"""The pure parts of the pypi format: names, filenames, negotiation, index documents, archive safety."""

from __future__ import annotations

import gzip
import html
import io
import json
import re
import struct
import tarfile
import zipfile
from urllib.parse import urlsplit

import pytest
from artifactory_formats.pypi import metadata, negotiation, upload
from artifactory_formats.pypi.coordinates import (
    ROOT,
    InvalidFilename,
    coordinates,
    normalize,
    parse_filename,
    project_key,
    split_file_path,
)
from artifactory_formats.pypi.format import UPSTREAM_ACCEPT, PypiFormat
from artifactory_formats.pypi.metadata import File, Project
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from artifactory.plugin import BadRequest, Coordinates, FileRef, RenderContext, UpstreamDocument
from tests.formats.pypi.dists import escaped, metadata_text, sdist_bytes, wheel_bytes

JSON = metadata.JSON_TYPE
NAMES = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?\Z")
VERSIONS = st.builds(
    lambda parts, pre, post: ".".join(map(str, parts)) + pre + post,
    st.lists(st.integers(0, 999), min_size=1, max_size=4),
    st.sampled_from(["", "a1", "b2", "rc3"]),
    st.sampled_from(["", ".post1", ".dev4"]),
)


@given(NAMES)
def test_normalised_names_are_lowercase_with_single_dashes_and_idempotent(name):
    normal = normalize(name)
    assert normal == normalize(normal)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", normal)
    assert normalize(name.upper().replace("-", "_")) == normal


@settings(deadline=None)
@given(NAMES, VERSIONS)
def test_wheel_and_sdist_filenames_parse_back_to_their_name_and_version(name, version):
    wheel = parse_filename(f"{escaped(name)}-{version}-py3-none-any.whl")
    assert (wheel.project, wheel.version, wheel.packagetype) == (
        normalize(name),
        Version(version),
        "bdist_wheel",
    )
    sdist = parse_filename(f"{escaped(name)}-{version}.tar.gz")
    assert (sdist.project, sdist.version, sdist.packagetype) == (normalize(name), Version(version), "sdist")
    coords = coordinates(f"packages/{normalize(name)}/{escaped(name)}-{version}-py3-none-any.whl.metadata")
    assert coords is not None and coords.name == normalize(name) and coords.version == str(Version(version))


@given(st.text(max_size=60))
def test_arbitrary_filenames_either_parse_or_raise_invalid_filename(text):
    try:
        dist = parse_filename(text)
    except InvalidFilename:
        return
    assert "/" not in dist.filename and ".." not in dist.filename


@given(st.text(max_size=80))
def test_split_file_path_never_returns_a_filename_with_a_slash(path):
    parts = split_file_path(path)
    if parts is not None:
        assert "/" not in parts[1] and parts[0] and parts[1]


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz/+*;=.,0123456789 ", max_size=80),
    st.none() | st.text(max_size=30),
)
def test_negotiation_answers_one_of_our_types_or_none(accept, query):
    assert negotiation.choose(accept, query) in (metadata.JSON_TYPE, metadata.HTML_TYPE, "text/html", None)


def test_negotiation_prefers_quality_then_json():
    assert negotiation.choose(None, None) == "text/html"
    assert (
        negotiation.choose("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.5", None)
        == metadata.JSON_TYPE
    )
    assert negotiation.choose("application/vnd.pypi.simple.v1+json;q=0", None) is None
    assert negotiation.choose("text/html", "application/vnd.pypi.simple.v1 json") == metadata.JSON_TYPE


FILES = st.lists(
    st.builds(
        lambda version, n, digest, rp, yanked, meta: File(
            filename=f"pkg-{version}-py{n}-none-any.whl",
            path=f"packages/pkg/pkg-{version}-py{n}-none-any.whl",
            version=version,
            hashes={"sha256": digest},
            requires_python=rp,
            yanked=yanked,
            core_metadata={"sha256": digest[::-1]} if meta else None,
            size=n * 10,
            upload_time="2024-01-02T03:04:05.000006Z",
        ),
        VERSIONS.map(lambda v: str(Version(v))),
        st.integers(2, 3),
        st.binary(min_size=32, max_size=32).map(bytes.hex),
        st.none() | st.sampled_from([">=3.8", "<4,>=3.7", "!=3.0.*"]),
        st.none() | st.text(alphabet='ab <>&"', max_size=8),
        st.booleans(),
    ),
    max_size=6,
    unique_by=lambda f: f.filename,
)


def _url(f: File) -> str:
    return "http://up.invalid/x/" + f.filename


@settings(deadline=None, max_examples=60)
@given(FILES)
def test_html_and_json_pages_parse_back_to_the_same_files(files):
    project = Project(name="pkg", files=metadata._ordered(files), versions=metadata._versions(files))
    for body in (metadata.render_html(project, _url), metadata.render_json(project, _url)):
        parsed = metadata.parse_upstream(body, "http://up.invalid/simple/pkg/", "pkg")
        assert [f.filename for f in parsed.files] == [f.filename for f in project.files]
        for mine, theirs in zip(project.files, parsed.files, strict=True):
            assert theirs.hashes == mine.hashes
            assert theirs.requires_python == mine.requires_python
            assert theirs.yanked == mine.yanked
            assert theirs.core_metadata == mine.core_metadata
            assert theirs.upstream_url == _url(mine)
            assert theirs.path == mine.path


def test_merge_keeps_the_first_members_file_for_a_shared_filename():
    first = File(
        filename="a-1.0.tar.gz", path="packages/a/a-1.0.tar.gz", version="1.0", hashes={"sha256": "1" * 64}
    )
    second = File(
        filename="a-1.0.tar.gz", path="packages/a/a-1.0.tar.gz", version="1.0", hashes={"sha256": "2" * 64}
    )
    other = File(filename="a-2.0.tar.gz", path="packages/a/a-2.0.tar.gz", version="2.0", hashes={})
    merged = metadata.merge(
        [Project("A", (first,), ("1.0",)), Project("a", (second, other), ("1.0", "2.0", "3.0"))]
    )
    assert merged is not None
    assert merged.name == "A"
    assert [f.hashes for f in merged.files] == [{"sha256": "1" * 64}, {}]
    assert merged.versions == ("1.0", "2.0", "3.0")


def test_relative_links_resolve_against_the_page_and_base_tag():
    body = (
        b'<html><head><base href="/files/"></head><body><a href="a-1.0.tar.gz#md5='
        + b"a" * 32
        + b'">a-1.0.tar.gz</a></body></html>'
    )
    parsed = metadata.parse_upstream(body, "http://h.invalid/simple/a/", "a")
    assert parsed.files[0].upstream_url == "http://h.invalid/files/a-1.0.tar.gz"
    assert parsed.files[0].hashes == {"md5": "a" * 32}


# -- archives ----------------------------------------------------------------------------------------
def inspect(content: bytes, filename: str):
    return upload.inspect(io.BytesIO(content), parse_filename(filename), len(content))


def test_wheel_metadata_is_found_and_parsed():
    found = inspect(
        wheel_bytes("Good.Pkg", "1.0", requires=["x>1"], requires_python=">=3.9"),
        "good_pkg-1.0-py3-none-any.whl",
    )
    assert found.metadata == metadata_text("Good.Pkg", "1.0", ["x>1"], ">=3.9").encode()
    assert found.display_name == "Good.Pkg"
    assert found.requires_python == ">=3.9"
    assert found.info["requires_dist"] == ["x>1"]
    assert found.served_metadata


def test_zip_sdist_pkg_info_is_found():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("zpkg-1.0/PKG-INFO", metadata_text("zpkg", "1.0"))
    found = inspect(buffer.getvalue(), "zpkg-1.0.zip")
    assert found.display_name == "zpkg" and not found.served_metadata


def test_overlapping_zip_members_are_refused_as_a_bomb():
    content = bytearray(wheel_bytes("lap", "1.0"))
    # Point every central directory entry at the first local header: members that overlap.
    position = content.find(b"PK\x01\x02")
    while position != -1:
        struct.pack_into("<I", content, position + 42, 0)
        position = content.find(b"PK\x01\x02", position + 4)
    with pytest.raises(upload.UnsafeArchive, match="overlapping"):
        inspect(bytes(content), "lap-1.0-py3-none-any.whl")


def test_a_metadata_entry_that_lies_about_its_size_is_still_bounded(monkeypatch):
    monkeypatch.setattr(upload, "MAX_METADATA_BYTES", 100)
    with pytest.raises(upload.UnsafeArchive):
        inspect(
            wheel_bytes("big", "1.0", metadata=metadata_text("big", "1.0") + "y" * 500),
            "big-1.0-py3-none-any.whl",
        )


def test_a_tar_gz_that_expands_too_far_is_refused_as_a_bomb(monkeypatch):
    monkeypatch.setattr(upload, "MAX_EXPANSION", 1024 * 1024)
    monkeypatch.setattr(upload, "BOMB_RATIO", 10)
    info = tarfile.TarInfo("bomb-1.0/zeros")
    info.size = 8 * 1024 * 1024
    content = sdist_bytes("bomb", "1.0", extra=[(info, bytes(info.size))])
    with pytest.raises(upload.UnsafeArchive, match="compression bomb"):
        inspect(content, "bomb-1.0.tar.gz")


def test_a_tar_gz_without_pkg_info_or_not_gzip_is_refused():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"print()\n"
        info = tarfile.TarInfo("nopkg-1.0/setup.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(BadRequest, match="no top-level"):
        inspect(buffer.getvalue(), "nopkg-1.0.tar.gz")
    with pytest.raises(BadRequest, match="not a valid"):
        inspect(gzip.compress(b"not a tar"), "nopkg-1.0.tar.gz")
    with pytest.raises(BadRequest, match="not a valid"):
        inspect(b"not even gzip", "nopkg-1.0.tar.gz")


def test_a_wheel_with_two_dist_info_metadata_files_is_refused():
    content = wheel_bytes(
        "two", "1.0", extra=[("other-1.0.dist-info/METADATA", metadata_text("other", "1.0").encode())]
    )
    with pytest.raises(BadRequest, match="exactly one"):
        inspect(content, "two-1.0-py3-none-any.whl")


def test_metadata_without_a_name_is_refused():
    with pytest.raises(BadRequest, match="no Name or Version"):
        inspect(
            wheel_bytes("anon", "1.0", metadata="Metadata-Version: 2.1\nVersion: 1.0\n"),
            "anon-1.0-py3-none-any.whl",
        )


def test_parse_declares_each_file_and_its_metadata_with_absolute_urls_and_digests():
    body = (
        b'<a href="https://files.invalid/x/r-1.0-py3-none-any.whl#sha256='
        + b"c" * 64
        + b'" data-core-metadata="sha256='
        + b"d" * 64
        + b'">r-1.0-py3-none-any.whl</a>'
        + b'<a href="../../r-1.0.tar.gz">r-1.0.tar.gz</a>'
    )
    fmt = PypiFormat()
    key = project_key("r")
    parsed = fmt.parse(key, body, "https://index.invalid/simple/r/")
    assert parsed is not None
    assert dict(parsed.files) == {
        "packages/r/r-1.0-py3-none-any.whl": FileRef(
            "https://files.invalid/x/r-1.0-py3-none-any.whl", {"sha256": "c" * 64}
        ),
        "packages/r/r-1.0-py3-none-any.whl.metadata": FileRef(
            "https://files.invalid/x/r-1.0-py3-none-any.whl.metadata", {"sha256": "d" * 64}
        ),
        "packages/r/r-1.0.tar.gz": FileRef("https://index.invalid/r-1.0.tar.gz", {}),
    }
    # Each declared file maps back to the page that declares it.
    assert {fmt.declared_by(path) for path in parsed.files} == {key}
    assert fmt.declared_by("packages/R/r-1.0.tar.gz") is None  # not a normalised project: not ours
    assert fmt.upstream_document(key) == UpstreamDocument("r/", UPSTREAM_ACCEPT)
    assert fmt.upstream_document(ROOT) == UpstreamDocument("", UPSTREAM_ACCEPT)
    # Rendered for this server, every link goes through it; the digests stay the upstream's.
    page = fmt.render(key, parsed.model, RenderContext(JSON, "http://here.invalid/repository/p/"))
    assert [(f["url"], f["hashes"]) for f in json.loads(page.body)["files"]] == [
        ("http://here.invalid/repository/p/packages/r/r-1.0-py3-none-any.whl", {"sha256": "c" * 64}),
        ("http://here.invalid/repository/p/packages/r/r-1.0.tar.gz", {}),
    ]


def test_a_page_that_is_no_page_is_refused_and_an_empty_one_is_no_document():
    fmt = PypiFormat()
    with pytest.raises(ValueError):
        fmt.parse(project_key("r"), b'{"files": 3}', "https://index.invalid/simple/r/")
    assert (
        fmt.parse(project_key("r"), b"<html><body></body></html>", "https://index.invalid/simple/r/") is None
    )


def test_a_yank_document_moves_its_projects_generation_and_a_deleted_file_leaves_its_release_key():
    fmt = PypiFormat()
    assert fmt.coordinates(".pypi/yanked/demo-pkg.json") == Coordinates(name="demo-pkg")
    assert fmt.coordinates("packages/demo-pkg/demo_pkg-1.0.tar.gz") == Coordinates("demo-pkg", "1.0")
    # Every spelling of one release file leaves (and is refused by) the key its upload is stored under.
    keys = {
        fmt.tombstone("packages/demo-pkg/demo_pkg-1.0.tar.gz"),
        fmt.tombstone("packages/demo-pkg/Demo.Pkg-1.0.0.zip"),
        parse_filename("demo_pkg-01.0.tar.gz").release_file,
    }
    assert len(keys) == 1 and None not in keys
    assert fmt.tombstone("packages/demo-pkg/demo_pkg-1.0.tar.gz.metadata") is None
    assert fmt.tombstone(".pypi/yanked/demo-pkg.json") is None


def test_a_corrupt_metadata_member_is_a_bad_request_not_a_crash():
    content = bytearray(wheel_bytes("broken", "1.0", metadata=metadata_text("broken", "1.0") + "z" * 5000))
    with zipfile.ZipFile(io.BytesIO(bytes(content))) as archive:
        info = archive.getinfo("broken-1.0.dist-info/METADATA")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for offset in range(start + 2, start + info.compress_size - 2):
        content[offset] ^= 0x5A
    with pytest.raises(BadRequest):
        inspect(bytes(content), "broken-1.0-py3-none-any.whl")


# -- what makes two filenames one release file (issue 10 item 4) ----------------------------------------
@given(
    NAMES,
    st.lists(st.integers(0, 99), min_size=1, max_size=3),
    st.sampled_from(["", "a1", "rc2", ".post3", ".dev4"]),
    st.integers(0, 2),
    st.booleans(),
    st.sampled_from(["_", "."]),
)
def test_spellings_of_one_release_file_share_a_key(name, parts, suffix, zeros, padded, separator):
    original = f"{escaped(name)}-{'.'.join(map(str, parts))}{suffix}"
    release = ".".join(f"0{p}" if padded else str(p) for p in parts) + ".0" * zeros
    spelled = f"{re.sub(r'[-_.]+', separator, name).upper()}-{release}{suffix}"
    for tail in ("-py3-none-any.whl", ".tar.gz"):
        assert parse_filename(spelled + tail).release_file == parse_filename(original + tail).release_file


def test_other_tags_builds_and_sdists_are_other_release_files():
    keys = {
        parse_filename(f).release_file
        for f in (
            "a-1.0-py3-none-any.whl",
            "a-1.0-py2.py3-none-any.whl",
            "a-1.0-1-py3-none-any.whl",
            "a-1.0.tar.gz",
            "a-1.0.1-py3-none-any.whl",
        )
    }
    assert len(keys) == 5
    assert parse_filename("a-1.0.zip").release_file == parse_filename("A-1.0.0.tar.gz").release_file
    assert (
        parse_filename("a-1.0-py3.py2-none-any.whl").release_file
        == parse_filename("a-1.0-py2.py3-none-any.whl").release_file
    )


# -- hostile upstream pages (issue 9 item 13) ----------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)//a-1.0.tar.gz",
        "JavaScript:alert(1)//a-1.0.tar.gz",
        "data:text/html,x/a-1.0.tar.gz",
        "file:///etc/a-1.0.tar.gz",
        "vbscript:x/a-1.0.tar.gz",
    ],
)
def test_upstream_links_with_other_schemes_are_dropped(url):
    html_page = f'<a href="{url}">a-1.0.tar.gz</a><a href="a-1.0.zip">a-1.0.zip</a>'.encode()
    json_page = json.dumps({"files": [{"filename": "a-1.0.tar.gz", "url": url}]}).encode()
    assert [
        f.filename for f in metadata.parse_upstream(html_page, "https://h.invalid/simple/a/", "a").files
    ] == ["a-1.0.zip"]
    assert metadata.parse_upstream(json_page, "https://h.invalid/simple/a/", "a").files == ()


def test_upstream_root_names_that_are_not_project_names_are_dropped():
    hostile = ["javascript:alert(1)", '"><script>', "../x", "ok.name", "Fine_Name"]
    as_json = json.dumps({"projects": [{"name": n} for n in hostile]}).encode()
    as_html = "".join(f"<a href='x'>{html.escape(n)}</a>" for n in hostile).encode()
    assert metadata.parse_upstream_root(as_json) == ["ok.name", "Fine_Name"]
    assert metadata.parse_upstream_root(as_html) == ["ok.name", "Fine_Name"]


@given(st.text(max_size=40))
def test_a_rendered_href_is_http_or_relative_and_never_breaks_its_attribute(text):
    for url in (text, "http://" + text, "https://h/" + text):
        href = html.unescape(metadata.safe_href(url, "../../packages/a/" + text))
        assert urlsplit(href).scheme in ("", "http", "https"), href
        assert not set(href) & set("\"'<> \t\n\\`"), href  # nothing that ends or leaves the attribute


def test_an_upstream_upload_time_is_normalised_or_dropped():
    page = {
        "files": [
            {"filename": "a-1.0.tar.gz", "url": "a-1.0.tar.gz", "upload-time": "2021-02-03T04:05:06Z"},
            {"filename": "a-1.1.tar.gz", "url": "a-1.1.tar.gz", "upload-time": "<script>"},
            {"filename": "a-1.2.tar.gz", "url": "a-1.2.tar.gz", "size": -5},
        ]
    }
    files = metadata.parse_upstream(json.dumps(page).encode(), "https://h.invalid/simple/a/", "a").files
    assert [f.upload_time for f in files] == ["2021-02-03T04:05:06.000000Z", None, None]
    assert files[2].size is None
