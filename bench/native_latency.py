"""Latency of native resolution through a real three-level network, cold and warm.

Three native nodes on 127.0.0.1, each its own SQLite data directory and
``--workers`` worker processes: top (``88``) delegates ``88.118`` to the
secondary, which delegates ``88.118.8`` to the enterprise holding
``--records`` handles ``88.118.8/OBJ-<n>``.  The client is ``NativeResolver``
(asyncio, the Handle-style walk: ``0.NA/88.118.8`` from the top down, then the
handle at the enterprise site).  Per run it measures, each as p50/p99:

* ``floor``: one UDP round trip to the enterprise from a blocking socket, warm
  (answered from the enterprise's fast path): the physical reference.
* ``one exchange``: the same request through ``NativeClient.request`` (asyncio,
  the client's one long-lived UDP socket): the client's own cost per round trip.
* ``new endpoint each``: the same round trip over a datagram endpoint opened
  for it and closed after it (how the client worked before it kept its socket).
* ``cold``: a fresh resolver and cache per resolution (all over one client),
  each for a handle not asked before (three round trips: top, secondary, enterprise; the enterprise
  answers from its store, the two ``0.NA`` answers come from the fast path).
* ``warm, site cached``: the site of ``88.118.8`` is cached, the answer is not
  (one round trip, answered from the enterprise's fast path).
* ``warm, answer cached``: the client's TTL cache answers (no round trip).

Medians over ``--runs`` runs are printed.

    .venv/bin/python bench/native_latency.py --runs 3 --samples 1000
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from iinode.identifiers import HandleName, HandleValue, SiteData, encode_record, site_for
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import Message, OpCode, ResolutionRequest
from iinode.resolution import NativeClient, NativeResolver, ResolutionCache
from iinode.resolution.native_client import next_request_id
from iinode.resolution.native_server import NativeWorkers, start_native_workers
from iinode.storage import SQLiteStore
from native_node import PREFIX, request_datagram, start_bench_node
from native_ports import free_native_port


def start_delegating_node(
    data_dir: Path, role: Role, prefix: str, child: str, child_port: int, workers: int
) -> tuple[NativeWorkers, int]:
    port = free_native_port()
    settings = NodeSettings(role=role, data_dir=data_dir, prefix=prefix, handle_port=port)

    async def seed() -> None:
        store = SQLiteStore(data_dir / "handles.sqlite3")
        changes = ChangeCounter(data_dir / COUNTER_FILE)
        await HandleService(settings, store, changes=changes).initialise("bench")
        site = site_for("127.0.0.1", handle_port=child_port)
        raw = encode_record([HandleValue(1, "HS_SITE", site)])
        await store.modify(f"0.NA/{child}", lambda _old: raw)
        changes.bump()
        changes.close()
        await store.close()

    data_dir.mkdir(parents=True)
    asyncio.run(seed())
    return start_native_workers(settings, workers, host="127.0.0.1"), port


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def floor(port: int, samples: int) -> list[float]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(2)
        sock.send(request_datagram(0, 1))
        sock.recv(2048)  # warm
        out = []
        for i in range(samples):
            started = time.perf_counter()
            sock.send(request_datagram(0, i + 2))
            sock.recv(2048)
            out.append(time.perf_counter() - started)
        return out


async def one_exchange(port: int, samples: int) -> list[float]:
    client = NativeClient()
    out = []
    try:
        for _ in range(samples + 1):
            request = Message(
                OpCode.RESOLUTION,
                ResolutionRequest(f"{PREFIX}/OBJ-0"),
                request_id=next_request_id(),
            )
            started = time.perf_counter()
            await client.request(("127.0.0.1", port), request)
            out.append(time.perf_counter() - started)
    finally:
        await client.aclose()
    return out[1:]


class _OneAnswer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)


async def endpoint_per_exchange(port: int, samples: int) -> list[float]:
    """The former client's pattern: a new datagram endpoint for every exchange."""
    loop = asyncio.get_running_loop()
    out = []
    for i in range(samples + 1):
        started = time.perf_counter()
        transport, protocol = await loop.create_datagram_endpoint(
            _OneAnswer, remote_addr=("127.0.0.1", port)
        )
        try:
            transport.sendto(request_datagram(0, i + 1))
            Message.from_wire(await asyncio.wait_for(asyncio.shield(protocol.answer), 2))
        finally:
            transport.close()
        out.append(time.perf_counter() - started)
    return out[1:]


