from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from iinode.telemetry.bus import MemoryBus, ReadingBus
from support import require_service


@pytest.fixture(params=["memory", "nats"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """A factory ``await make_bus(max_points)`` for each bus backend; cleans up after."""
    made: list[ReadingBus] = []
    streams: list[object] = []

    async def factory(max_points: int = 10_000) -> ReadingBus:
        if request.param == "memory":
            bus: ReadingBus = MemoryBus(max_points=max_points)
        else:
            from iinode.connectivity.nats_bus import NatsBus, NatsBusSettings

            host, port = require_service("nats")
            name = "T" + uuid.uuid4().hex[:12].upper()
            settings = NatsBusSettings(
                servers=f"nats://{host}:{port}",
                stream=name,
                subject=f"test.{name}",
                durable="ingest",
                max_msgs=max(1, max_points // 100),
                ack_wait=2.0,
                file_storage=False,
                publish_retry_max=0.05,
            )
            nbus = await NatsBus.connect(settings)
            streams.append(nbus)
            bus = nbus
        made.append(bus)
        return bus

    yield factory
    for bus in made:
        try:
            if hasattr(bus, "delete_stream"):
                await bus.delete_stream()
        finally:
            await bus.close()
