"""Sustained ingest: is memory flat?  Publisher process -> Mosquitto -> iinode -> store.

    .venv/bin/python bench/telemetry_sustained.py --seconds 600 --rate 50000
    .venv/bin/python bench/telemetry_sustained.py --seconds 120 --rate 50000 --store-limit 20000

A paced Sparkplug publisher sends ``--rate`` points/s (messages of 500 metrics);
iinode ingests them (MqttConnector -> MemoryBus -> IngestWorker -> ParquetStore),
compacting the store every ``--compact-every`` seconds as the service does.
Every ``--every`` seconds (5 by default) the ingest process's resident memory
(VmRSS), the stored count, the MQTT client's queue length and the bus fill are
sampled; the summary gives start, peak and end RSS, the medians of the first
and last thirds, and the least-squares slope of RSS over the second half of the
run in MB/min (flat memory is ~0).  ``--store-limit`` caps the store's append
rate (a slow disk) to overload the pipeline: memory must stay bounded, the
backlog staying in the broker (whose own queue limit then decides what it keeps).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import aiomqtt

from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.sparkplug import EdgeNode
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.model import DataType, Equipment, Reading, Tag, now_us
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.validation import ReadingValidator

METRICS = 500


def paced_publisher(host: str, port: int, group: str, seconds: float, rate: int) -> None:
    async def run() -> None:
        edge = EdgeNode(group, "sustained", qos=1)
        names = [f"m{i:03d}" for i in range(METRICS)]
        quiet = logging.getLogger("bench.publisher")
        quiet.setLevel(logging.ERROR)
        per_second = max(1, rate // METRICS)
        async with aiomqtt.Client(host, port, identifier=f"pub-{group}", logger=quiet) as c:
            now_ms = now_us() // 1000
            for out in (
                edge.birth({}, now_ms),
                edge.device_birth("DEV-1", dict.fromkeys(names, 0.0), now_ms),
            ):
                await c.publish(out.topic, out.payload, qos=1)
            start = time.monotonic()
            sent = 0
            while (elapsed := time.monotonic() - start) < seconds:
                due = int(elapsed * per_second) + 1
                while sent < due:
                    now_ms = now_us() // 1000
                    values = {n: float(sent % 1000) for n in names}
                    out = edge.data(values, now_ms, device="DEV-1")
                    await c.publish(out.topic, out.payload, qos=1)
                    sent += 1
                await asyncio.sleep(0.01)

    asyncio.run(run())


class ThrottledStore(ParquetStore):
    """The real store, appending at most ``limit`` points/s (a slow disk)."""

    def __init__(self, root: Path, limit: int) -> None:
        super().__init__(root)
        self.limit = limit

    def append(self, readings: Sequence[Reading]) -> int:
        started = time.monotonic()
        n = super().append(readings)
        time.sleep(max(0.0, len(readings) / self.limit - (time.monotonic() - started)))
        return n


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--compact-every", type=float, default=60.0)
    parser.add_argument("--store-limit", type=int, default=0, help="points/s; 0: no limit")
    args = parser.parse_args()
    group = f"88.{uuid.uuid4().int % 10**9}"
    eq = Equipment(
        id=f"{group}/DEV-1", tags=tuple(Tag(f"m{i:03d}", DataType.FLOAT) for i in range(METRICS))
    )
    work = Path(tempfile.mkdtemp(prefix="iinode-sustained-"))
    validator = ReadingValidator(MemoryRegistry([eq]))
    bus = MemoryBus(max_points=200_000)
    store = ThrottledStore(work, args.store_limit) if args.store_limit else ParquetStore(work)
    worker = IngestWorker(bus, validator, store, max_batches=256, wait=0.2)
    settings = MqttSettings(
        host=args.host,
        port=args.port,
        client_id=f"iinode-{group}",
        sparkplug_groups=(group,),
        json_topics=False,
    )
    connector = MqttConnector(settings, bus, rejects=validator.rejects)

    async def compact() -> None:
        while True:
            await asyncio.sleep(args.compact_every)
            await asyncio.to_thread(store.compact_crowded, 8)

    tasks = [
        asyncio.create_task(connector.run()),
        asyncio.create_task(worker.run()),
        asyncio.create_task(compact()),
    ]
    await connector.connected.wait()
    proc = mp.get_context("spawn").Process(
        target=paced_publisher, args=(args.host, args.port, group, args.seconds, args.rate)
    )
    proc.start()
    samples: list[tuple[float, float, int]] = []
    most_queued = most_held = 0
    start = time.monotonic()
    try:
        while proc.is_alive():
            await asyncio.sleep(args.every)
            t = time.monotonic() - start
            samples.append((t, rss_mb(), worker.stats.accepted))
            most_queued = max(most_queued, connector.stats.max_queued)
            most_held = max(most_held, bus.points)
            print(
                f"  t={t:6.0f}s  rss={samples[-1][1]:7.1f} MB  stored={samples[-1][2]:>12,}  "
                f"mqtt queue={connector.stats.queued:4d}  bus={bus.points:7,}  "
                f"files={len(store.files()):4d}  reconnects={connector.stats.connects - 1}"
            )
        await asyncio.sleep(2 if not args.store_limit else 10)
    finally:
        connector.stop()
        worker.stop()
        tasks[2].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        proc.join()
        files = len(store.files())
        shutil.rmtree(work, ignore_errors=True)
        forget = MqttConnector(replace(settings, persistent_session=False), MemoryBus())
        forget_task = asyncio.create_task(forget.run())
        await forget.connected.wait()
        forget.stop()
        await forget_task
    third = max(1, len(samples) // 3)
    first = statistics.median(s[1] for s in samples[:third])
    last = statistics.median(s[1] for s in samples[-third:])
    rate = worker.stats.accepted / max(1e-9, samples[-1][0]) if samples else 0.0
    print(
        f"sustained {args.seconds:.0f} s at {args.rate:,} points/s offered: "
        f"{worker.stats.accepted:,} stored ({rate:,.0f}/s), rejects {validator.rejects.total}"
    )
    print(
        f"  MQTT client queue peak {most_queued} messages (bound "
        f"{settings.max_queued_messages}), overflows {connector.stats.overflows}, "
        f"reconnects {connector.stats.connects - 1}; bus peak {most_held:,} points "
        f"(bound {bus.max_points:,} + one batch); {files} Parquet files at the end"
    )
    print(f"  RSS median first third {first:.1f} MB, last third {last:.1f} MB, "
          f"peak {max(s[1] for s in samples):.1f} MB")  # fmt: skip
    half = samples[len(samples) // 2 :]
    print(
        f"  RSS start {samples[0][1]:.1f} MB, peak {max(s[1] for s in samples):.1f} MB, "
        f"end {samples[-1][1]:.1f} MB; slope over the second half "
        f"{slope([s[0] for s in half], [s[1] for s in half]) * 60:+.3f} MB/min "
        f"({len(samples)} samples every {args.every:g} s)"
    )


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


if __name__ == "__main__":
    asyncio.run(main())
