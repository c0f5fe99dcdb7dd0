"""Template-validated registration beside plain bulk registration, and search latency.

    .venv/bin/python bench/bench_templates.py --rows 200000 --runs 3 \
        --search-rows 2000000 [--postgres | --postgres-only] [--keep FILE]

Registration (same run, same store engine, 20,000-row transactions through
``BulkRegistrar.write_behind``, so the store writes one batch while the next is
encoded): *plain* rows are ``bench_bulk.py``'s (one URL value);
*validated* rows are registered against a published template with seven typed
attributes (string with pattern, number with bounds, date, enum, reference, a
unique serial, a restricted cost) plus the URL: checked against the template's
compiled schema, written in normal form, and their search terms indexed (one
unique check per row).  *unchecked* rows are the same values with no template
link (no check, only the URL indexed): the validated/unchecked gap is what the
check and the attribute index cost.

Search: a store of ``--search-rows`` validated identifiers (0: no search part) is
filled (its load rate is reported), then each query kind is timed ``--queries`` times through
``HandleStore.search`` (p50/p99 in ms, and p50 against the p50 of the store's point
read of a record, ``HandleStore.get``, measured just before; a page of the prefix's
listing, ``list_after``, is timed too: on SQLite it runs in the same reader thread as a
search, while a point read runs on the event loop): a unique attribute value (one hit), a
common value (first page of 100 of a third of the store), a page deep into it
(keyset ``after``), two conditions, a URL (reverse lookup), and the template.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from iinode.identifiers import HandleName, HandleValue, IndexedHandle, StringData, UrlData
from iinode.node.bulk import BulkRegistrar
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.node.templates import Template
from iinode.storage import SQLiteStore
from iinode.storage.base import HandleStore
from iinode.storage.search import SearchQuery

BATCH = 20_000
PG = "postgresql://postgres@127.0.0.1:5432/test"
PREFIX = "88.118.8"
TEMPLATE = f"{PREFIX}/template/bearing/1"
GRADES = ("P0", "P6", "P5")
DEFINITION = {
    "name": "bearing",
    "version": "1",
    "industry": "C3451",
    "status": "published",
    "attributes": [
        {"name": "model", "type": "string", "required": True,
         "constraints": {"pattern": "^[A-Z0-9-]+$", "maxLength": 32}},
        {"name": "diameter", "type": "number", "constraints": {"min": 1, "max": 500}},
        {"name": "made", "type": "date"},
        {"name": "grade", "type": "enum", "constraints": {"values": list(GRADES)}},
        {"name": "maker", "type": "reference"},
        {"name": "serial", "type": "string", "required": True, "unique": True},
        {"name": "cost", "type": "number", "access": "restricted"},
    ],
}  # fmt: skip
NODE = IndexedHandle.parse(f"300:0.NA/{PREFIX}")


def plain_row(n: int) -> list[HandleValue]:
    return [HandleValue(1, "URL", UrlData(f"http://f.cn/p/{n}"))]


def attribute_values(n: int) -> list[HandleValue]:
    texts = (
        ("model", f"M-{n % 1000}"),
        ("diameter", str(10 + n % 90)),
        ("made", f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}"),
        ("grade", GRADES[n % 3]),
        ("maker", f"{PREFIX}/FACTORY-{n % 10}"),
        ("serial", f"SN{n:010d}"),
        ("cost", f"{n % 500}.5"),
    )
    return [HandleValue(2000 + i, name, StringData(text)) for i, (name, text) in enumerate(texts)]


def validated_row(n: int) -> list[HandleValue]:
    link = HandleValue(1001, "II_TEMPLATE", StringData(TEMPLATE))
    return [*plain_row(n), link, *attribute_values(n)]


def unchecked_row(n: int) -> list[HandleValue]:
    return [*plain_row(n), *attribute_values(n)]


async def open_node(store: HandleStore, tmp: Path) -> HandleService:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp, prefix=PREFIX)
    service = HandleService(settings, store)
    await service.initialise("bench")
    if await store.get(TEMPLATE) is None:  # a kept store has it
        await service.templates.define(Template.from_json(DEFINITION, prefix=PREFIX), NODE)
    return service


async def load(service: HandleService, rows: int, make: object, start: int = 0) -> float:
    registrar = BulkRegistrar(service)
    await registrar.load_templates()
    assert callable(make)
    began = time.perf_counter()
    batch = []
    for n in range(start, start + rows):
        batch.append(registrar.encode(HandleName(PREFIX, f"P{n:010d}"), make(n)))
        if len(batch) == BATCH:
            await registrar.write_behind(batch)  # written while the next batch is encoded
            batch = []
    if batch:
        await registrar.write_behind(batch)
    await registrar.drain()
    return rows / (time.perf_counter() - began)


async def open_store(engine: str, tmp: Path) -> HandleStore:
    if engine == "sqlite":
        return SQLiteStore(tmp / f"{uuid.uuid4().hex[:8]}.sqlite3")
    from iinode.storage.postgres import PostgresStore

    return await PostgresStore.open(PG, table=f"bench_{uuid.uuid4().hex[:10]}")


async def close_store(store: HandleStore) -> None:
    drop = getattr(store, "drop", None)
    if drop is not None:
        await drop()
    await store.close()


async def registration(engine: str, rows: int, runs: int) -> None:
    rates: dict[str, list[float]] = {"plain": [], "unchecked": [], "validated": []}
    for _ in range(runs):
        for kind, make in (
            ("plain", plain_row),
            ("unchecked", unchecked_row),
            ("validated", validated_row),
        ):
            with tempfile.TemporaryDirectory() as d:
                store = await open_store(engine, Path(d))
                try:
                    service = await open_node(store, Path(d))
                    rates[kind].append(await load(service, rows, make))
                finally:
                    await close_store(store)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"{engine} registration ({rows:,} rows, median of {runs}): plain {med['plain']:,.0f}/s, "
        f"unchecked template-sized rows {med['unchecked']:,.0f}/s, "
        f"template-validated {med['validated']:,.0f}/s = "
        f"{med['validated'] / med['plain']:.2f}x plain"
    )


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def search_latency(engine: str, rows: int, queries: int, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        if keep is None or engine != "sqlite":
            store = await open_store(engine, Path(d))
        else:
            store = SQLiteStore(keep)
        try:
            service = await open_node(store, Path(d))
            if await store.get(f"{PREFIX}/P{rows - 1:010d}") is None:
                began = time.perf_counter()
                rate = await load(service, rows, validated_row)
                print(
                    f"{engine} search store: {rows:,} validated identifiers loaded in "
                    f"{time.perf_counter() - began:.0f} s ({rate:,.0f}/s)"
                )
            else:
                print(f"{engine} search store: {keep} holds the {rows:,} identifiers")
            rng = random.Random(7)
            deep = f"{PREFIX}/P{rows // 2:010d}"
            kinds = {
                "unique value (1 hit)": lambda: SearchQuery(
                    (("attr:serial", f"SN{rng.randrange(rows):010d}"),)
                ),
                "common value, first 100": lambda: SearchQuery(
                    (("attr:grade", rng.choice(GRADES)),), limit=100
                ),
                "common value, page at the middle": lambda: SearchQuery(
                    (("attr:grade", rng.choice(GRADES)),), after=deep, limit=100
                ),
                "two conditions, first 100": lambda: SearchQuery(
                    (("attr:grade", "P6"), ("attr:model", f"M-{rng.randrange(1000)}")), limit=100
                ),
                "URL reverse lookup": lambda: SearchQuery(
                    (("url", f"http://f.cn/p/{rng.randrange(rows)}"),)
                ),
                "template, first 100 under the prefix": lambda: SearchQuery(
                    (("template", TEMPLATE),), prefix=PREFIX, limit=100
                ),
            }
            reference = []  # the store's point read of a record: what a resolution costs
            for _ in range(queries):
                handle = f"{PREFIX}/P{rng.randrange(rows):010d}"
                t0 = time.perf_counter()
                assert await store.get(handle) is not None
                reference.append((time.perf_counter() - t0) * 1000)
            ref = statistics.median(reference)
            print(
                f"  {'reference: point read of a record':40s} p50 {ref:7.3f} ms  "
                f"p99 {percentile(reference, 0.99):7.3f} ms"
            )
            listing = []  # a page of the prefix's listing: the reader thread's own floor
            for _ in range(queries):
                after = f"{PREFIX}/P{rng.randrange(max(rows - 200, 1)):010d}"
                t0 = time.perf_counter()
                assert len(await store.list_after(PREFIX, after, limit=100)) == 100
                listing.append((time.perf_counter() - t0) * 1000)
            print(
                f"  {'reference: a listing page of 100':40s} p50 "
                f"{statistics.median(listing):7.3f} ms  p99 {percentile(listing, 0.99):7.3f} ms"
            )
            for name, make in kinds.items():
                samples = []
                found = 0
                for _ in range(queries):
                    query = make()
                    t0 = time.perf_counter()
                    found += len(await store.search(query))
                    samples.append((time.perf_counter() - t0) * 1000)
                assert found > 0, name
                p50 = statistics.median(samples)
                print(
                    f"  {name:40s} p50 {p50:7.3f} ms  p99 {percentile(samples, 0.99):7.3f} ms"
                    f"  ({found / queries:.0f} hits/query, {p50 / ref:.1f}x a point read)"
                )
        finally:
            await close_store(store)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--search-rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--postgres", action="store_true", help="SQLite, then PostgreSQL")
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the SQLite search store in this file (a new one is loaded; one holding "
        "--search-rows identifiers is reused)",
    )
    args = parser.parse_args()
    engines = ["sqlite", "postgres"] if args.postgres else ["sqlite"]
    if args.postgres_only:
        engines = ["postgres"]
    for engine in engines:
        if args.runs > 0:  # 0: search only
            await registration(engine, args.rows, args.runs)
    for engine in engines:
        if args.search_rows > 0:  # 0: registration only
            await search_latency(engine, args.search_rows, args.queries, args.keep)


if __name__ == "__main__":
    asyncio.run(main())
