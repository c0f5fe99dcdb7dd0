"""The assembled pipeline: embedded broker (or Mosquitto) + bus (memory or NATS) + store."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from iinode.connectivity.mqtt import MqttSettings
from iinode.connectivity.nats_bus import NatsBusSettings
from iinode.connectivity.service import TelemetryService, TelemetrySettings, default_settings
from iinode.connectivity.sim_sparkplug import SparkplugSimulator
from iinode.monitoring.metrics import NodeMetrics
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.simulator import Factory
from iinode.telemetry.store import StoreSettings
from support import free_port, require_service


def settings_for(kind: str, root: Path, prefix: str) -> TelemetrySettings:
    client = MqttSettings(client_id=f"iinode-{prefix}", sparkplug_groups=(prefix,),
                          json_root=f"t/{prefix}", host_id=f"h-{prefix}")  # fmt: skip
    if kind == "embedded+memory":
        return TelemetrySettings(StoreSettings(root), embedded_port=free_port(), mqtt_client=client)
    host, port = require_service("mosquitto")
    nhost, nport = require_service("nats")
    name = "S" + uuid.uuid4().hex[:12].upper()
    return TelemetrySettings(
        StoreSettings(root),
        mqtt=MqttSettings(host=host, port=port, client_id=f"iinode-{prefix}",
                          sparkplug_groups=(prefix,), json_topics=False, host_id=f"h-{prefix}"),
        nats=NatsBusSettings(servers=f"nats://{nhost}:{nport}", stream=name,
                             subject=f"test.{name}", file_storage=False),
        workers=2,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["embedded+memory", "mosquitto+nats"])
async def test_simulated_factory_through_the_service(kind: str, tmp_path: Path) -> None:
    prefix = f"88.{uuid.uuid4().int % 10**9}"
    factory = Factory.demo(prefix, 2, seed=3)
    settings = replace(settings_for(kind, tmp_path / "ts", prefix), compact_min_files=2)
    async with TelemetryService(settings, MemoryRegistry(factory.equipment())) as service:
        try:
            # start does not wait for an external broker; the edge node must not publish first
            assert await service.wait_connected(10)
            sent = 2 * 11
            async with SparkplugSimulator(factory, *service.mqtt_address) as sim:
                for _ in range(20):
                    sent += await sim.step(30)
            assert await service.drained(sent)
            await service.maintain_once()
            assert len(service.store.files()) == len(service.store.partitions())
        finally:
            if settings.nats is not None and service.bus is not None:
                await service.bus.delete_stream()  # type: ignore[attr-defined]
    assert service.rejects.total == 0
    metrics = NodeMetrics()
    for gauge in service.gauges():
        metrics.add_callback(*gauge)
    text = metrics.render().decode()
    assert f"iinode_telemetry_points_stored_total {float(sent)}" in text
    assert 'iinode_telemetry_rejects_total{reason="wrong_type"} 0.0' in text
    assert "iinode_telemetry_mqtt_connected 0.0" in text
    machine = factory.machines[1]
    assert service.store.latest(machine.spec.id)["good_count"][1] == machine.good
    assert service.live.get(machine.spec.id)["state"].value == machine.state.value


def test_default_settings(tmp_path: Path) -> None:
    s = default_settings(tmp_path, embedded_port=1884)
    assert s.mqtt is None
    assert s.nats is None
    assert s.embedded_port == 1884
