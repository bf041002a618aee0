"""Fixtures shared by the npm tests: an admin client of the module's server (SQLite and
PostgreSQL, through `any_server`) and a tiny upstream registry started per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.formats.npm.helpers import TinyRegistry


@pytest.fixture(scope="module")
def admin(any_server) -> Iterator[httpx.Client]:
    with any_server.client() as client:
        yield client


@pytest.fixture
def tiny() -> Iterator[TinyRegistry]:
    registry = TinyRegistry()
    try:
        yield registry
    finally:
        registry.stop()
