import hashlib


def test_put_then_get_returns_same_bytes_on_both_databases(any_server):
    name = any_server.create_repo("raw")
    data = b"hello world" * 100
    with any_server.client() as admin:
        put = admin.put(f"/repository/{name}/dir/file.bin", content=data)
        assert put.status_code == 201, put.text
        got = admin.get(f"/repository/{name}/dir/file.bin")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["x-checksum-sha256"] == hashlib.sha256(data).hexdigest()
