"""A node's HTTP app: the Handle API, its metrics, monitoring, telemetry and console.

``node_app(node)`` serves a node built by ``build_node`` (the demo, the tests);
``app_for_settings(settings)`` builds the node in the app's lifespan (what each
``iinode serve`` process runs: the settings arrive resolved, as data).  The
routers are thin adapters over the node's typed parts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from iinode.api.alarms import HandleWriteCheck, alarm_router, node_alarm_app
from iinode.api.app import Lifespan, base_app, install_handle_api
from iinode.api.extensions import count_resolutions, monitoring_app, telemetry_app
from iinode.api.kpi import kpi_router, node_kpi_app
from iinode.api.monitoring import metrics_router, monitoring_router
from iinode.api.telemetry import telemetry_router
from iinode.assembly.node import Node, build_node
from iinode.node.settings import NodeSettings
from iinode.node.settings_sources import settings_from_environment
from iinode.telemetry.ingest import IngestWorker
from iinode.web import mount_console


def install_node(app: FastAPI, node: Node) -> None:
    """Add ``node``'s routes to ``app`` (before it serves, or during its lifespan)."""
    service, extensions = node.service, node.extensions
    install_handle_api(app, service, node.resolver)
    mount_console(app, service, node.resolver, node.metrics)  # the console and /docs
    count_resolutions(app, node.metrics)
    app.include_router(metrics_router(node.metrics, refresh=extensions.refresh))
    monitoring = extensions.monitoring
    if monitoring is not None:
        heartbeat = node.settings.heartbeat_interval
        app.include_router(
            monitoring_router(monitoring_app(monitoring, service, node.auth, heartbeat))
        )
    registry = extensions.registry
    if registry is not None and extensions.runs_telemetry:
        telemetry = telemetry_app(
            service, registry, extensions.telemetry, store_dir=extensions.telemetry_dir,
            shared_rejects=extensions.shared_rejects, mqtt=extensions.mqtt_address(),
        )  # fmt: skip
        app.include_router(telemetry_router(telemetry))

        def workers() -> list[IngestWorker]:
            pipeline = extensions.telemetry
            return [] if pipeline is None else list(pipeline.workers)

        write_check = HandleWriteCheck(service)
        kpis = node_kpi_app(telemetry, node.settings, write_check, workers)
        app.include_router(kpi_router(kpis))
        alarms = node_alarm_app(kpis, node.settings, monitoring, write_check, extensions.spawn)
        app.include_router(alarm_router(alarms))
    app.openapi_schema = None  # the document is made again with these routes


def node_app(node: Node, lifespan: Lifespan | None = None) -> FastAPI:
    """The HTTP app of a running ``node`` (closing the node stays with the caller)."""
    app = base_app(lifespan)
    install_node(app, node)
    return app


def app_for_settings(settings: NodeSettings) -> FastAPI:
    """An app that builds its node on start-up and closes it on shut-down.

    The routes are added to this very app once the node is built (no mounted
    sub-application, so requests are routed once); they are removed again at
    shut-down, so the app can be started again.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        base_routes = list(app.router.routes)
        node = await build_node(settings)
        try:
            install_node(app, node)
            yield
        finally:
            app.router.routes[:] = base_routes
            await node.aclose()

    return base_app(lifespan)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: the settings a parent resolved, as it put them
    in ``IINODE_RESOLVED_SETTINGS`` (not re-read from node.toml)."""
    return app_for_settings(settings_from_environment())


__all__ = ["app_for_settings", "app_from_env", "install_node", "node_app"]
