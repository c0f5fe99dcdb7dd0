"""Sparkplug through a real broker, the MQTT connector, ingest, the store and the HTTP router.

A device or edge node that dies right after its birth shows bad quality in
/live: the birth's readings travel through the bus and ingest, so they reach the
live state after the death was received, and the death must still win.  Int32,
Int64 and UInt64 metrics come back from history as exact integers, booleans as
booleans, strings as strings.  Brokers: embedded amqtt and Mosquitto.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiomqtt
import httpx
import orjson
import pytest
from fastapi import FastAPI

from iinode.api.telemetry import TelemetryApp, telemetry_router
from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.sparkplug import EdgeNode
from iinode.connectivity.sparkplug.codec import encode_payload
from iinode.connectivity.sparkplug.model import DataType as SpDataType
from iinode.connectivity.sparkplug.model import MessageType, Metric, Payload, Topic
from iinode.connectivity.sparkplug.session import Outgoing
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.model import DataType, Equipment, Tag, to_us
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import ReadingValidator

#: tag -> (tag type, Sparkplug type, value)
TYPED: dict[str, tuple[DataType, SpDataType, object]] = {
    "i32": (DataType.INT, SpDataType.INT32, -(2**31)),
    "i64": (DataType.INT, SpDataType.INT64, 2**53 + 1),
    "i64min": (DataType.INT, SpDataType.INT64, -(2**63)),
    "u64": (DataType.INT, SpDataType.UINT64, 2**64 - 1),
    "flag": (DataType.BOOL, SpDataType.BOOLEAN, True),
    "mode": (DataType.STRING, SpDataType.STRING, "auto"),
    "level": (DataType.FLOAT, SpDataType.DOUBLE, 0.1),
}


@dataclass
class Plant:
    prefix: str
    broker: tuple[str, int]
    http: httpx.AsyncClient
    worker: IngestWorker

    @property
    def node(self) -> str:
        return f"{self.prefix}/EDGE-1"

    @property
    def device(self) -> str:
        return f"{self.prefix}/PRESS-1"

    async def live(self, equipment: str) -> dict[str, tuple[object, int]]:
        tags = (await self.http.get(f"/telemetry/equipment/{equipment}/live")).json()["tags"]
        return {k: (v["value"], v["quality"]) for k, v in tags.items()}

    async def settled(self, accepted: int) -> None:
        for _ in range(200):
            if self.worker.stats.accepted >= accepted:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.worker.stats.accepted} of {accepted} readings ingested")


@pytest.fixture
async def plant(broker: tuple[str, int], tmp_path: Path) -> AsyncIterator[Plant]:
    prefix = f"88.{uuid.uuid4().int % 10**9}"
    registry = MemoryRegistry([
        Equipment(f"{prefix}/EDGE-1", tags=(
            Tag("uptime", DataType.INT), *(Tag(name, kind) for name, (kind, _, _) in TYPED.items())
        )),
        Equipment(f"{prefix}/PRESS-1", tags=(Tag("temp"), Tag("running", DataType.BOOL))),
    ])  # fmt: skip
    validator = ReadingValidator(registry, max_future_us=10**15)
    bus, live = MemoryBus(), LiveState()
    store = ParquetStore(tmp_path / "ts")
    # ingest lingers a little, as under load: the death arrives before the birth is applied
    worker = IngestWorker(bus, validator, store, live, wait=0.3)
    connector = MqttConnector(
        MqttSettings(host=broker[0], port=broker[1], client_id=f"iinode-{prefix}",
                     sparkplug_groups=(prefix,), json_topics=False, host_id=f"h{prefix}"),
        bus, rejects=validator.rejects, live=live,
    )  # fmt: skip
    api = FastAPI()
    api.include_router(telemetry_router(TelemetryApp(registry, store, live)))
    tasks = [asyncio.create_task(connector.run()), asyncio.create_task(worker.run())]
    try:
        async with asyncio.timeout(10):
            await connector.connected.wait()
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            yield Plant(prefix, broker, http, worker)
    finally:
        connector.stop()
        worker.stop()
        await asyncio.gather(*tasks)
    assert validator.rejects.total == 0


def at(text: str) -> int:
    return to_us(datetime.fromisoformat(text))


async def publish(plant: Plant, *messages: object) -> None:
    async with aiomqtt.Client(*plant.broker, identifier=f"edge-{uuid.uuid4().hex[:8]}") as c:
        for out in messages:
            await c.publish(out.topic, out.payload, qos=1)  # type: ignore[attr-defined]


def births(edge: EdgeNode, now_ms: int) -> list[object]:
    return [edge.birth({"uptime": 5}, now_ms),
            edge.device_birth("PRESS-1", {"temp": 21.5, "running": True}, now_ms)]  # fmt: skip


async def test_device_death_right_after_birth(plant: Plant) -> None:
    edge = EdgeNode(plant.prefix, "EDGE-1", qos=1)
    now = int(time.time() * 1000)
    await publish(plant, *births(edge, now), edge.device_death("PRESS-1", now + 1))
    await plant.settled(3)
    assert await plant.live(plant.device) == {"temp": (21.5, 0), "running": (True, 0)}
    assert await plant.live(plant.node) == {"uptime": (5, 192)}  # the edge node lives on
    # a new birth brings the device back
    await publish(plant, edge.device_birth("PRESS-1", {"temp": 22.0, "running": True}, now + 2))
    await plant.settled(5)
    assert await plant.live(plant.device) == {"temp": (22.0, 192), "running": (True, 192)}


async def test_edge_node_death_right_after_birth(plant: Plant) -> None:
    edge = EdgeNode(plant.prefix, "EDGE-1", qos=1)
    now = int(time.time() * 1000)
    await publish(plant, *births(edge, now), edge.will())
    await plant.settled(3)
    assert await plant.live(plant.device) == {"temp": (21.5, 0), "running": (True, 0)}
    assert await plant.live(plant.node) == {"uptime": (5, 0)}


async def test_integers_booleans_and_strings_keep_their_type(plant: Plant) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric("bdSeq", 0, SpDataType.INT64, timestamp=now)]
    metrics += [Metric(name, value, kind, alias=i + 1, timestamp=now)
                for i, (name, (_, kind, value)) in enumerate(TYPED.items())]  # fmt: skip
    topic = str(Topic(MessageType.NBIRTH, plant.prefix, "EDGE-1"))
    birth = Outgoing(topic, encode_payload(Payload(now, tuple(metrics), 0)), qos=1)
    # the same values again by alias in NDATA (the connector's fast path)
    data_metrics = tuple(Metric(None, value, kind, alias=i + 1, timestamp=now + 1)
                         for i, (_, kind, value) in enumerate(TYPED.values()))  # fmt: skip
    topic = str(Topic(MessageType.NDATA, plant.prefix, "EDGE-1"))
    data = Outgoing(topic, encode_payload(Payload(now + 1, data_metrics, 1)), qos=1)
    await publish(plant, birth, data)
    await plant.settled(2 * len(TYPED))
    r = await plant.http.get(f"/telemetry/equipment/{plant.node}/history")
    rows = orjson.loads(r.content)["readings"]
    for when in (now, now + 1):  # the birth (full conversion) and the data (fast path)
        got = {x["tag"]: x["value"] for x in rows if at(x["time"]) == when * 1000}
        assert got == {name: value for name, (_, _, value) in TYPED.items()}
        assert {name: type(v) for name, v in got.items()} == {
            name: type(value) for name, (_, _, value) in TYPED.items()
        }
    assert b"18446744073709551615" in r.content
    assert b"9007199254740993" in r.content
