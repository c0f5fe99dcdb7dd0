"""Assembles the telemetry pipeline of one node from typed settings.

``TelemetryService`` owns the bus (memory, or NATS JetStream when configured),
the ingest workers, the store, the live state, the MQTT connector and the OPC UA
and Modbus connectors of the registered equipment (:mod:`.connectors`).  With no
MQTT broker configured it starts the embedded broker, so a node needs nothing
installed.  Use ``async with TelemetryService(settings, registry) as service``.

The embedded broker checks clients as :mod:`.broker` describes: devices give
``embedded_password`` (required when it listens beyond loopback), and when
``mqtt_client`` carries a password its user name is the node's host client,
the only one that may publish Sparkplug commands; the service's own connector
logs in with exactly those credentials.

Starting does not wait for an external MQTT broker: the connector keeps trying
with back-off and :meth:`TelemetryService.connector_up` reports its state, so
a broker that is down does not stop the node (the embedded broker is waited
for up to ``mqtt_wait_s``, since it runs in this process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from iinode.connectivity.broker import EmbeddedBroker
from iinode.connectivity.connectors import ConnectorSettings, EquipmentConnectors
from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.nats_bus import NatsBus, NatsBusSettings
from iinode.telemetry.bus import MemoryBus, ReadingBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.registry import EquipmentRegistry
from iinode.telemetry.store import ParquetStore, StoreSettings
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import ReadingValidator, RejectLog, RejectReason

log = logging.getLogger(__name__)

#: ``(name, documentation, read, labels, counter)``: ``counter`` for totals that only go up.
Gauge = tuple[
    str, str, Callable[[], float | Mapping[tuple[str, ...], float]], tuple[str, ...], bool
]


class LabelledGauge(Protocol):
    """What :meth:`TelemetryService.report_up` sets (a ``prometheus_client.Gauge``)."""

    def labels(self, *values: str) -> Any: ...

    def remove(self, *values: str) -> None: ...


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """``mqtt=None`` runs the embedded broker on ``embedded_host:embedded_port``;
    ``nats=None`` uses the in-process bus of ``memory_bus_points`` readings;
    ``connectors=None`` runs no OPC UA or Modbus connectors.

    ``embedded_password``: what every other client of the embedded broker must
    give (``None``: none asked on loopback).  ``mqtt_client.username`` and
    ``mqtt_client.password``: the node's host client at the embedded broker
    (``password=None``: no host client is named; the connector then logs in
    with ``embedded_password``)."""

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
    connectors: ConnectorSettings | None = field(default_factory=ConnectorSettings)
    mqtt_wait_s: float = 10.0
    embedded_password: str | None = field(default=None, repr=False)


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
        self.connectors: EquipmentConnectors | None = None
        #: Maintenance passes that failed (logged; the next one runs as planned).
        self.maintenance_errors = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._connectors_task: asyncio.Task[None] | None = None
        self._reported_up: set[str] = set()

    @property
    def mqtt_address(self) -> tuple[str, int]:
        s = self.settings
        if s.mqtt is not None:
            return s.mqtt.host, s.mqtt.port
        return s.embedded_host, s.embedded_port

    async def start(self) -> None:
        s = self.settings
        client = s.mqtt_client
        if s.mqtt is None:
            named = client.password is not None
            self.broker = EmbeddedBroker(
                s.embedded_host,
                s.embedded_port,
                password=s.embedded_password,
                host_username=client.username if named else None,
                host_password=client.password,
            )
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
            client_id=client.client_id,
            username=client.username,
            password=client.password if client.password is not None else s.embedded_password,
            sparkplug_groups=client.sparkplug_groups,
            json_root=client.json_root,
            host_id=client.host_id,
            manual_ack=False,  # amqtt drops messages acknowledged after 5 s
        )
        self.connector = MqttConnector(mqtt, self.bus, rejects=self.rejects, live=self.live)
        self._tasks = [asyncio.create_task(w.run()) for w in self.workers]
        self._tasks.append(asyncio.create_task(self.connector.run()))
        self._tasks.append(asyncio.create_task(self._maintain()))
        if s.connectors is not None:
            self.connectors = EquipmentConnectors(self.registry, self.bus, s.connectors)
            self._connectors_task = asyncio.create_task(self.connectors.run())
            observers = getattr(self.registry, "observers", None)  # HandleRegistry: writes
            if observers is not None:
                observers.append(self._registry_changed)
        if self.broker is not None:
            try:
                async with asyncio.timeout(s.mqtt_wait_s):
                    await self.connector.connected.wait()
            except TimeoutError:
                log.error("MQTT connector has not reached the embedded broker on %s:%d in "
                          "%.0f s; it keeps trying", *self.mqtt_address, s.mqtt_wait_s)  # fmt: skip

    def _registry_changed(self, equipment_id: str) -> None:
        if self.connectors is not None:
            self.connectors.poke()

    async def wait_connected(self, limit: float) -> bool:
        """Wait up to ``limit`` seconds for the MQTT connector to be connected."""
        if self.connector is None:
            return False
        try:
            async with asyncio.timeout(limit):
                await self.connector.connected.wait()
        except TimeoutError:
            return False
        return True

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
            except Exception:  # keep maintaining: the next pass may well succeed
                self.maintenance_errors += 1
                log.exception("telemetry store maintenance failed")

    async def stop(self) -> None:
        observers = getattr(self.registry, "observers", None)
        if observers is not None and self._registry_changed in observers:
            observers.remove(self._registry_changed)
        if self._connectors_task is not None:  # first: their buffers go to the bus
            self._connectors_task.cancel()
            await asyncio.gather(self._connectors_task, return_exceptions=True)
            self._connectors_task = None
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

    def connector_up(self) -> dict[str, bool]:
        """Connector name (``mqtt``, ``opcua:<endpoint>``, ``modbus:<host>:<port>/<unit>``)
        -> whether it is connected now."""
        out = {"mqtt": self.connector is not None and self.connector.connected.is_set()}
        if self.connectors is not None:
            out.update((c.name, c.up) for c in self.connectors.states())
        return out

    def report_up(self, gauge: LabelledGauge) -> None:
        """Set ``iinode_connector_up{connector}``; drop the labels of stopped connectors."""
        up = self.connector_up()
        for name in self._reported_up - up.keys():
            with contextlib.suppress(KeyError):
                gauge.remove(name)
        for name, state in up.items():
            gauge.labels(name).set(1.0 if state else 0.0)
        self._reported_up = set(up)

    def gauges(self) -> list[Gauge]:
        """Scrape-time families ``(name, documentation, read, labels, counter)``.

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

        def totals(i: int) -> Callable[[], dict[tuple[str, ...], float]]:
            def read() -> dict[tuple[str, ...], float]:
                c = self.connectors
                if c is None:
                    return {}
                return {(name, name.partition(":")[0]): float(t[i])
                        for name, t in c.totals().items()}  # fmt: skip

            return read

        def invalid() -> float:
            return 0.0 if self.connectors is None else float(len(self.connectors.invalid))

        return [
            ("iinode_telemetry_rejects", "Readings refused, by reason.", rejects, ("reason",),
             True),
            ("iinode_telemetry_points_stored", "Readings written to the store.",
             lambda: float(sum(w.stats.accepted for w in self.workers)), (), True),
            ("iinode_telemetry_store_errors", "Store writes that failed (batches retried).",
             lambda: float(sum(w.stats.store_errors for w in self.workers)), (), True),
            ("iinode_telemetry_mqtt_connected", "1 while the MQTT connector is connected.",
             mqtt("connected"), (), False),
            ("iinode_telemetry_mqtt_disconnects", "MQTT connections lost or refused.",
             mqtt("disconnects"), (), True),
            ("iinode_telemetry_mqtt_messages", "MQTT messages received.", mqtt("messages"), (),
             True),
            ("iinode_telemetry_bus_points", "Readings held by the in-process bus.",
             bus_points, (), False),
            ("iinode_telemetry_maintenance_errors", "Store maintenance passes that failed.",
             lambda: float(self.maintenance_errors), (), True),
            ("iinode_connector_failures", "Connection attempts and requests that failed.",
             totals(0), ("connector", "protocol"), True),
            ("iinode_connector_readings", "Readings a connector handed to the bus.",
             totals(1), ("connector", "protocol"), True),
            ("iinode_connector_dropped", "Readings dropped because the bus was behind.",
             totals(2), ("connector", "protocol"), True),
            ("iinode_connector_invalid_equipment",
             "Equipment not connected because its connection details are wrong.",
             invalid, (), False),
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
