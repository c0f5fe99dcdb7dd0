"""The telemetry service starts without its broker and keeps its periodic work alive."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from iinode.connectivity.broker import EmbeddedBroker
from iinode.connectivity.mqtt import MqttSettings
from iinode.connectivity.service import TelemetryService, TelemetrySettings
from iinode.monitoring.metrics import NodeMetrics
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.store import StoreSettings
from support import free_port


def scrape(service: TelemetryService) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    metrics = NodeMetrics()
    for gauge in service.gauges():
        metrics.add_callback(*gauge)
    service.report_up(metrics.connector_up)
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


async def test_a_broker_that_is_down_does_not_stop_the_start(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    settings = TelemetrySettings(
        StoreSettings(tmp_path / "ts"),
        mqtt=MqttSettings(host="127.0.0.1", port=port, client_id="t-down",
                          reconnect_min=0.05, reconnect_max=0.2),
    )  # fmt: skip
    started = time.monotonic()
    async with TelemetryService(settings, MemoryRegistry()) as service:
        assert time.monotonic() - started < 3.0
        assert service.connector_up() == {"mqtt": False}
        for _ in range(100):
            if service.connector is not None and service.connector.stats.disconnects >= 2:
                break
            await asyncio.sleep(0.05)
        seen = scrape(service)
        assert seen["iinode_connector_up"][(("connector", "mqtt"),)] == 0.0
        assert seen["iinode_telemetry_mqtt_disconnects_total"][()] >= 2
        # the broker comes up later: the connector gets there by itself
        async with EmbeddedBroker("127.0.0.1", port):
            assert await service.wait_connected(15)
            assert scrape(service)["iinode_connector_up"][(("connector", "mqtt"),)] == 1.0


async def test_maintenance_survives_unexpected_errors(tmp_path: Path) -> None:
    settings = TelemetrySettings(
        StoreSettings(tmp_path / "ts"), embedded_port=free_port(), maintenance_interval_s=0.02
    )
    async with TelemetryService(settings, MemoryRegistry()) as service:
        calls = 0
        real = service.store.compact_crowded

        def flaky(min_files: int = 32, now: float | None = None) -> int:
            nonlocal calls
            calls += 1
            if calls <= 2:
                raise RuntimeError("disk went away")
            return real(min_files, now)

        service.store.compact_crowded = flaky  # type: ignore[method-assign]
        for _ in range(250):
            if calls >= 4:
                break
            await asyncio.sleep(0.02)
        assert calls >= 4  # kept running after the failures
        assert service.maintenance_errors == 2
        assert scrape(service)["iinode_telemetry_maintenance_errors_total"][()] == 2.0
