"""Where a test finds the bytes a server stored: the blob store's file, or, for a small blob, its
database row (`blob.data`, `Settings.inline_blob_bytes`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import create_engine, text

from artifactory.testing.server import LiveServer


def database_url(server: LiveServer) -> str:
    return server.database_url or f"sqlite:///{server.data_dir / 'artifactory.db'}"


def blob_file(server: LiveServer, sha256: str) -> Path:
    return server.data_dir / "blobs" / "objects" / "sha256" / sha256[:2] / sha256[2:4] / sha256


def row_bytes(server: LiveServer, sha256: str) -> bytes | None:
    """What the blob's row keeps, or None (no row, or its bytes are a file)."""
    engine = create_engine(database_url(server))
    try:
        with engine.connect() as connection:
            data = connection.execute(text("SELECT data FROM blob WHERE sha256 = :s"), {"s": sha256}).scalar()
    finally:
        engine.dispose()
    return None if data is None else bytes(data)


def blob_bytes(server: LiveServer, sha256: str) -> bytes | None:
    """The bytes stored for `sha256`, from wherever they are kept; None when nowhere."""
    path = blob_file(server, sha256)
    if path.is_file():
        return path.read_bytes()
    return row_bytes(server, sha256)


def stored(server: LiveServer, data: bytes) -> bool:
    """Whether `data` is stored (as a file or in its row)."""
    return blob_bytes(server, hashlib.sha256(data).hexdigest()) is not None
