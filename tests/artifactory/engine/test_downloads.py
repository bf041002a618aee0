"""Downloads are counted in batches: GETs of stored files add up, HEADs and 304s do not."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import create_engine, text

from artifactory.testing.server import LiveServer


def test_downloads_are_counted_in_batches_and_survive_a_restart(tmp_path):
    live = LiveServer(tmp_path / "data", workers=2, env={"ARTIFACTORY_DOWNLOAD_FLUSH_SECONDS": "0.2"}).start()
    try:
        repo = live.create_repo("raw")
        with live.client() as admin:
            assert admin.put(f"/repository/{repo}/a.bin", content=b"a" * 100).status_code == 201
            assert admin.put(f"/repository/{repo}/b.bin", content=b"b" * 100).status_code == 201
        for _ in range(7):
            assert httpx.get(f"{live.repo_url(repo)}a.bin").status_code == 200
        etag = httpx.head(f"{live.repo_url(repo)}b.bin").headers["etag"]
        assert httpx.get(f"{live.repo_url(repo)}b.bin", headers={"If-None-Match": etag}).status_code == 304
        time.sleep(1.0)
    finally:
        live.stop()  # a clean stop writes what is still pending
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'artifactory.db'}")
    try:
        with engine.connect() as connection:
            rows = dict(
                connection.execute(
                    text("SELECT path, download_count FROM asset WHERE path IN ('a.bin', 'b.bin')")
                )
                .tuples()
                .all()
            )
            last = connection.execute(text("SELECT last_downloaded FROM asset WHERE path = 'a.bin'")).scalar()
    finally:
        engine.dispose()
    assert rows == {"a.bin": 7, "b.bin": 0}
    assert last is not None
