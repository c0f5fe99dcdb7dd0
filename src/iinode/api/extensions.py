"""What a node runs besides identifier resolution: metrics, monitoring, telemetry.

``mount_extensions(app, settings, service)`` builds them from the node's typed
settings, mounts their routers on the node's app and starts them; the app's
lifespan closes them with ``NodeExtensions.aclose``.

* every node: ``GET /metrics`` (Prometheus text) and the monitoring API under
  ``/monitoring``.  Children authenticate as ``300:0.NA/<child>`` against the
  HS_SECKEY in this node's delegation record ``0.NA/<child>``; views, details
  and notices need this node's administrator (``300:0.NA/<prefix>``).
* a node with a parent link (``reporting_url`` and ``report_secret``) sends its
  outbox upward, a heartbeat every ``heartbeat_interval`` and pulls notices
  every ``notice_interval``.
* an enterprise node with ``telemetry`` on: the telemetry pipeline (embedded or
  external MQTT broker, memory or NATS bus, Parquet store) and its API under
  ``/telemetry``, with the equipment registry kept as identifiers.

Several processes may serve one data directory (``iinode serve --workers N``).
The broker, ingest, sender, heartbeats and notice pulls run only in the process
holding the node's :class:`~iinode.api.lease.ProcessLease`; the others serve
the same API from the shared stores and take the lease over if its holder exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request

from iinode.api.delegations import HandleAuthenticator, child_labels, delegated_children
from iinode.api.handles import authenticate as authenticate_request
from iinode.api.lease import LEASE_FILE, ProcessLease
from iinode.api.monitoring import MonitoringApp, metrics_router, monitoring_router
from iinode.api.shared_state import REJECTS_FILE, RejectsSnapshot
from iinode.api.telemetry import TelemetryApp, telemetry_router
from iinode.errors import ConfigurationError, IinodeError
from iinode.identifiers import IndexedHandle, Prefix
from iinode.monitoring.auth import handle_identity
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.node import AssetList, MonitoringNode, MonitoringSettings, ParentLink
from iinode.monitoring.receiver import NodeLabels
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.telemetry.registry_handles import HandleRegistry
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import RejectLog

log = logging.getLogger(__name__)

#: Seconds between a waiting process's attempts to take the lease over.
TAKEOVER_INTERVAL = 1.0
#: Seconds between reject-count exchanges between the node's processes.
REJECTS_INTERVAL = 1.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ResolutionMetrics:
    """ASGI middleware counting ``GET /api/handles/…`` answers and their latency."""

    def __init__(self, app: ASGIApp, metrics: NodeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith("/api/handles/")
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            m = self.metrics
            m.resolutions.labels("http").inc()
            m.resolution_seconds.observe(time.perf_counter() - started)
            if status >= 400:
                m.resolution_errors.labels(str(status)).inc()


def _mqtt_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigurationError(f"mqtt_url {url!r} has no host")
    return parts.hostname, parts.port or 1883


def _label(prefix: str) -> str:
    return prefix.replace(".", "_")


class NodeExtensions:
    """Metrics, monitoring and (on enterprise nodes) telemetry of one node."""

    def __init__(
        self,
        settings: NodeSettings,
        service: HandleService,
        *,
        client: httpx.AsyncClient | None = None,
        takeover_interval: float = TAKEOVER_INTERVAL,
    ) -> None:
        self.settings = settings
        self.service = service
        self.metrics = NodeMetrics()
        self.auth = HandleAuthenticator(service)
        self.registry: HandleRegistry | None = None
        self.telemetry: Any = None  # TelemetryService, imported lazily (protocol libraries)
        self.monitoring: MonitoringNode | None = None
        self.lease = ProcessLease(settings.data_dir / LEASE_FILE)
        self._rejects_file = RejectsSnapshot(settings.data_dir / REJECTS_FILE)
        self._shared_rejects = RejectLog()
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
            from iinode.monitoring.metrics import NATIVE_COUNTER_HELP
            from iinode.resolution.native_counters import read_native_counters

            data_dir = settings.data_dir
            self.metrics.add_counters(
                "iinode_native", lambda: read_native_counters(data_dir), NATIVE_COUNTER_HELP
            )

    @property
    def primary(self) -> bool:
        """Whether this process runs the node's once-only work (holds the lease)."""
        return self.lease.held

    @property
    def runs_telemetry(self) -> bool:
        return self.settings.role is Role.ENTERPRISE and self.settings.telemetry

    def _size(self) -> float:
        return self._store_size

    async def refresh(self) -> None:
        """Values read before each scrape: store size, connector state."""
        self._store_size = float(await self.service.store.count())
        if self.telemetry is not None:  # mqtt, opcua:<endpoint>, modbus:<host>:<port>/<unit>
            self.telemetry.report_up(self.metrics.connector_up)
        if self.registry is not None and self.runs_telemetry:  # iinode_kpi_* per machine
            from iinode.telemetry.kpi_window import refresh_kpis

            live = None if self.telemetry is None else self.telemetry.store
            s = self.settings
            await refresh_kpis(self.metrics, self.registry, live or s.data_dir / s.telemetry_dir)

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
        from iinode.monitoring.node_sources import notice_assets, sources_of

        sources = sources_of(self)
        equipment = [] if self.registry is None else await self.registry.list()
        return notice_assets(equipment, None if sources is None else sources.inventory.inventory)

    def mqtt_address(self) -> tuple[str, int]:
        """Where the node ingests MQTT from (the embedded broker unless ``mqtt_url`` is set)."""
        s = self.settings
        if s.mqtt_url != "embedded":
            return _mqtt_address(s.mqtt_url)
        return s.mqtt_host, s.embedded_mqtt_port

    def _telemetry_settings(self) -> Any:
        from iinode.connectivity.mqtt import MqttSettings
        from iinode.connectivity.nats_bus import NatsBusSettings
        from iinode.connectivity.service import TelemetrySettings
        from iinode.telemetry.store import StoreSettings

        s = self.settings
        assert s.prefix is not None
        embedded = s.mqtt_url == "embedded"
        client = MqttSettings(
            client_id=f"iinode-{s.prefix}",
            # At the embedded broker the connector is the node's host client, the only
            # one allowed to send commands; its password lives as long as this process.
            username=f"iinode-{_label(s.prefix)}",
            password=secrets.token_urlsafe(32) if embedded else None,
            sparkplug_groups=(s.prefix,),
            host_id=f"iinode-{_label(s.prefix)}",
        )
        host, port = self.mqtt_address()
        mqtt = None
        if not embedded:
            mqtt = MqttSettings(
                host=host, port=port, client_id=client.client_id,
                sparkplug_groups=client.sparkplug_groups, host_id=client.host_id,
            )  # fmt: skip
        nats = None
        if s.bus_url != "memory:":
            name = f"IINODE_TELEMETRY_{_label(s.prefix)}"
            nats = NatsBusSettings(
                servers=s.bus_url, stream=name, subject=f"iinode.telemetry.{_label(s.prefix)}"
            )
        return TelemetrySettings(
            StoreSettings(s.data_dir / s.telemetry_dir),
            mqtt=mqtt,
            embedded_host=host,
            embedded_port=port,
            nats=nats,
            mqtt_client=client,
            embedded_password=s.mqtt_password,
        )

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
            from iinode.connectivity.endpoints import check_equipment

            self.registry = HandleRegistry(self.service, base_url=s.http_url, check=check_equipment)
        if self.lease.try_acquire():
            await self._start_primary()
        else:
            log.info(
                "node %s: process %d serves the API; process %s runs the broker and periodic work",
                s.prefix, os.getpid(), self.lease.holder(),
            )  # fmt: skip
            self._background.append(asyncio.create_task(self._wait_for_lease()))
        if self.runs_telemetry:
            self._background.append(asyncio.create_task(self._share_rejects()))
        if self.monitoring is not None:  # security events and assets from the node itself
            from iinode.monitoring.node_sources import run_node_sources

            self._background.append(asyncio.create_task(run_node_sources(self)))

    async def _start_primary(self) -> None:
        """The once-per-node work: monitoring sender and periodic tasks, telemetry."""
        if self.monitoring is not None:
            await self.monitoring.start()
        if self.registry is not None and self.runs_telemetry:
            from iinode.connectivity.service import TelemetryService

            if self.settings.mqtt_url == "embedded":
                check_embedded_broker(self.settings)
            service = TelemetryService(self._telemetry_settings(), self.registry)
            try:
                await service.start()
            except BaseException:
                await service.stop()
                raise
            self.telemetry = service
            for gauge in service.gauges():
                self.metrics.add_callback(*gauge)

    async def _stop_primary(self) -> None:
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
                self._rejects_file.read_into(self._shared_rejects)
            except OSError as exc:
                log.warning("sharing reject counts: %s", exc)
            await asyncio.sleep(REJECTS_INTERVAL)

    async def aclose(self) -> None:
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
            self.lease.release()

    def _telemetry_app(self) -> TelemetryApp:
        """The telemetry API: live objects in the ingesting process, shared stores elsewhere."""
        from iinode.telemetry.store import ParquetStore, StoreSettings

        assert self.registry is not None

        async def writer(request: Request) -> IndexedHandle | None:
            return await authenticate_request(self.service, request, required=False)

        t = self.telemetry
        if t is not None:
            store, live, rejects = t.store, t.live, t.rejects
        else:
            # Live values fall back to the latest stored ones when the state is empty.
            s = self.settings
            store = ParquetStore(StoreSettings(s.data_dir / s.telemetry_dir))
            live, rejects = LiveState(), self._shared_rejects
        return TelemetryApp(
            self.registry, store, live, rejects, authenticate=writer, mqtt=self.mqtt_address(),
            reader=self.registry,
        )  # fmt: skip

    def mount(self, app: FastAPI) -> None:
        """Routers (and the resolution counter) on the node's app, before it serves."""
        # Routes may be added while the app already runs (during its lifespan); the
        # middleware stack is then rebuilt for the requests that follow.
        app.user_middleware[:] = [
            m for m in app.user_middleware if getattr(m.cls, "__name__", "") != "ResolutionMetrics"
        ]
        app.middleware_stack = None
        app.add_middleware(ResolutionMetrics, metrics=self.metrics)
        app.include_router(metrics_router(self.metrics, refresh=self.refresh))
        node = self.monitoring
        if node is not None:
            service = self.service

            async def children() -> list[str]:
                return await delegated_children(service)

            async def labels(child: Prefix) -> NodeLabels | None:
                return await child_labels(service, child)

            app.include_router(
                monitoring_router(
                    MonitoringApp(
                        node.receiver,
                        node.authenticate,
                        node.board,
                        node.clock,
                        authorize_admin=self.auth.is_admin,
                        answer=node.answer_notice if node.settings.answers_notices else None,
                        stale_after=3 * self.settings.heartbeat_interval,
                        children=children,
                        labels=labels,
                        outbox=node.outbox,
                    )
                )
            )
        if self.registry is not None and self.runs_telemetry:
            telemetry_app = self._telemetry_app()
            app.include_router(telemetry_router(telemetry_app))
            from iinode.api.kpi import kpi_router, node_kpi_app

            kpi_app = node_kpi_app(telemetry_app, self)
            app.include_router(kpi_router(kpi_app))
            from iinode.api.alarms import alarm_router, node_alarm_app

            app.include_router(alarm_router(node_alarm_app(kpi_app, self)))


