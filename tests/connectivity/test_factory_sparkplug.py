"""A simulated factory through Sparkplug B, a real broker, the bus and the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.sim_sparkplug import SparkplugSimulator
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.simulator import Factory
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import ReadingValidator


async def test_simulated_factory_is_stored_and_queryable(
    broker: tuple[str, int], tmp_path: Path
) -> None:
    import uuid

    prefix = f"88.{uuid.uuid4().int % 10**9}"
    factory = Factory.demo(prefix, 3, seed=11)
    registry = MemoryRegistry(factory.equipment())
    validator = ReadingValidator(registry, max_future_us=10**15)
    bus = MemoryBus()
    store = ParquetStore(tmp_path / "ts")
    live = LiveState()
    worker = IngestWorker(bus, validator, store, live, wait=0.05)
    connector = MqttConnector(
        MqttSettings(
            host=broker[0],
            port=broker[1],
            client_id=f"iinode-{prefix}",
            sparkplug_groups=(prefix,),
            json_topics=False,
            host_id=f"h{prefix}",
        ),
        bus,
        rejects=validator.rejects,
        live=live,
    )
    tasks = [asyncio.create_task(connector.run()), asyncio.create_task(worker.run())]
    try:
        async with asyncio.timeout(10):
            await connector.connected.wait()
        sent = 0
        async with SparkplugSimulator(factory, *broker) as sim:
            sent += len(factory.machines) * 11
            for _ in range(60):
                sent += await sim.step(10)
        for _ in range(200):
            if worker.stats.accepted >= sent:
                break
            await asyncio.sleep(0.05)
    finally:
        connector.stop()
        worker.stop()
        await asyncio.gather(*tasks)
    assert validator.rejects.total == 0
    assert worker.stats.accepted == sent
    machine = factory.machines[0]
    eq = machine.spec.id
    latest = store.latest(eq)
    assert latest["good_count"][1] == machine.good
    assert latest["state"][1] == machine.state.value
    assert live.get(eq)["energy"].value == round(machine.energy_kwh, 4)
    history = store.history(eq, "temperature")
    assert len(history) >= 50
    buckets = store.downsample(eq, "power", 60_000_000)
    assert sum(b.count for b in buckets) == len(store.history(eq, "power"))
