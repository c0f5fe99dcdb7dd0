"""End to end through an MQTT broker: Sparkplug publisher -> broker -> iinode -> store.

    .venv/bin/python bench/telemetry_mqtt.py [--messages 3000] [--metrics 100] [--runs 3]
    .venv/bin/python bench/telemetry_mqtt.py --embedded     # the in-process amqtt broker

A publisher process sends ``--messages`` Sparkplug DDATA messages of
``--metrics`` metrics each (QoS 1).  In the same run we measure
  broker ceiling   a bare aiomqtt subscriber that only counts the messages
  iinode           MqttConnector -> MemoryBus -> IngestWorker (validation) -> ParquetStore,
                   timed until every point is stored and counted by a query
and report points/s (median of ``--runs``) and their ratio.  Payload shape: one
DDATA per message, ``--metrics`` Double metrics sent by alias only (no names),
each with its own timestamp, QoS 1; the device's DBIRTH names them ``m000``...
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

from iinode.connectivity.broker import EmbeddedBroker
from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.sparkplug import EdgeNode
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.model import DataType, Equipment, Tag
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.validation import ReadingValidator

T0_MS = 1_767_225_600_000


def publish(host: str, port: int, group: str, messages: int, metrics: int) -> None:
    async def run() -> None:
        edge = EdgeNode(group, "bench", qos=1)
        names = [f"m{i:03d}" for i in range(metrics)]
        quiet = logging.getLogger("bench.publisher")
        quiet.setLevel(logging.ERROR)
        async with aiomqtt.Client(
            host, port, identifier=f"pub-{group}", max_inflight_messages=200, logger=quiet
        ) as c:
            for out in (
                edge.birth({}, T0_MS),
                edge.device_birth("DEV-1", dict.fromkeys(names, 0.0), T0_MS),
            ):
                await c.publish(out.topic, out.payload, qos=1)
            window: list[asyncio.Task[None]] = []
            for k in range(messages):
                out = edge.data({n: float(k) for n in names}, T0_MS + k + 1, device="DEV-1")
                window.append(asyncio.create_task(c.publish(out.topic, out.payload, qos=1)))
                if len(window) >= 100:
                    await asyncio.gather(*window)
                    window.clear()
            await asyncio.gather(*window)

    asyncio.run(run())


def start_publisher(
    host: str, port: int, group: str, messages: int, metrics: int
) -> mp.process.BaseProcess:
    proc = mp.get_context("spawn").Process(
        target=publish, args=(host, port, group, messages, metrics)
    )
    proc.start()
    return proc


async def broker_ceiling(host: str, port: int, messages: int, metrics: int) -> float:
    group = f"88.{uuid.uuid4().int % 10**9}"
    async with aiomqtt.Client(host, port, identifier=f"raw-{group}") as c:
        await c.subscribe(f"spBv1.0/{group}/DDATA/#", qos=1)
        proc = start_publisher(host, port, group, messages, metrics)
        seen = 0
        start = 0.0
        async for _ in c.messages:
            if seen == 0:
                start = time.perf_counter()
            seen += 1
            if seen == messages:
                break
        elapsed = time.perf_counter() - start
    proc.join()
    return (messages - 1) * metrics / elapsed


async def iinode_path(
    host: str, port: int, messages: int, metrics: int, root: Path, *, manual_ack: bool = True
) -> float:
    group = f"88.{uuid.uuid4().int % 10**9}"
    eq = Equipment(
        id=f"{group}/DEV-1", tags=tuple(Tag(f"m{i:03d}", DataType.FLOAT) for i in range(metrics))
    )
    validator = ReadingValidator(MemoryRegistry([eq]), max_future_us=10**15)
    bus = MemoryBus(max_points=200_000)
    store = ParquetStore(root / group)
    worker = IngestWorker(bus, validator, store, max_batches=256, wait=0.05)
    connector = MqttConnector(
        MqttSettings(
            host=host,
            port=port,
            client_id=f"iinode-{group}",
            sparkplug_groups=(group,),
            json_topics=False,
            persistent_session=False,
            batch_points=20_000,
            manual_ack=manual_ack,
        ),
        bus,
        rejects=validator.rejects,
    )
    tasks = [asyncio.create_task(connector.run()), asyncio.create_task(worker.run())]
    await connector.connected.wait()
    total = (messages + 1) * metrics
    proc = start_publisher(host, port, group, messages, metrics)
    start = 0.0
    for _ in range(10**7):  # the clock starts when the first message arrives, as for the ceiling
        if start == 0.0 and connector.stats.messages > 0:
            start = time.perf_counter()
        if worker.stats.accepted >= total:
            break
        await asyncio.sleep(0.001)
    stored = store.count()
    elapsed = time.perf_counter() - start
    connector.stop()
    worker.stop()
    await asyncio.gather(*tasks)
    proc.join()
    assert stored == total, (stored, total)
    assert validator.rejects.total == 0
    return (total - metrics) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--embedded", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args()
    host, port = args.host, args.port
    broker = None
    if args.embedded:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        host = "127.0.0.1"
        broker = EmbeddedBroker(host, port)
        await broker.start()
    work = Path(tempfile.mkdtemp(prefix="iinode-bench-"))
    try:
        raw, ours = [], []
        for _ in range(args.runs):
            raw.append(await broker_ceiling(host, port, args.messages, args.metrics))
            ours.append(
                await iinode_path(
                    host, port, args.messages, args.metrics, work, manual_ack=not args.embedded
                )
            )
        name = "embedded amqtt" if args.embedded else f"{host}:{port}"
        print(f"broker {name}; {args.messages} messages x {args.metrics} metrics, QoS 1; "
              f"median of {args.runs}")  # fmt: skip
        print(f"  broker ceiling (bare subscriber)   {statistics.median(raw):>12,.0f} points/s")
        print(f"  iinode end to end (stored)         {statistics.median(ours):>12,.0f} points/s")
        ratio = statistics.median(ours) / statistics.median(raw)
        print(f"  ratio                              {ratio:>12.2f}")
        print(
            "  per run (ceiling, iinode): "
            + ", ".join(f"({a:,.0f}, {b:,.0f})" for a, b in zip(raw, ours, strict=True))
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if broker is not None:
            await broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
