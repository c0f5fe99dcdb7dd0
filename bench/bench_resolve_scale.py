"""Resolution latency from a large store: HandleService.answer vs the store's get alone.

    .venv/bin/python bench/bench_resolve_scale.py --count 10000000          # the figure of record
    .venv/bin/python bench/bench_resolve_scale.py --count 200000 --runs 3   # a quick run
    .venv/bin/python bench/bench_resolve_scale.py --count 1000000 --postgres

Bulk-loads ``--count`` identifiers (one URL value each, plus the default
HS_ADMIN) through ``BulkRegistrar``, the path ``iinode bulk-load`` uses, then
times single in-process calls for random existing and random missing handles:

* reference: ``store.get(handle)``, the indexed point read alone;
* iinode: ``HandleService.answer(handle)``: routing, the read, decoding and
  permission filtering (a missing handle raises ``HandleNotFound``).

The two are timed interleaved, call by call, so both see the same cache and
machine state.  The SQLite file is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from iinode.errors import HandleNotFound
from iinode.identifiers import HandleName, HandleValue, UrlData
from iinode.node.service import BulkRegistrar, HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import SQLiteStore
from iinode.storage.base import HandleStore

PREFIX = "88.118.8"
BATCH = 50_000
PG = "postgresql://postgres@127.0.0.1:5432/test"


def handle(n: int) -> HandleName:
    return HandleName(PREFIX, f"P{n:010d}")


async def load(service: HandleService, count: int, label: str) -> float:
    registrar = BulkRegistrar(service)
    start = time.perf_counter()
    columns = (
        TextColumn(f"loading {label}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} ids"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task("load", total=count)
        for first in range(0, count, BATCH):
            rows = [
                registrar.encode(handle(n), [HandleValue(1, "URL", UrlData(f"http://f.cn/p/{n}"))])
                for n in range(first, min(first + BATCH, count))
            ]
            await registrar.write(rows)
            progress.advance(task, len(rows))
    return count / (time.perf_counter() - start)


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def measure(
    service: HandleService, store: HandleStore, count: int, samples: int, seed: int
) -> dict[str, dict[str, list[float]]]:
    """Per-call latency in microseconds, by kind (existing/missing) and path."""
    rng = random.Random(seed)
    out: dict[str, dict[str, list[float]]] = {}
    for kind in ("existing", "missing"):
        times: dict[str, list[float]] = {"get": [], "answer": []}
        for i in range(samples):
            n = rng.randrange(count)
            # A missing handle sorts between two loaded ones, so its lookup walks
            # the index to a random leaf like a hit does.
            name = handle(n) if kind == "existing" else HandleName(PREFIX, f"P{n:010d}-")
            key = str(name)
            order = ("get", "answer") if i % 2 else ("answer", "get")
            for path in order:
                t0 = time.perf_counter_ns()
                if path == "get":
                    raw = await store.get(key)
                    assert (raw is None) == (kind == "missing")
                else:
                    try:
                        await service.answer(name)
                    except HandleNotFound:
                        assert kind == "missing"
                times[path].append((time.perf_counter_ns() - t0) / 1000)
        out[kind] = times
    return out


def report(results: list[dict[str, dict[str, list[float]]]]) -> None:
    for kind in ("existing", "missing"):
        for path, label in (("get", "store.get (reference)"), ("answer", "HandleService.answer")):
            runs = [r[kind][path] for r in results]
            p50 = statistics.median(pct(s, 50) for s in runs)
            p99 = statistics.median(pct(s, 99) for s in runs)
            p999 = statistics.median(pct(s, 99.9) for s in runs)
            print(
                f"  {kind:8} {label:22} p50 {p50:8.1f} µs  p99 {p99:8.1f} µs  p99.9 {p999:8.1f} µs"
            )
        ratio = statistics.median(
            pct(r[kind]["answer"], 99) / pct(r[kind]["get"], 99) for r in results
        )
        print(f"  {kind:8} ratio answer/get at p99: {ratio:.2f}")


async def run_store(label: str, store: HandleStore, tmp: Path, args: argparse.Namespace) -> None:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp, prefix=PREFIX, telemetry=False)
    service = HandleService(settings, store)
    await service.initialise("x")
    rate = await load(service, args.count, label)
    print(f"{label}: loaded {args.count:,} identifiers at {rate:,.0f} ids/s")
    await measure(service, store, args.count, min(2000, args.samples), seed=0)  # warm-up
    results = [
        await measure(service, store, args.count, args.samples, seed=run + 1)
        for run in range(args.runs)
    ]
    print(
        f"{label}: {args.samples:,} existing + {args.samples:,} missing handles per run, "
        f"median of {args.runs} runs"
    )
    report(results)


def disk_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="also PostgreSQL on 127.0.0.1")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite file goes")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iinode-scale-", dir=args.dir))
    try:
        store = SQLiteStore(tmp / "handles.sqlite3")
        try:
            await run_store("sqlite", store, tmp, args)
        finally:
            await store.close()
        size = disk_size(tmp) / 2**30
        print(f"sqlite: {size:.2f} GiB on disk")
        if args.postgres:
            from iinode.storage.postgres import PostgresStore

            pg = await PostgresStore.open(PG, table=f"scale_{uuid.uuid4().hex[:10]}")
            try:
                await run_store("postgres", pg, tmp, args)
            finally:
                await pg.drop()
                await pg.close()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
