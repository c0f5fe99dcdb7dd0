"""Benchmark: monitoring events forwarded enterprise -> province -> national.

Runs the province and national nodes as separate uvicorn processes on
127.0.0.1, fills the enterprise outbox, and times until the national store holds
every event.  In the same run it measures the raw ceilings of what that path is
built on: SQLite inserts (WAL, synchronous=FULL, same batch size) and bare HTTP
POSTs of a same-size body to a do-nothing ASGI app on the same server stack.

    .venv/bin/python bench/monitoring_forward.py [--events 40000] [--runs 3] [--batch 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from iinode.identifiers import Prefix
from iinode.monitoring import (
    Event,
    EventKind,
    MemoryAuthenticator,
    NodeMetrics,
    Outbox,
    OutboxSettings,
    ReportSender,
    SenderSettings,
    Severity,
    children_of,
)
from iinode.monitoring.node import MonitoringNode, MonitoringSettings, ParentLink

NATIONAL, PROVINCE, ENTERPRISE = Prefix("88"), Prefix("88.118"), Prefix("88.118.8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def auth() -> MemoryAuthenticator:
    a = MemoryAuthenticator()
    a.add(PROVINCE, "p-secret")
    a.add(ENTERPRISE, "e-secret")
    return a


def serve(role: str, port: int, data: Path, parent_port: int, batch: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    from iinode.api.monitoring import monitoring_router
    from iinode.api.monitoring_common import MonitoringApp

    async def main() -> None:
        if role == "bare":

            async def bare(scope: Any, receive: Any, send: Any) -> None:
                while (await receive()).get("more_body"):
                    pass
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": b"{}"})

            app: Any = bare
            node = None
        else:
            parent = (
                ParentLink(f"http://127.0.0.1:{parent_port}", "300:0.NA/88.118", "p-secret")
                if role == "province"
                else None
            )
            node = MonitoringNode(
                MonitoringSettings(
                    PROVINCE if parent else NATIONAL,
                    data,
                    province="JX",
                    parent=parent,
                    batch_size=batch,
                ),
                is_child=children_of(ENTERPRISE if parent else PROVINCE),
                authenticate=auth(),
            )
            app = FastAPI()
            app.include_router(
                monitoring_router(MonitoringApp(node.receiver, node.authenticate, node.board))
            )
            await node.start()
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="error",
                lifespan="off",
                access_log=False,
            )
        )
        await server.serve()
        if node is not None:
            await node.close()

    asyncio.run(main())


def spawn(
    role: str, port: int, data: Path, parent_port: int, batch: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            role,
            "--port",
            str(port),
            "--data",
            str(data),
            "--parent-port",
            str(parent_port),
            "--batch",
            str(batch),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )


async def wait_up(port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def make_events(n: int) -> list[Event]:
    t = time.time()
    return [
        Event(
            id=f"b{i}",
            origin=ENTERPRISE,
            kind=EventKind.SECURITY,
            severity=Severity(i % 5),
            observed_at=t + i * 1e-3,
            province="JX",
            industry="automobiles",
            asset_kind="plc",
            detail={"rule": "auth_failure", "count": i % 7},
        )
        for i in range(n)
    ]


def sqlite_rate(events: list[Event], batch: int, path: Path) -> float:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, key TEXT UNIQUE, body BLOB)")
    rows = [(f"{e.origin.text}|{e.id}", e.encode()) for e in events]
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        db.execute("BEGIN")
        db.executemany("INSERT INTO t (key, body) VALUES (?, ?)", rows[i : i + batch])
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return len(rows) / elapsed


async def bare_post_rate(port: int, body: bytes, seconds: float = 2.0) -> float:
    async with httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{port}/"
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            r = await client.post(url, content=body)
            r.raise_for_status()
            n += 1
        return n / (time.perf_counter() - start)


async def national_count(client: httpx.AsyncClient, port: int) -> int:
    r = await client.get(f"http://127.0.0.1:{port}/monitoring/view", params={"by": "origin"})
    return sum(r.json()["counts"].values())


async def one_run(n: int, batch: int, root: Path) -> dict[str, float]:
    nport, pport, bport = free_port(), free_port(), free_port()
    procs = [spawn("national", nport, root / "n", 0, batch)]
    procs.append(spawn("province", pport, root / "p", nport, batch))
    procs.append(spawn("bare", bport, root / "b", 0, batch))
    try:
        for port in (nport, pport, bport):
            await wait_up(port)
        events = make_events(n)
        result: dict[str, float] = {}
        result["sqlite_insert"] = sqlite_rate(events, batch, root / "raw.sqlite3")
        from iinode.monitoring.protocol import encode_batch, new_batch_id

        body = encode_batch(
            ENTERPRISE, new_batch_id(), time.time(), [e.encode() for e in events[:batch]]
        )
        result["bare_post_events"] = await bare_post_rate(bport, body) * batch
        box = Outbox(OutboxSettings(root / "e-outbox.sqlite3"), NodeMetrics())
        start = time.perf_counter()
        for i in range(0, n, batch):
            box.enqueue(events[i : i + batch])
        result["outbox_enqueue"] = n / (time.perf_counter() - start)
        async with httpx.AsyncClient() as client:
            sender = ReportSender(
                SenderSettings(
                    f"http://127.0.0.1:{pport}/monitoring/reports",
                    ENTERPRISE,
                    "300:0.NA/88.118.8",
                    "e-secret",
                    batch_size=batch,
                ),
                box,
                client,
            )
            start = time.perf_counter()
            sent = await sender.drain()
            result["enterprise_to_province"] = sent / (time.perf_counter() - start)
            deadline = time.monotonic() + 120
            while (got := await national_count(client, nport)) < n:
                assert time.monotonic() < deadline, f"national has {got}/{n}"
                await asyncio.sleep(0.01)
            result["forward_to_national"] = n / (time.perf_counter() - start)
            assert got == n, f"national holds {got} events, expected exactly {n}"
        box.close()
        return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)


async def bench(n: int, runs: int, batch: int) -> None:
    results = []
    for r in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(await one_run(n, batch, Path(tmp)))
        print(
            f"run {r + 1}: " + ", ".join(f"{k}={v:,.0f}/s" for k, v in results[-1].items()),
            flush=True,
        )
    print(f"\nmedians over {runs} runs, {n} events, batch {batch}:")
    for key in results[0]:
        print(f"  {key:24s} {statistics.median(r[key] for r in results):>12,.0f} events/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=40_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--serve")
    p.add_argument("--port", type=int)
    p.add_argument("--data", type=Path)
    p.add_argument("--parent-port", type=int, default=0)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.data, args.parent_port, args.batch)
    else:
        asyncio.run(bench(args.events, args.runs, args.batch))


if __name__ == "__main__":
    main()