async def resolutions(
    top_port: int, samples: int, first: int
) -> tuple[list[float], list[float], list[float]]:
    root = [site_for("127.0.0.1", handle_port=top_port)]
    client = NativeClient()
    try:
        return await walks(root, client, samples, first)
    finally:
        await client.aclose()


async def walks(
    root: list[SiteData], client: NativeClient, samples: int, first: int
) -> tuple[list[float], list[float], list[float]]:
    cold = []
    for n in range(first, first + samples):
        resolver = NativeResolver(root, cache=ResolutionCache(), client=client)
        started = time.perf_counter()
        resolved = await resolver.resolve(HandleName(PREFIX, f"OBJ-{n}"))
        cold.append(time.perf_counter() - started)
        assert len(resolved.chain) == 3, resolved.chain
    cache = ResolutionCache()
    resolver = NativeResolver(root, cache=cache, client=client)
    names = [HandleName(PREFIX, f"OBJ-{n}") for n in range(first, first + samples)]
    await resolver.resolve(names[0])
    site_cached = []
    for name in names:
        cache.invalidate(name)
        started = time.perf_counter()
        resolved = await resolver.resolve(name)
        site_cached.append(time.perf_counter() - started)
        assert len(resolved.chain) == 2, resolved.chain
        assert resolved.chain[0].from_cache, resolved.chain
    answer_cached = []
    for name in names:
        started = time.perf_counter()
        await resolver.resolve(name)
        answer_cached.append(time.perf_counter() - started)
    return cold, site_cached, answer_cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per node")
    args = parser.parse_args()
    records = args.runs * args.samples + 1
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ent_port = free_native_port()
        ent = start_bench_node(root / "ent", records, ent_port, args.workers)
        sec, sec_port = start_delegating_node(
            root / "sec", Role.SECONDARY, "88.118", PREFIX, ent_port, args.workers
        )
        top, top_port = start_delegating_node(
            root / "top", Role.TOP, "88", "88.118", sec_port, args.workers
        )
        try:
            for run in range(args.runs):
                first = 1 + run * args.samples
                cold, site_cached, answer_cached = asyncio.run(
                    resolutions(top_port, args.samples, first)
                )
                measured = {
                    "floor: one raw UDP round trip (enterprise, warm)": floor(
                        ent_port, args.samples
                    ),
                    "one exchange through NativeClient (warm)": asyncio.run(
                        one_exchange(ent_port, args.samples)
                    ),
                    "one exchange, new datagram endpoint each (warm)": asyncio.run(
                        endpoint_per_exchange(ent_port, args.samples)
                    ),
                    "cold: fresh client cache, 3 levels": cold,
                    "warm, site cached: 1 round trip": site_cached,
                    "warm, answer cached: no round trip": answer_cached,
                }
                for label, samples in measured.items():
                    rows.setdefault(label, []).append(quantiles(samples))
                print(f"run {run + 1}/{args.runs} done")
        finally:
            for node in (top, sec, ent):
                node.stop()
    floor_p50 = statistics.median(p50 for p50, _ in next(iter(rows.values())))
    print(f"\nmedians of {args.runs} runs x {args.samples} samples, {args.workers} worker(s)/node")
    print(f"{'':52} {'p50 µs':>9} {'p99 µs':>9} {'p50 / floor':>12}")
    for label, runs in rows.items():
        p50 = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        print(f"{label:52} {p50 * 1e6:9.0f} {p99 * 1e6:9.0f} {p50 / floor_p50:12.1f}")


if __name__ == "__main__":
    main()
