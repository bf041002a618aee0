"""The token secret made once in the data directory: the workers of a server start together, and
every one of them must end up with the same secret, whoever writes the file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from artifactory.settings import Settings
from artifactory.state import _token_secret


def secret_of(data_dir: str, start: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue) -> None:
    start.wait()
    out.put(_token_secret(Settings(data_dir=Path(data_dir))))


@pytest.mark.parametrize("round_", range(3))
def test_processes_starting_together_share_one_secret(tmp_path: Path, round_: int) -> None:
    context = multiprocessing.get_context("fork")
    count = 8
    start, out = context.Barrier(count), context.Queue()
    processes = [context.Process(target=secret_of, args=(str(tmp_path), start, out)) for _ in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert [p.exitcode for p in processes] == [0] * count
    secrets = {out.get(timeout=5) for _ in range(count)}
    assert len(secrets) == 1
    assert (tmp_path / "token.secret").read_bytes() == secrets.pop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token.secret"]  # no temporary left


def test_a_secret_made_once_is_read_back(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = _token_secret(settings)
    assert len(first) == 64
    assert _token_secret(settings) == first


def test_an_empty_secret_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "token.secret").write_bytes(b"\n")
    with pytest.raises(RuntimeError, match="is empty: delete it"):
        _token_secret(Settings(data_dir=tmp_path))
