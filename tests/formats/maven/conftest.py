"""Fixtures of the maven tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.formats.maven.support import M2, StaticServer


@pytest.fixture(scope="module")
def m2_upstream() -> Iterator[StaticServer]:
    if not (M2 / "org" / "apache" / "maven" / "plugins").is_dir():
        pytest.skip("~/.m2/repository holds no Maven plugins")
    with StaticServer(M2) as static:
        yield static
