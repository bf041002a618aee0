"""Export/import throughput against a plain `tar` of the same blob files.

    python bench/transfer.py [--mib 200] [--gzip]

Fills a raw hosted repository through a live server (SQLite, filesystem blobs) with about `--mib`
MiB of random bytes (an eighth as 100 KiB files, the rest as 8 MiB ones, so both per-file and
per-byte costs show), stops the server, then times, one after another on the same machine:

- `artifactory export REPO FILE.tar`  against  `tar cf` of the repository's blob files;
- `artifactory import FILE.tar --as COPY` into an empty data dir  against  `tar xf` of the plain
  tar into an empty dir, and `tar xf` followed by `sync` (import fsyncs every blob it stores);
- with `--gzip`, the same for `.tar.gz` (export uses gzip level 1) against `tar czf`/`tar xzf`.

MiB/s is the repository's blob bytes divided by wall-clock time. Rows for artifactory give the whole
command (Python start-up and migrations included) and, in brackets, the time the command itself
reports in its --json summary. Files come from os.urandom, so they neither compress nor deduplicate,
and everything lives in one temporary directory that is removed at the end; nothing is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from artifactory.testing.server import LiveServer  # noqa: E402

MIB = 1024 * 1024
REPO = "bench"


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTORY_")}


def artifactory(data_dir: Path, *args: str) -> tuple[float, dict]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "artifactory", *args, "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=environment(),
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"artifactory {' '.join(args)} failed:\n{result.stderr}")
    return elapsed, json.loads(result.stdout.strip().splitlines()[-1])


def timed(*command: str, cwd: Path | None = None) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, cwd=cwd)
    return time.monotonic() - started


def fill(data_dir: Path, total: int) -> int:
    """Upload about `total` bytes into the raw repository REPO; returns the bytes stored."""
    live = LiveServer(data_dir).start()
    stored = 0
    try:
        live.create_repo("raw", name=REPO)
        small, large = 100 * 1024, 8 * MIB
        sizes = [small] * max(1, total // 8 // small)
        sizes += [large] * max(1, (total - sum(sizes)) // large)
        with live.client() as client:
            for i, size in enumerate(sizes):
                response = client.put(f"/repository/{REPO}/files/{i:05d}.bin", content=os.urandom(size))
                if response.status_code != 201:
                    raise SystemExit(f"upload failed: {response.status_code} {response.text}")
                stored += size
        print(f"stored {len(sizes)} files, {stored / MIB:.0f} MiB", file=sys.stderr)
    finally:
        live.stop()
    return stored


def row(label: str, seconds: float, size: int, baseline: float | None, own: float | None = None) -> str:
    rate = size / MIB / seconds
    inner = f" [{size / MIB / own:.0f}]" if own else ""
    ratio = f"{baseline / seconds:.2f}x" if baseline else "1.00x"
    return f"| {label} | {seconds:.2f} | {rate:.0f}{inner} | {ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=200, help="MiB of blobs to move (default 200)")
    parser.add_argument("--gzip", action="store_true", help="also compare .tar.gz archives")
    args = parser.parse_args()
    if shutil.which("tar") is None:
        raise SystemExit("needs tar")
    with tempfile.TemporaryDirectory(prefix="transfer-bench-") as tmp:
        work = Path(tmp)
        source = work / "source"
        size = fill(source, args.mib * MIB)
        objects = source / "blobs" / "objects"
        lines = [
            f"{size / MIB:.0f} MiB of blobs; MiB/s of the repository's blob bytes "
            "(artifactory: whole command [the command's own timing]); speed relative to tar",
            "",
            "| operation | seconds | MiB/s | vs tar |",
            "|---|---|---|---|",
        ]
        variants = [("tar", "", "-f")] + ([("tar.gz", "z", "-zf")] if args.gzip else [])
        for suffix, _, flags in variants:
            archive = work / f"export.{suffix}"
            plain = work / f"plain.{suffix}"
            tar_out = timed("tar", "-c" + flags[1:], str(plain), "-C", str(objects), ".")
            ours_out, report = artifactory(source, "export", REPO, str(archive))
            lines.append(row(f"`tar c{flags[1:-1]}f` blob files", tar_out, size, None))
            lines.append(row(f"`artifactory export` .{suffix}", ours_out, size, tar_out, report["seconds"]))

            extracted = work / f"extracted-{suffix}"
            extracted.mkdir()
            tar_in = timed("tar", "-x" + flags[1:], str(plain), "-C", str(extracted))
            synced = work / f"synced-{suffix}"
            synced.mkdir()
            tar_sync = timed("sh", "-c", f"tar -x{flags[1:]} '{plain}' -C '{synced}' && sync")
            target = work / f"imported-{suffix}"
            ours_in, report = artifactory(target, "import", str(archive), "--as", "copy")
            lines.append(row(f"`tar x{flags[1:-1]}f`", tar_in, size, None))
            lines.append(row(f"`tar x{flags[1:-1]}f` + sync", tar_sync, size, tar_in))
            lines.append(row(f"`artifactory import` .{suffix}", ours_in, size, tar_in, report["seconds"]))
            for folder in (extracted, synced, target):
                shutil.rmtree(folder)
            archive.unlink()
            plain.unlink()
        print("\n".join(lines))


if __name__ == "__main__":
    main()
