"""Peak memory of one compaction merge, by ``compact_max_rows``, each in a fresh process.

    .venv/bin/python bench/telemetry_compaction.py [--files 40] [--rows 50000] [--runs 3]

Writes ``--files`` files of ``--rows`` readings into one partition, then runs
``compact_crowded`` with ``compact_max_rows`` of 1 M and 2 M; reports the
process's peak RSS growth during the merge (median of ``--runs``) next to the
RSS of merely reading the same rows into one Arrow table (the reference).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import statistics
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from iinode.telemetry.model import Reading
from iinode.telemetry.store import SCHEMA, ParquetStore, StoreSettings

T0 = 1_767_225_600_000_000


def fill(root: Path, files: int, rows: int) -> None:
    store = ParquetStore(StoreSettings(root))
    for f in range(files):
        base = T0 + f * rows * 1000
        store.append(
            [
                Reading(f"88.1/M{i % 100:03d}", f"t{i % 7}", base + i * 1000, float(i))
                for i in range(rows)
            ]
        )


def merge(root: str, max_rows: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if max_rows:
        settings = StoreSettings(Path(root), compact_max_rows=max_rows, compact_small_rows=max_rows)
        ParquetStore(settings).compact_crowded(2)
    else:
        files = sorted(Path(root).glob("prefix=*/day=*/part-*.parquet"))
        pq.read_table(files, schema=SCHEMA, partitioning=None)
    out.put((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    print(f"{args.files} files of {args.rows:,} rows; peak RSS growth, median of {args.runs} runs")
    for label, max_rows in (("read all rows (reference)", 0), ("merge, 1 M rows", 1_000_000),
                            ("merge, 2 M rows", 2_000_000)):  # fmt: skip
        samples = []
        for _ in range(args.runs):
            work = Path(tempfile.mkdtemp(prefix="iinode-compact-"))
            try:
                fill(work, args.files, args.rows)
                out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
                proc = ctx.Process(target=merge, args=(str(work), max_rows, out))
                proc.start()
                samples.append(out.get())
                proc.join()
            finally:
                shutil.rmtree(work, ignore_errors=True)
        print(f"  {label:28s} {statistics.median(samples):8.1f} MB")


if __name__ == "__main__":
    main()
