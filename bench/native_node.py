"""Start a native Handle node on a port with N records, for benchmarks.

    .venv/bin/python bench/native_node.py --records 100000 --port 2641 --workers 2
    .venv/bin/python bench/native_node.py --records 1000 --measure 5   # warm UDP figure

``start_bench_node`` is the reusable part: it writes an enterprise node
(prefix 88.118.8) with ``records`` handles ``88.118.8/OBJ-<n>`` (one URL value
each) into SQLite under ``data_dir`` and starts ``workers`` native worker
processes on ``port``.  ``request_datagram(n, request_id)`` builds the RFC 3652
resolution request for record ``n`` (version 2.1, no flags: iinode's plainest
form); ``stock_request_datagram`` the one a Handle.Net 9 client sends.
``--measure`` runs a simple blocking Python client (one socket, one request in
flight) against the node for that many seconds and prints requests/s; that
figure is bounded by the client.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import tempfile
import time
from pathlib import Path

from iinode.identifiers import HandleName, HandleValue, UrlData
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.service import BulkRegistrar, HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_server import NativeWorkers, start_native_workers
from iinode.storage import SQLiteStore

PREFIX = "88.118.8"


def request_datagram(n: int, request_id: int) -> bytes:
    raw = f"{PREFIX}/OBJ-{n}".encode()
    body = struct.pack(">I", len(raw)) + raw + b"\x00" * 8
    header = struct.pack(">IIIHBBII", 1, 0, 0, 0, 0, 0, 0, len(body))
    payload = header + body + b"\x00\x00\x00\x00"
    return struct.pack(">BBHIIII", 2, 1, 0, 0, request_id, 0, len(payload)) + payload


def stock_request_datagram(n: int, request_id: int, expiration: int | None = None) -> bytes:
    """The resolution request a Handle.Net 9 ``HandleResolver`` sends for record ``n`` to a
    site of version 2.10 and serial 1: version 2.10 suggesting 2.11 (MessageFlag 0x020B),
    REC|CA|PO, ExpirationTime now + 12 hours, no credential."""
    if expiration is None:
        expiration = int(time.time()) + 43_200
    raw = f"{PREFIX}/OBJ-{n}".encode()
    body = struct.pack(">I", len(raw)) + raw + b"\x00" * 8
    header = struct.pack(">IIIHBBII", 1, 0, 0x19000000, 1, 0, 0, expiration, len(body))
    payload = header + body + b"\x00\x00\x00\x00"
    return struct.pack(">BBHIIII", 2, 10, 0x020B, 0, request_id, 0, len(payload)) + payload


def start_bench_node(data_dir: Path, records: int, port: int, workers: int = 2) -> NativeWorkers:
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=data_dir, prefix=PREFIX, handle_port=port
    )

    async def load() -> None:
        store = SQLiteStore(data_dir / "handles.sqlite3", synchronous="NORMAL")
        changes = ChangeCounter(data_dir / COUNTER_FILE)
        service = HandleService(settings, store, changes=changes)
        await service.initialise("bench")
        registrar = BulkRegistrar(service, overwrite=True)
        batch = []
        for n in range(records):
            url = HandleValue(1, "URL", UrlData(f"http://example.cn/obj/{n}"))
            batch.append(registrar.encode(HandleName(PREFIX, f"OBJ-{n}"), [url]))
            if len(batch) == 50_000:
                await registrar.write(batch)
                batch = []
        if batch:
            await registrar.write(batch)
        changes.close()
        await store.close()

    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(load())
    return start_native_workers(settings, workers, host="127.0.0.1")


def measure(port: int, records: int, seconds: float) -> float:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.settimeout(2)
        keys = min(records, 1000)
        datagrams = [request_datagram(n, 1) for n in range(keys)]
        for d in datagrams:  # warm the answer caches
            s.send(d)
            s.recv(2048)
        done, deadline = 0, time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            for d in datagrams[:100]:
                s.send(d)
                s.recv(2048)
            done += 100
        return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--port", type=int, default=2641)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--measure", type=float, default=0.0, help="seconds of warm UDP load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        workers = start_bench_node(data_dir, args.records, args.port, args.workers)
        try:
            if args.measure:
                rate = measure(args.port, args.records, args.measure)
                print(f"{rate:,.0f} warm resolutions/s (one blocking Python client)")
            else:
                print(f"serving {args.records} records on 127.0.0.1:{args.port}; Ctrl-C stops")
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            workers.stop()


if __name__ == "__main__":
    main()
