from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from iinode.connectivity.nats_bus import NatsBus, NatsBusSettings
from iinode.errors import TransportError
from iinode.telemetry.codec import encode_batch
from iinode.telemetry.model import Reading
from iinode.telemetry.validation import RejectReason
from support import free_port, require_service


async def test_malformed_batches_are_counted_and_skipped() -> None:
    host, port = require_service("nats")
    name = "T" + uuid.uuid4().hex[:12].upper()
    settings = NatsBusSettings(
        servers=f"nats://{host}:{port}", stream=name, subject=f"test.{name}", file_storage=False
    )
    bus = await NatsBus.connect(settings)
    try:
        sub = await bus.subscribe()
        nc = await nats.connect(settings.servers)
        js = nc.jetstream()
        await js.publish(settings.subject, b"not json")
        await js.publish(settings.subject, b'[["88.1/X", "t", "soon", 1, 192]]')
        await js.publish(settings.subject, encode_batch([Reading("88.1/X", "t", 1, 2.0)]))
        await nc.close()
        got = []
        for _ in range(5):
            for d in await sub.fetch(10, wait=0.5):
                got.extend(d.readings)
                await d.ack()
            if got:
                break
        assert got == [Reading("88.1/X", "t", 1, 2.0)]
        assert bus.rejects.counts[RejectReason.MALFORMED] == 2
        for _ in range(50):
            if await bus.pending() == 0:
                break
            await asyncio.sleep(0.05)
        assert await bus.pending() == 0
        await sub.close()
    finally:
        await bus.delete_stream()
        await bus.close()


async def test_unreachable_server_is_a_transport_error() -> None:
    settings = NatsBusSettings(servers=f"nats://127.0.0.1:{free_port()}", connect_wait=1.0)
    with pytest.raises(TransportError, match="cannot reach NATS"):
        await NatsBus.connect(settings)
