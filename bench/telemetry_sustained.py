"""Sustained ingest: is memory flat?  Publisher process -> Mosquitto -> iinode -> store.

    .venv/bin/python bench/telemetry_sustained.py --seconds 600 --rate 50000

A paced Sparkplug publisher sends ``--rate`` points/s (messages of 500 metrics);
iinode ingests them (MqttConnector -> MemoryBus -> IngestWorker -> ParquetStore).
Every ``--every`` seconds (5 by default) the ingest process's resident memory
(VmRSS) and the stored count are sampled; the summary gives start, peak and end
RSS, the medians of the first and last thirds, and the least-squares slope of
RSS over the second half of the run in MB/min (flat memory is ~0).
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
from pathlib import Path

import aiomqtt

from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.sparkplug import EdgeNode
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.model import DataType, Equipment, Tag, now_us
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
    args = parser.parse_args()
    group = f"88.{uuid.uuid4().int % 10**9}"
    eq = Equipment(
        id=f"{group}/DEV-1", tags=tuple(Tag(f"m{i:03d}", DataType.FLOAT) for i in range(METRICS))
    )
    work = Path(tempfile.mkdtemp(prefix="iinode-sustained-"))
    validator = ReadingValidator(MemoryRegistry([eq]))
    bus = MemoryBus(max_points=200_000)
    store = ParquetStore(work)
    worker = IngestWorker(bus, validator, store, max_batches=256, wait=0.2)
    connector = MqttConnector(
        MqttSettings(
            host=args.host,
            port=args.port,
            client_id=f"iinode-{group}",
            sparkplug_groups=(group,),
            json_topics=False,
            persistent_session=False,
        ),
        bus,
        rejects=validator.rejects,
    )
    tasks = [asyncio.create_task(connector.run()), asyncio.create_task(worker.run())]
    await connector.connected.wait()
    proc = mp.get_context("spawn").Process(
        target=paced_publisher, args=(args.host, args.port, group, args.seconds, args.rate)
    )
    proc.start()
    samples: list[tuple[float, float, int]] = []
    start = time.monotonic()
    try:
        while proc.is_alive():
            await asyncio.sleep(args.every)
            t = time.monotonic() - start
            samples.append((t, rss_mb(), worker.stats.accepted))
            print(f"  t={t:6.0f}s  rss={samples[-1][1]:7.1f} MB  stored={samples[-1][2]:>12,}")
        await asyncio.sleep(2)
    finally:
        connector.stop()
        worker.stop()
        await asyncio.gather(*tasks)
        proc.join()
        shutil.rmtree(work, ignore_errors=True)
    third = max(1, len(samples) // 3)
    first = statistics.median(s[1] for s in samples[:third])
    last = statistics.median(s[1] for s in samples[-third:])
    rate = worker.stats.accepted / max(1e-9, samples[-1][0]) if samples else 0.0
    print(
        f"sustained {args.seconds:.0f} s at {args.rate:,} points/s offered: "
        f"{worker.stats.accepted:,} stored ({rate:,.0f}/s), rejects {validator.rejects.total}"
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