def check_embedded_broker(settings: NodeSettings) -> None:
    """Raise ``ConfigurationError`` (one line naming the setting) if the broker port is taken."""
    host, port = settings.mqtt_host, settings.embedded_mqtt_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigurationError(
                f"the embedded MQTT broker cannot listen on {host}:{port} ({reason}); "
                "set mqtt_port (IINODE_MQTT_PORT) in node.toml to a free port, "
                "or mqtt_url to an external broker"
            ) from None


async def mount_extensions(
    app: FastAPI,
    settings: NodeSettings,
    service: HandleService,
    *,
    client: httpx.AsyncClient | None = None,
) -> NodeExtensions:
    """Start the node's extensions and mount their routers on ``app`` (not serving yet)."""
    extensions = NodeExtensions(settings, service, client=client)
    try:
        await extensions.start()
        extensions.mount(app)
    except BaseException:
        await extensions.aclose()
        raise
    app.state.extensions = extensions
    return extensions


async def close_extensions(app: FastAPI) -> None:
    """Stop what ``mount_extensions`` started on ``app`` (nothing if it did not run)."""
    extensions: NodeExtensions | None = getattr(app.state, "extensions", None)
    if extensions is not None:
        app.state.extensions = None
        await extensions.aclose()


__all__ = [
    "HandleAuthenticator",
    "NodeExtensions",
    "ResolutionMetrics",
    "check_embedded_broker",
    "close_extensions",
    "mount_extensions",
]
