"""HTTP adapters of what a node runs besides resolution: metrics, monitoring, telemetry.

The parts themselves are built by the node's assembly (``iinode.assembly``);
this module only turns them into what the routers take:

* ``count_resolutions(app, metrics)``: the ``GET /api/handles/…`` counter and
  latency histogram (ASGI middleware).
* ``monitoring_app(...)``: the monitoring API under ``/monitoring``.  Children
  authenticate as ``300:0.NA/<child>`` against the HS_SECKEY in this node's
  delegation record ``0.NA/<child>``; views, details and notices need this
  node's administrator (``300:0.NA/<prefix>``).
* ``telemetry_app(...)``: the telemetry API under ``/telemetry``, from the live
  pipeline in the process running it, else from the shared stores.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from iinode.api.delegations import HandleAuthenticator, child_labels, delegated_children
from iinode.api.monitoring_common import MonitoringApp
from iinode.api.rest_common import authenticate as authenticate_request
from iinode.api.telemetry import TelemetryApp
from iinode.connectivity.service import TelemetryService
from iinode.identifiers import IndexedHandle, Prefix
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.node import MonitoringNode
from iinode.monitoring.receiver import NodeLabels
from iinode.node.service import HandleService
from iinode.telemetry.registry_handles import HandleRegistry
from iinode.telemetry.store import ParquetStore, StoreSettings
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import RejectLog

# ASGI's own types: a scope and its messages are open mappings by the specification.
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


def count_resolutions(app: FastAPI, metrics: NodeMetrics) -> None:
    """Count ``app``'s resolutions into ``metrics`` (replacing an earlier counter).

    Routes may be added while the app already runs (during its lifespan); the
    middleware stack is then rebuilt for the requests that follow.
    """
    ours = ResolutionMetrics.__name__
    app.user_middleware[:] = [
        m for m in app.user_middleware if getattr(m.cls, "__name__", "") != ours
    ]
    app.middleware_stack = None
    app.add_middleware(ResolutionMetrics, metrics=metrics)


def monitoring_app(
    node: MonitoringNode,
    service: HandleService,
    auth: HandleAuthenticator,
    heartbeat_interval: float,
) -> MonitoringApp:
    """The monitoring API of a node: its children are its delegations."""

    async def children() -> list[str]:
        return await delegated_children(service)

    async def labels(child: Prefix) -> NodeLabels | None:
        return await child_labels(service, child)

    return MonitoringApp(
        node.receiver,
        node.authenticate,
        node.board,
        node.clock,
        authorize_admin=auth.is_admin,
        answer=node.answer_notice if node.settings.answers_notices else None,
        stale_after=3 * heartbeat_interval,
        children=children,
        labels=labels,
        outbox=node.outbox,
    )


def telemetry_app(
    service: HandleService,
    registry: HandleRegistry,
    pipeline: TelemetryService | None,
    *,
    store_dir: Path,
    shared_rejects: RejectLog,
    mqtt: tuple[str, int],
) -> TelemetryApp:
    """The telemetry API: ``pipeline``'s live objects in the process running it (the
    lease holder), else the shared store and the reject counts it publishes."""

    async def writer(request: Request) -> IndexedHandle | None:
        return await authenticate_request(service, request, required=False)

    if pipeline is not None:
        store, live, rejects = pipeline.store, pipeline.live, pipeline.rejects
    else:
        # Live values fall back to the latest stored ones when the state is empty.
        store, live, rejects = ParquetStore(StoreSettings(store_dir)), LiveState(), shared_rejects
    return TelemetryApp(
        registry, store, live, rejects, authenticate=writer, mqtt=mqtt, reader=registry
    )


__all__ = ["ResolutionMetrics", "count_resolutions", "monitoring_app", "telemetry_app"]
