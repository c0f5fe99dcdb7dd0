"""What a node runs besides answering identifiers: monitoring, telemetry, their tasks.

Every node has a monitoring node (outbox, receiver, notices) when it has a
prefix; an enterprise node has an equipment registry kept as identifiers, and,
with ``telemetry`` on, the telemetry pipeline (embedded or external MQTT broker,
memory or NATS bus, Parquet store) and the KPI gauges.

* a node with a parent link (``reporting_url`` and ``report_secret``) sends its
  outbox upward, a heartbeat every ``heartbeat_interval`` and pulls notices
  every ``notice_interval``.
* Several processes may serve one data directory (``iinode serve --workers N``).
  The broker, ingest, sender, heartbeats and notice pulls run only in the
  process holding the node's :class:`~iinode.api.lease.ProcessLease`; the others
  serve the same API from the shared stores and take the lease over if its
  holder exits.

Hooks, not imports, join the layers here: telemetry's KPI collector is
registered in the node's metrics (``NodeMetrics.add_collector``), and the
monitoring node's own security sources (``monitoring.node_sources.NodeSources``)
are subscribed here to the observer lists the lower layers offer: failed REST
logins (``Authorizer.failure_observers``), and, while this process runs the
pipeline, telemetry rejects (``RejectLog.observers``), stored readings
(``IngestWorker.observers``), Sparkplug births (``MqttConnector.birth_observers``)
and what OPC UA and Modbus peers say they are
(``EquipmentConnectors.discovery_observers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TypeVar

import httpx

from iinode.api.delegations import HandleAuthenticator
from iinode.api.lease import LEASE_FILE, ProcessLease
from iinode.api.shared_state import REJECTS_FILE, RejectsSnapshot
from iinode.assembly.telemetry import check_embedded_broker, mqtt_address, telemetry_settings
from iinode.connectivity.endpoints import check_equipment
from iinode.connectivity.opcua import BuildInfo
from iinode.connectivity.service import TelemetryService
from iinode.errors import IinodeError
from iinode.identifiers import Prefix
from iinode.monitoring.auth import handle_identity
from iinode.monitoring.metrics import NATIVE_COUNTER_HELP, NodeMetrics
from iinode.monitoring.node import AssetList, MonitoringNode, MonitoringSettings, ParentLink
from iinode.monitoring.node_sources import (
    NodeSources,
    installed_feed,
    node_sources_settings,
    notice_assets,
    run_node_sources,
)
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_counters import OffenderReader, read_native_counters
from iinode.telemetry.kpi_window import KpiMetrics, refresh_kpis
from iinode.telemetry.registry_handles import HandleRegistry
from iinode.telemetry.validation import RejectLog

log = logging.getLogger(__name__)
#: An observer: the element type of a hook list.
Observer = TypeVar("Observer")

#: Seconds between a waiting process's attempts to take the lease over.
TAKEOVER_INTERVAL = 1.0
#: Seconds between reject-count exchanges between the node's processes.
REJECTS_INTERVAL = 1.0


class NodeExtensions:
    """Monitoring and (on enterprise nodes) telemetry of one node, and their tasks."""

    def __init__(
        self,
        settings: NodeSettings,
        service: HandleService,
        metrics: NodeMetrics,
        auth: HandleAuthenticator,
        *,
        client: httpx.AsyncClient | None = None,
        takeover_interval: float = TAKEOVER_INTERVAL,
    ) -> None:
        self.settings = settings
        self.service = service
        self.metrics = metrics
        self.auth = auth
        self.registry: HandleRegistry | None = None
        #: The pipeline, in the process holding the lease while it runs (else ``None``).
        self.telemetry: TelemetryService | None = None
        self.monitoring: MonitoringNode | None = None
        #: The ``iinode_kpi_*`` gauges of a node running telemetry.
        self.kpis: KpiMetrics | None = None
        #: The node's own security sources (a node with monitoring), once started.
        self.sources: NodeSources | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._unsubscribe_pipeline: list[Callable[[], None]] = []
        self.lease = ProcessLease(settings.data_dir / LEASE_FILE)
        #: Reject counts as the ingesting process last published them.
        self.shared_rejects = RejectLog()
        self._rejects_file = RejectsSnapshot(settings.data_dir / REJECTS_FILE)
        self._takeover_interval = takeover_interval
        self._background: list[asyncio.Task[None]] = []
        self._store_size = 0.0
        self._client = client
        self.metrics.add_callback(
            "iinode_store_handles", "Handle records in the identifier store.", self._size
        )
        self.metrics.add_callback(
            "iinode_extensions_primary",
            "1 in the process that runs the broker, ingest and periodic monitoring work.",
            lambda: 1.0 if self.lease.held else 0.0,
        )
        if settings.handle_port is not None:  # node-wide counters of the native workers
            data_dir = settings.data_dir
            self.metrics.add_counters(
                "iinode_native", lambda: read_native_counters(data_dir), NATIVE_COUNTER_HELP
            )
        if self.runs_telemetry:
            self.kpis = KpiMetrics()
            self.metrics.add_collector(self.kpis)

    @property
    def primary(self) -> bool:
        """Whether this process runs the node's once-only work (holds the lease)."""
        return self.lease.held

    @property
    def runs_telemetry(self) -> bool:
        return self.settings.role is Role.ENTERPRISE and self.settings.telemetry

    @property
    def telemetry_dir(self) -> Path:
        return self.settings.data_dir / self.settings.telemetry_dir

    def mqtt_address(self) -> tuple[str, int]:
        """Where the node ingests MQTT from (the embedded broker unless ``mqtt_url`` is set)."""
        return mqtt_address(self.settings)

    def spawn(self, work: Coroutine[None, None, None]) -> None:
        """Run ``work`` until the extensions close (it is cancelled then)."""
        self._background.append(asyncio.get_running_loop().create_task(work))

    def _size(self) -> float:
        return self._store_size

    async def refresh(self) -> None:
        """Values read before each scrape: store size, connector state, KPI gauges."""
        self._store_size = float(await self.service.store.count())
        if self.telemetry is not None:  # mqtt, opcua:<endpoint>, modbus:<host>:<port>/<unit>
            self.telemetry.report_up(self.metrics.connector_up)
        if self.registry is not None and self.kpis is not None:  # iinode_kpi_* per machine
            live = None if self.telemetry is None else self.telemetry.store
            await refresh_kpis(self.kpis, self.registry, live or self.telemetry_dir)

    def _parent_link(self) -> ParentLink | None:
        s = self.settings
        url = s.reporting_url
        if url is None or s.prefix is None:
            return None
        if not s.report_secret:
            log.warning("monitoring reports to %s are off: report_secret is not set", url)
            return None
        return ParentLink(url, handle_identity(Prefix(s.prefix)), s.report_secret)

    async def _assets(self) -> AssetList:
        """Notices are matched against the inventory (CPE names) and the registry."""
        sources = self.sources
        equipment = [] if self.registry is None else await self.registry.list()
        return notice_assets(equipment, None if sources is None else sources.inventory.inventory)

    async def start(self) -> None:
        s = self.settings
        if s.prefix is not None:
            self.monitoring = MonitoringNode(
                MonitoringSettings(
                    Prefix(s.prefix),
                    s.data_dir / "monitoring",
                    province=s.province,
                    industry=s.industry,
                    parent=self._parent_link(),
                    heartbeat_interval=s.heartbeat_interval,
                    notice_interval=s.notice_interval,
                    answers_notices=s.role is Role.ENTERPRISE,
                ),
                is_child=self.auth.is_child,
                authenticate=self.auth,
                metrics=self.metrics,
                client=self._client,
                assets=self._assets,
            )
        if s.role is Role.ENTERPRISE:
            self.registry = HandleRegistry(self.service, base_url=s.http_url, check=check_equipment)
        feed_seen = None
        if self.monitoring is not None:  # security events and assets from the node itself
            feed, feed_seen = await installed_feed(s.data_dir)
            monitoring = self.monitoring
            self.sources = NodeSources(
                node_sources_settings(s), monitoring.emit, feed=feed, clock=monitoring.clock
            )
            if self.registry is not None:
                self.sources.known = self.registry.get
            _subscribe(
                self.service.auth.failure_observers, self.sources.auth_failed, self._unsubscribe
            )
        if self.lease.try_acquire():
            await self._start_primary()
        else:
            log.info(
                "node %s: process %d serves the API; process %s runs the broker and periodic work",
                s.prefix, os.getpid(), self.lease.holder(),
            )  # fmt: skip
            self.spawn(self._wait_for_lease())
        if self.runs_telemetry:
            self.spawn(self._share_rejects())
        if self.sources is not None:
            data_dir = s.data_dir
            registry = self.registry
            self.spawn(run_node_sources(
                self.sources, data_dir, primary=lambda: self.primary,
                equipment=None if registry is None else registry.list, feed_seen=feed_seen,
                read_native=lambda: read_native_counters(data_dir),
                offenders=OffenderReader(data_dir).poll,
            ))  # fmt: skip

    async def _start_primary(self) -> None:
        """The once-per-node work: monitoring sender and periodic tasks, telemetry."""
        if self.monitoring is not None:
            await self.monitoring.start()
        if self.registry is not None and self.runs_telemetry:
            if self.settings.mqtt_url == "embedded":
                check_embedded_broker(self.settings)
            service = TelemetryService(telemetry_settings(self.settings), self.registry)
            try:
                await service.start()
            except BaseException:
                await service.stop()
                raise
            self.telemetry = service
            for gauge in service.gauges():
                self.metrics.add_callback(*gauge)
            if self.sources is not None:
                self._subscribe_pipeline(self.sources, service)

    def _subscribe_pipeline(self, sources: NodeSources, pipeline: TelemetryService) -> None:
        """The sources' hooks on the running pipeline's observer lists."""
        undo = self._unsubscribe_pipeline
        _subscribe(pipeline.rejects.observers, sources.rejected, undo)
        for worker in pipeline.workers:
            _subscribe(worker.observers, sources.stored, undo)
        if pipeline.connector is not None:
            _subscribe(pipeline.connector.birth_observers, sources.born, undo)
        connectors = pipeline.connectors  # OPC UA and Modbus endpoints
        if connectors is not None:

            def discovered(protocol: str, equipment: str, what: object) -> None:
                if isinstance(what, BuildInfo):  # what an OPC UA server says it is
                    sources.opcua_hook(equipment)(what)
                elif isinstance(what, dict):  # the device's identification objects
                    sources.modbus_hook(equipment)(what)

            _subscribe(connectors.discovery_observers, discovered, undo)
            connectors.replay(discovered)  # peers found before the hooks were attached

    async def _stop_primary(self) -> None:
        _unsubscribe(self._unsubscribe_pipeline)
        if self.telemetry is not None:
            await self.telemetry.stop()
            self.telemetry = None
        if self.monitoring is not None:
            await self.monitoring.stop()

    async def _wait_for_lease(self) -> None:
        """Take the once-per-node work over when the process holding the lease exits."""
        while True:
            await asyncio.sleep(self._takeover_interval)
            if not self.lease.try_acquire():
                continue
            log.warning("node %s: process %d takes over the broker and periodic work",
                        self.settings.prefix, os.getpid())  # fmt: skip
            try:
                await self._start_primary()
            except IinodeError as exc:
                log.error("node %s: taking over failed: %s", self.settings.prefix, exc)
                await self._stop_primary()
                self.lease.release()
                continue
            return

    async def _share_rejects(self) -> None:
        """The ingesting process publishes its reject counts; the others read them."""
        while True:
            try:
                if self.telemetry is not None:
                    self._rejects_file.write(self.telemetry.rejects)
                self._rejects_file.read_into(self.shared_rejects)
            except OSError as exc:
                log.warning("sharing reject counts: %s", exc)
            await asyncio.sleep(REJECTS_INTERVAL)

    async def aclose(self) -> None:
        """Cancel the tasks, stop the once-only work, close monitoring, release the lease."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        try:
            await self._stop_primary()
            if self.monitoring is not None:
                await self.monitoring.close()
                self.monitoring = None
        finally:
            _unsubscribe(self._unsubscribe)
            self.sources = None
            self.lease.release()


def _subscribe(
    observers: list[Observer], observer: Observer, undo: list[Callable[[], None]]
) -> None:
    """Add ``observer`` to a hook list a lower layer offers; ``undo`` gets its removal."""
    observers.append(observer)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            observers.remove(observer)

    undo.append(remove)


def _unsubscribe(undo: list[Callable[[], None]]) -> None:
    while undo:
        undo.pop()()


__all__ = ["REJECTS_INTERVAL", "TAKEOVER_INTERVAL", "NodeExtensions"]
