"""The reading bus on NATS JetStream: ingest workers scale out as a queue group.

One stream (work-queue retention) holds reading batches on one subject; every
subscriber pulls from the same durable consumer, so each batch is handled by
exactly one worker, and a batch not acknowledged within ``ack_wait`` is
delivered again.  The stream is bounded (``max_bytes``, ``max_msgs``, discard
new): when it is full ``publish`` retries with back-off instead of dropping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from iinode.errors import RemoteProtocolError, TransportError
from iinode.telemetry.bus import BusClosed, Delivery, Subscription
from iinode.telemetry.codec import decode_batch, encode_batch
from iinode.telemetry.model import Reading
from iinode.telemetry.validation import RejectLog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NatsBusSettings:
    servers: str = "nats://127.0.0.1:4222"
    stream: str = "IINODE_TELEMETRY"
    subject: str = "iinode.telemetry.readings"
    durable: str = "ingest"
    max_bytes: int = 256 * 1024 * 1024
    max_msgs: int = 100_000
    ack_wait: float = 30.0
    file_storage: bool = True
    publish_retry_max: float = 1.0
    connect_wait: float = 5.0


async def _log_error(exc: Exception) -> None:
    log.warning("NATS: %s", exc)


class NatsBus:
    """A :class:`~iinode.telemetry.bus.ReadingBus` on a JetStream work-queue stream."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        settings: NatsBusSettings,
        rejects: RejectLog | None = None,
    ) -> None:
        self.rejects = rejects if rejects is not None else RejectLog()
        self._nc = nc
        self._js = js
        self.settings = settings
        self._closed = False

    @classmethod
    async def connect(
        cls, settings: NatsBusSettings | None = None, rejects: RejectLog | None = None
    ) -> NatsBus:
        settings = settings or NatsBusSettings()
        nc = Client()
        try:
            async with asyncio.timeout(settings.connect_wait):
                await nc.connect(
                    settings.servers,
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=_log_error,
                )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            await nc.close()
            raise TransportError(f"cannot reach NATS at {settings.servers}: {exc!r}") from exc
        js = nc.jetstream()
        config = StreamConfig(
            name=settings.stream,
            subjects=[settings.subject],
            retention=RetentionPolicy.WORK_QUEUE,
            discard=DiscardPolicy.NEW,
            max_bytes=settings.max_bytes,
            max_msgs=settings.max_msgs,
            storage=StorageType.FILE if settings.file_storage else StorageType.MEMORY,
        )
        try:
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await js.update_stream(config)
        except nats.errors.Error as exc:
            await nc.close()
            raise TransportError(f"cannot create stream {settings.stream}: {exc}") from exc
        return cls(nc, js, settings, rejects)

    async def publish(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        if self._closed:
            raise BusClosed("bus is closed")
        data = encode_batch(readings)
        delay = 0.005
        while True:
            try:
                await self._js.publish(self.settings.subject, data, stream=self.settings.stream)
                return
            except nats.js.errors.APIError as exc:
                if exc.err_code not in (10077, 10047, 10028):
                    raise TransportError(f"JetStream refused a batch: {exc}") from exc
            except TimeoutError:
                pass
            except nats.errors.Error as exc:
                raise TransportError(f"JetStream publish failed: {exc}") from exc
            if self._closed:
                raise BusClosed("bus is closed")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.publish_retry_max)

    async def subscribe(self) -> Subscription:
        if self._closed:
            raise BusClosed("bus is closed")
        config = ConsumerConfig(
            durable_name=self.settings.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.settings.ack_wait,
            max_ack_pending=10_000,
        )
        psub = await self._js.pull_subscribe(
            self.settings.subject,
            durable=self.settings.durable,
            stream=self.settings.stream,
            config=config,
        )
        return _NatsSubscription(psub, self.rejects)

    async def delete_stream(self) -> None:
        """Remove the stream and everything in it (tests and resets)."""
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._js.delete_stream(self.settings.stream)

    async def pending(self) -> int:
        """Batches held in the stream (not yet acknowledged)."""
        info = await self._js.stream_info(self.settings.stream)
        return int(info.state.messages)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._nc.drain()


class _NatsSubscription:
    def __init__(self, psub: JetStreamContext.PullSubscription, rejects: RejectLog) -> None:
        self._psub = psub
        self._rejects = rejects

    async def fetch(self, max_batches: int = 16, wait: float = 1.0) -> list[Delivery]:
        try:
            msgs = await self._psub.fetch(batch=max_batches, timeout=wait)
        except TimeoutError:  # nats raises both its own subclass and the builtin
            return []
        except nats.errors.ConnectionClosedError as exc:
            raise BusClosed("NATS connection is closed") from exc
        out: list[Delivery] = []
        for msg in msgs:
            try:
                readings = decode_batch(msg.data)
            except RemoteProtocolError as exc:
                self._rejects.malformed(f"bus batch: {exc.message}")
                await msg.term()
                continue
            out.append(Delivery(readings, msg.ack, msg.nak))
        return out

    async def close(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._psub.unsubscribe()
