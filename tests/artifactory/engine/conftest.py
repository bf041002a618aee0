"""Fixtures of the engine's in-process tests."""

import pytest


@pytest.fixture
def raw_companions(state, monkeypatch):
    """Raw's format, for tests of the engine's companions: `<file>.metadata` and `<file>.meta`
    belong to `<file>` (`Format.companions`, `Format.companion_of`)."""
    fmt = state.engine.formats["raw"]
    suffixes = (".metadata", ".meta")
    monkeypatch.setattr(fmt, "companions", lambda path: tuple(path + suffix for suffix in suffixes))
    monkeypatch.setattr(
        fmt, "companion_of", lambda path: path.rsplit(".", 1)[0] if path.endswith(suffixes) else None
    )
    return fmt
