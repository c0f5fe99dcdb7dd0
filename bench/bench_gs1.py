"""GS1 Digital Link resolve requests/s beside plain ``GET /api/handles`` in the same run.

    .venv/bin/python bench/bench_gs1.py --keys 2000 --runs 5 --seconds 2

The node's app (``create_app``) over a SQLite store holding ``--keys`` GTINs, each
a record ``88.118.8/gs1/01/<gtin>`` with two links (the default ``gs1:pip`` and
a ``gs1:recipeInfo``) plus as many plain handles ``88.118.8/P<n>``.  Requests are
ASGI calls made in process (no sockets, no HTTP client: the cost measured is the
app's), ``--concurrency`` at a time, cycling through the keys; the kinds of request
alternate within each run and the medians of ``--runs`` runs are reported:

* ``handles``: ``GET /api/handles/88.118.8/P<n>`` (what ``bench_http.py`` loads);
* ``gs1``: ``GET /01/<gtin>``, a 307 to the default link;
* ``gs1 linkType``: ``GET /01/<gtin>?linkType=gs1:recipeInfo``;
* ``gs1 lot``: ``GET /01/<gtin>/10/LOT1/21/S1`` (three records read, walking up);
* ``gs1 compressed``: the compressed form of ``/01/<gtin>``;
* ``gs1 linkset``: ``GET /01/<gtin>?linkType=linkset`` (JSON body);
* ``... cold``: the node's change counter is bumped before each request, as a write
  does, so neither the REST answer cache nor the resolver's caches answer.

Every answer is asked once before the warm runs (so they measure kept answers, as a
node serving a catalogue of products does), and the cold runs come last.  Every
answer's status is checked; a wrong one fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iinode.api.app import create_app
from iinode.api.gs1_links import LINK_TYPE, handle_for
from iinode.gs1 import Link, check_digit, compress, parse_path
from iinode.identifiers import HandleName, HandleValue, StringData, UrlData
from iinode.node.bulk import BulkRegistrar
from iinode.node.changes import ChangeCounter
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import SQLiteStore

PREFIX = "88.118.8"


def gtin(n: int) -> str:
    body = f"0950600{n:06d}"
    return body + str(check_digit(body))


def link_value(index: int, link: Link) -> HandleValue:
    return HandleValue(index, LINK_TYPE, StringData(link.to_value_text()))


async def populate(service: HandleService, keys: int) -> None:
    reg = BulkRegistrar(service)
    rows = []
    for n in range(keys):
        key = parse_path(f"/01/{gtin(n)}")
        values = [
            link_value(500, Link("gs1:pip", f"https://b.example/{n}", "Product", default=True)),
            link_value(501, Link("gs1:recipeInfo", f"https://b.example/r/{n}", "Recipes")),
        ]
        rows.append(reg.encode(handle_for(PREFIX, key), values))
        rows.append(
            reg.encode(
                HandleName(PREFIX, f"P{n}"), [HandleValue(1, "URL", UrlData(f"http://f.cn/{n}"))]
            )
        )
    await reg.write(rows)


Kind = tuple[str, Callable[[int], str], int, bool]  # name, target, status, cold


def kinds(keys: int) -> list[Kind]:
    compressed = [compress(parse_path(f"/01/{gtin(n)}")) for n in range(keys)]
    return [
        ("handles", lambda n: f"/api/handles/{PREFIX}/P{n}", 200, False),
        ("gs1", lambda n: f"/01/{gtin(n)}", 307, False),
        ("gs1 linkType", lambda n: f"/01/{gtin(n)}?linkType=gs1:recipeInfo", 307, False),
        ("gs1 lot", lambda n: f"/01/{gtin(n)}/10/LOT1/21/S1", 307, False),
        ("gs1 compressed", lambda n: f"/{compressed[n]}", 307, False),
        ("gs1 linkset", lambda n: f"/01/{gtin(n)}?linkType=linkset", 200, False),
        ("handles cold", lambda n: f"/api/handles/{PREFIX}/P{n}", 200, True),
        ("gs1 cold", lambda n: f"/01/{gtin(n)}", 307, True),
        ("gs1 lot cold", lambda n: f"/01/{gtin(n)}/10/LOT1/21/S1", 307, True),
    ]


async def call(app: Any, target: str) -> int:
    path, _, query = target.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": [(b"host", b"node")],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def load(
    app: Any, changes: ChangeCounter, kind: Kind, keys: int, seconds: float, concurrency: int
) -> float:
    name, target, expected, cold = kind
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        n = offset
        while time.perf_counter() < deadline:
            if cold:  # as after a write: every kept answer is dropped
                changes.bump()
            status = await call(app, target(n % keys))
            if status != expected:
                raise RuntimeError(f"{name}: {target(n % keys)} answered {status}")
            n += concurrency
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        settings = NodeSettings(role=Role.ENTERPRISE, data_dir=Path(d), prefix=PREFIX)
        store = SQLiteStore(Path(d) / "h.sqlite3")
        service = HandleService(settings, store)
        await service.initialise("x")
        await populate(service, args.keys)
        app = create_app(service)
        todo = kinds(args.keys)
        results: dict[str, list[float]] = {kind[0]: [] for kind in todo}
        warm = [kind for kind in todo if not kind[3]]
        cold = [kind for kind in todo if kind[3]]
        for _, target, expected, _ in warm:  # every answer once, so warm runs are all hits
            for n in range(args.keys):
                assert await call(app, target(n)) == expected
        for group in (warm, cold):  # the cold runs last: they empty the caches
            for _ in range(args.runs):
                for kind in group:
                    rate = await load(
                        app, service.changes, kind, args.keys, args.seconds, args.concurrency
                    )
                    results[kind[0]].append(rate)
        await store.close()
    base = {cold: statistics.median(results["handles cold" if cold else "handles"])
            for cold in (False, True)}  # fmt: skip
    for name, rates in results.items():
        med = statistics.median(rates)
        reference = "handles cold" if name.endswith("cold") else "handles"
        ratio = med / base[name.endswith("cold")]
        print(f"{name:15} {med:10,.0f} req/s  ({ratio:.2f} x {reference})")
    print(f"medians of {args.runs} runs of {args.seconds:g} s, {args.keys} keys, "
          f"{args.concurrency} requests in flight, in-process ASGI")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
