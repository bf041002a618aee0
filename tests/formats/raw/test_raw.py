"""The raw format over HTTP, on SQLite and PostgreSQL: what a client of a plain file server expects."""

import hashlib
import socket

import httpx
import pytest


@pytest.fixture(scope="module")
def raw(any_server):
    return any_server.create_repo("raw")


@pytest.fixture(scope="module")
def admin(any_server):
    with any_server.client() as client:
        yield client


def test_head_gives_length_etag_and_last_modified_without_body(any_server, raw, admin):
    admin.put(f"/repository/{raw}/docs/readme.txt", content=b"read me")
    response = httpx.head(f"{any_server.repo_url(raw)}docs/readme.txt")
    assert response.status_code == 200
    assert response.headers["content-length"] == "7"
    assert response.headers["etag"] == f'"{hashlib.sha256(b"read me").hexdigest()}"'
    assert "last-modified" in response.headers
    assert response.content == b""


def test_conditional_get_answers_304_for_matching_etag_and_modified_since(any_server, raw, admin):
    admin.put(f"/repository/{raw}/cond.bin", content=b"abc")
    first = httpx.get(f"{any_server.repo_url(raw)}cond.bin")
    by_etag = httpx.get(
        f"{any_server.repo_url(raw)}cond.bin", headers={"If-None-Match": first.headers["etag"]}
    )
    assert by_etag.status_code == 304
    by_date = httpx.get(
        f"{any_server.repo_url(raw)}cond.bin", headers={"If-Modified-Since": first.headers["last-modified"]}
    )
    assert by_date.status_code == 304
    stale = httpx.get(f"{any_server.repo_url(raw)}cond.bin", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.content == b"abc"


@pytest.mark.parametrize(
    "header, status, body",
    [
        ("bytes=0-3", 206, b"0123"),
        ("bytes=6-", 206, b"6789"),
        ("bytes=-2", 206, b"89"),
        ("bytes=8-100", 206, b"89"),
        ("bytes=10-", 416, b""),
        ("bytes=0-1,4-5", 200, b"0123456789"),
    ],
)
def test_range_requests(any_server, raw, admin, header, status, body):
    admin.put(f"/repository/{raw}/digits.txt", content=b"0123456789")
    response = httpx.get(f"{any_server.repo_url(raw)}digits.txt", headers={"Range": header})
    assert response.status_code == status
    if status != 416:
        assert response.content == body
    else:
        assert response.headers["content-range"] == "bytes */10"


def test_range_on_large_file_streams_the_right_slice(any_server, raw, admin):
    data = bytes(range(256)) * 4096  # 1 MiB, past the inline-read limit
    admin.put(f"/repository/{raw}/big.bin", content=data)
    response = httpx.get(f"{any_server.repo_url(raw)}big.bin", headers={"Range": "bytes=300000-800000"})
    assert response.status_code == 206
    assert response.content == data[300000:800001]
    assert response.headers["content-range"] == f"bytes 300000-800000/{len(data)}"


def test_checksum_headers_verified_on_upload_and_returned_on_download(any_server, raw, admin):
    data = b"checked content"
    headers = {
        "X-Checksum-Sha256": hashlib.sha256(data).hexdigest(),
        "X-Checksum-Sha1": hashlib.sha1(data).hexdigest(),
        "X-Checksum-Md5": hashlib.md5(data).hexdigest(),
    }
    assert admin.put(f"/repository/{raw}/ok.txt", content=data, headers=headers).status_code == 201
    response = httpx.get(f"{any_server.repo_url(raw)}ok.txt")
    for name, value in headers.items():
        assert response.headers[name] == value


@pytest.mark.parametrize("header", ["X-Checksum-Sha256", "X-Checksum-Sha1", "X-Checksum-Md5"])
def test_checksum_mismatch_answers_400_and_stores_nothing(any_server, raw, admin, header):
    data = f"mismatch {header}".encode()
    wrong = {"X-Checksum-Sha256": "0" * 64, "X-Checksum-Sha1": "0" * 40, "X-Checksum-Md5": "0" * 32}[header]
    response = admin.put(f"/repository/{raw}/bad-{header}.txt", content=data, headers={header: wrong})
    assert response.status_code == 400
    assert "mismatch" in response.json()["error"]
    assert admin.get(f"/repository/{raw}/bad-{header}.txt").status_code == 404
    objects = any_server.data_dir / "blobs" / "objects"
    digest = hashlib.sha256(data).hexdigest()
    assert not list(objects.rglob(digest))
    assert not list((any_server.data_dir / "blobs" / "tmp").iterdir())


def test_malformed_checksum_header_answers_400(any_server, raw, admin):
    response = admin.put(f"/repository/{raw}/m.txt", content=b"x", headers={"X-Checksum-Sha256": "not-hex"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "path, content_type",
    [
        ("a.json", "application/json"),
        ("a.tar.gz", "application/x-tar"),
        ("a.html", "text/html"),
        ("a.unknownext", "application/octet-stream"),
    ],
)
def test_content_type_by_extension_with_nosniff_and_attachment(any_server, raw, admin, path, content_type):
    admin.put(f"/repository/{raw}/ct/{path}", content=b"<script>alert(1)</script>")
    response = httpx.get(f"{any_server.repo_url(raw)}ct/{path}")
    assert response.headers["content-type"].startswith(content_type)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith("attachment")


def test_inline_display_only_when_the_repository_allows_it(any_server, admin):
    inline = any_server.create_repo("raw", allow_inline=True)
    admin.put(f"/repository/{inline}/page.html", content=b"<p>hi</p>")
    response = httpx.get(f"{any_server.repo_url(inline)}page.html")
    assert response.headers["content-disposition"] == "inline"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_folder_listing_is_html_with_folders_and_files(any_server, raw, admin):
    admin.put(f"/repository/{raw}/tree/sub/leaf.txt", content=b"1")
    admin.put(f"/repository/{raw}/tree/top.txt", content=b"22")
    response = httpx.get(f"{any_server.repo_url(raw)}tree/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="./sub/"' in response.text and 'href="./top.txt"' in response.text
    redirect = httpx.get(f"{any_server.repo_url(raw)}tree")
    assert redirect.status_code == 301
    assert httpx.get(f"{any_server.repo_url(raw)}no-such-folder/").status_code == 404


def test_listing_escapes_html_in_names(any_server, raw, admin):
    admin.put(f"/repository/{raw}/esc/%3Cb%3Ex.txt", content=b"1")
    response = httpx.get(f"{any_server.repo_url(raw)}esc/")
    assert "<b>" not in response.text and "&lt;b&gt;x.txt" in response.text


def test_delete_removes_file_and_second_delete_answers_404(any_server, raw, admin):
    admin.put(f"/repository/{raw}/gone.txt", content=b"bye")
    assert admin.delete(f"/repository/{raw}/gone.txt").status_code == 204
    assert admin.get(f"/repository/{raw}/gone.txt").status_code == 404
    assert admin.delete(f"/repository/{raw}/gone.txt").status_code == 404


def test_overwrite_replaces_content_under_allow_policy(any_server, raw, admin):
    admin.put(f"/repository/{raw}/v.txt", content=b"one")
    admin.put(f"/repository/{raw}/v.txt", content=b"two")
    assert admin.get(f"/repository/{raw}/v.txt").content == b"two"


def test_allow_once_refuses_redeploy_and_deny_refuses_all_writes(any_server, admin):
    once = any_server.create_repo("raw", write_policy="allow_once")
    assert admin.put(f"/repository/{once}/f.txt", content=b"1").status_code == 201
    again = admin.put(f"/repository/{once}/f.txt", content=b"2")
    assert again.status_code == 400
    assert "allow_once" in again.json()["error"]
    assert admin.get(f"/repository/{once}/f.txt").content == b"1"
    deny = any_server.create_repo("raw", write_policy="deny")
    refused = admin.put(f"/repository/{deny}/f.txt", content=b"1")
    assert refused.status_code == 400 and "read-only" in refused.json()["error"]


def test_identical_content_in_two_repositories_is_one_blob(any_server, admin):
    first, second = any_server.create_repo("raw"), any_server.create_repo("raw")
    data = b"shared bytes for dedup test" * 1000  # a file in the blob store, not in a row
    admin.put(f"/repository/{first}/a.bin", content=data)
    admin.put(f"/repository/{second}/b.bin", content=data)
    digest = hashlib.sha256(data).hexdigest()
    assert len(list((any_server.data_dir / "blobs" / "objects").rglob(digest))) == 1


def test_proxy_repository_refuses_uploads_with_405(any_server, admin):
    proxy = any_server.create_repo("raw", "proxy", url="http://127.0.0.1:9/")
    response = admin.put(f"/repository/{proxy}/f.txt", content=b"1")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD, DELETE"


def test_oversize_upload_answers_413_and_leaves_nothing(any_server, admin):
    small = any_server.create_repo("raw", max_upload_bytes=1000)
    response = admin.put(f"/repository/{small}/big.bin", content=b"x" * 5000)
    assert response.status_code == 413
    assert admin.get(f"/repository/{small}/big.bin").status_code == 404
    assert not list((any_server.data_dir / "blobs" / "tmp").iterdir())


def test_upload_cut_off_mid_stream_leaves_no_asset_and_no_blob(any_server, raw):
    import time

    marker = b"cut-off-upload-marker" * 1000
    with socket.create_connection(("127.0.0.1", any_server.port)) as sock:
        import base64

        auth = base64.b64encode(b"admin:admin-test-password").decode()
        sock.sendall(
            (
                f"PUT /repository/{raw}/partial.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
                f"Content-Length: 10000000\r\n\r\n"
            ).encode()
            + marker
        )
        time.sleep(0.3)
    time.sleep(0.7)
    assert httpx.get(f"{any_server.repo_url(raw)}partial.bin").status_code == 404
    assert not list((any_server.data_dir / "blobs" / "tmp").iterdir())


def test_a_method_the_format_does_not_serve_answers_405_json(any_server, raw, admin):
    response = admin.post(f"/repository/{raw}/anything.txt", content=b"x")
    assert response.status_code == 405
    assert "error" in response.json()
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "HEAD", "PUT", "DELETE"}
