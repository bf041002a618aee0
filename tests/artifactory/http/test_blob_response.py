"""BlobResponse reads a blob's bytes from its fallback (a database row that keeps them) when the
blob store has none, whole, by range and for HEAD; with neither it answers 500, never a 200 without
a body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from artifactory.http.responses import BlobResponse

DATA = b"0123456789abcdef"


def answer(response: BlobResponse, method: str = "GET") -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    anyio.run(response, {"type": "http", "method": method, "extensions": {}}, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def kept(data: bytes | None):
    async def fallback() -> bytes | None:
        return data

    return fallback


@pytest.mark.parametrize(
    ("start", "end", "full", "method", "expected"),
    [(0, 16, True, "GET", DATA), (3, 9, False, "GET", DATA[3:9]), (0, 16, True, "HEAD", b"")],
)
def test_bytes_come_from_the_fallback_when_no_file_is(tmp_path: Path, start, end, full, method, expected):
    status = 200 if full else 206
    response = BlobResponse(status, {}, None, tmp_path / "missing", start, end, full, kept(DATA))
    assert answer(response, method) == (status, expected)


def test_no_file_and_no_kept_bytes_is_a_500(tmp_path: Path):
    response = BlobResponse(200, {}, None, tmp_path / "missing", 0, 16, True, kept(None))
    status, body = answer(response)
    assert status == 500 and b"cannot be read" in body


class _NoObjects:
    """A blob store without local files (S3's kind) that holds no object at all."""

    def read(self, sha256: str, start: int = 0, end: int | None = None):
        raise KeyError(sha256)  # as the S3 driver does, when asked


def test_a_store_without_files_and_without_the_object_falls_back_too():
    from artifactory.serve import _chunks

    chunks = _chunks(_NoObjects(), "0" * 64, 0, None)  # type: ignore[arg-type]
    response = BlobResponse(200, {}, chunks, None, 0, 16, True, kept(DATA))
    assert answer(response) == (200, DATA)
    ranged = BlobResponse(206, {}, _chunks(_NoObjects(), "0" * 64, 2, 5), None, 2, 5, False, kept(DATA))  # type: ignore[arg-type]
    assert answer(ranged) == (206, DATA[2:5])
