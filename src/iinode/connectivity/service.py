"""Assembles the telemetry pipeline of one node from typed settings.

``TelemetryService`` owns the bus (memory, or NATS JetStream when configured),
the ingest workers, the store, the live state and the MQTT connector.  With no
MQTT broker configured it starts the embedded broker, so a node needs nothing
installed.  Use ``async with TelemetryService(settings, registry) as service``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from iinode.connectivity.broker import EmbeddedBroker
from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.nats_bus import NatsBus, NatsBusSettings
from iinode.errors import IinodeError
from iinode.telemetry.bus import MemoryBus, ReadingBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.registry import EquipmentRegistry
from iinode.telemetry.store import ParquetStore, StoreSettings
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import ReadingValidator, RejectLog, RejectReason

log = logging.getLogger(__name__)

Gauge = tuple[str, str, Callable[[], float | Mapping[tuple[str, ...], float]], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """``mqtt=None`` runs the embedded broker on ``embedded_host:embedded_port``;
    ``nats=None`` uses the in-process bus of ``memory_bus_points`` readings."""

    store: StoreSettings
    mqtt: MqttSettings | None = None
    embedded_host: str = "127.0.0.1"
    embedded_port: int = 1883
    nats: NatsBusSettings | None = None
    memory_bus_points: int = 200_000
    workers: int = 1
    max_future_s: float = 300.0
    maintenance_interval_s: float = 300.0
    compact_min_files: int = 32
    retention_days: int | None = None
    mqtt_client: MqttSettings = field(default_factory=MqttSettings)


class TelemetryService:
    def __init__(self, settings: TelemetrySettings, registry: EquipmentRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.rejects = RejectLog()
        self.live = LiveState()
        self.store = ParquetStore(settings.store)
        self.validator = ReadingValidator(
            registry, rejects=self.rejects, max_future_us=int(settings.max_future_s * 1e6)
        )
        self.broker: EmbeddedBroker | None = None
        self.bus: ReadingBus | None = None
        self.workers: list[IngestWorker] = []
        self.connector: MqttConnector | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def mqtt_address(self) -> tuple[str, int]:
        s = self.settings
        if s.mqtt is not None:
            return s.mqtt.host, s.mqtt.port
        return s.embedded_host, s.embedded_port

    async def start(self) -> None:
        s = self.settings
        if s.mqtt is None:
            self.broker = EmbeddedBroker(s.embedded_host, s.embedded_port)
            await self.broker.start()
        if s.nats is not None:
            self.bus = await NatsBus.connect(s.nats, self.rejects)
        else:
            self.bus = MemoryBus(s.memory_bus_points)
        self.workers = [
            IngestWorker(self.bus, self.validator, self.store, self.live) for _ in range(s.workers)
        ]
        host, port = self.mqtt_address
        mqtt = s.mqtt or MqttSettings(
            host=host,
            port=port,
            client_id=s.mqtt_client.client_id,
            sparkplug_groups=s.mqtt_client.sparkplug_groups,
            json_root=s.mqtt_client.json_root,
            host_id=s.mqtt_client.host_id,
        )
        self.connector = MqttConnector(mqtt, self.bus, rejects=self.rejects, live=self.live)
        self._tasks = [asyncio.create_task(w.run()) for w in self.workers]
        self._tasks.append(asyncio.create_task(self.connector.run()))
        self._tasks.append(asyncio.create_task(self._maintain()))
        async with asyncio.timeout(10):
            await self.connector.connected.wait()

    async def maintain_once(self) -> None:
        """Compact crowded partitions and apply retention (runs in a thread)."""
        s = self.settings
        compacted = await asyncio.to_thread(self.store.compact_crowded, s.compact_min_files)
        removed = 0
        if s.retention_days is not None:
            removed = await asyncio.to_thread(self.store.retain, s.retention_days)
        if compacted or removed:
            log.info("telemetry store: %d partitions compacted, %d expired", compacted, removed)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.settings.maintenance_interval_s)
            try:
                await self.maintain_once()
            except IinodeError as exc:
                log.error("telemetry store maintenance failed: %s", exc)

    async def stop(self) -> None:
        for task in self._tasks[len(self.workers) + 1 :]:
            task.cancel()
        if self.connector is not None:
            self.connector.stop()
        for w in self.workers:
            w.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.bus is not None:
            await self.bus.close()
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def gauges(self) -> list[Gauge]:
        """Scrape-time gauges ``(name, documentation, read, labels)``.

        They fit ``NodeMetrics.add_callback``::

            for gauge in service.gauges():
                metrics.add_callback(*gauge)
        """

        def rejects() -> dict[tuple[str, ...], float]:
            return {(r.value,): float(self.rejects.counts[r]) for r in RejectReason}

        def mqtt(attr: str) -> Callable[[], float]:
            def read() -> float:
                c = self.connector
                if c is None:
                    return 0.0
                if attr == "connected":
                    return 1.0 if c.connected.is_set() else 0.0
                return float(getattr(c.stats, attr))

            return read

        def bus_points() -> float:
            return float(self.bus.points) if isinstance(self.bus, MemoryBus) else 0.0

        return [
            ("iinode_telemetry_rejects", "Readings refused, by reason.", rejects, ("reason",)),
            ("iinode_telemetry_points_stored", "Readings written to the store.",
             lambda: float(sum(w.stats.accepted for w in self.workers)), ()),
            ("iinode_telemetry_store_errors", "Store writes that failed (batches retried).",
             lambda: float(sum(w.stats.store_errors for w in self.workers)), ()),
            ("iinode_telemetry_mqtt_connected", "1 while the MQTT connector is connected.",
             mqtt("connected"), ()),
            ("iinode_telemetry_mqtt_disconnects", "MQTT connections lost or refused.",
             mqtt("disconnects"), ()),
            ("iinode_telemetry_mqtt_messages", "MQTT messages received.", mqtt("messages"), ()),
            ("iinode_telemetry_bus_points", "Readings held by the in-process bus.",
             bus_points, ()),
        ]  # fmt: skip

    async def drained(self, points: int, limit: float = 30.0) -> bool:
        """Wait until the workers have accepted ``points`` readings in total."""
        for _ in range(int(limit / 0.02)):
            if sum(w.stats.accepted for w in self.workers) >= points:
                return True
            await asyncio.sleep(0.02)
        return False


def default_settings(root: Path, embedded_port: int = 1883) -> TelemetrySettings:
    return TelemetrySettings(StoreSettings(root), embedded_port=embedded_port)
