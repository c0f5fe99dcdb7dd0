"""The MQTT connector: Sparkplug B and plain JSON messages in, reading batches onto the bus.

It subscribes with QoS 1 on a persistent session (fixed client id, no clean
session), so a QoS 1 message published while the connector or broker was away
is delivered when the session resumes.  Lost connections are retried with
exponential back-off.  Malformed messages and Sparkplug protocol trouble are
counted in the reject log and the connector keeps going; rebirth requests are
sent back to the edge node.

Back-pressure: a QoS 1 message is acknowledged (PUBACK) only after the bus has
accepted its readings, and never out of order.  The broker sends a client only
so many unacknowledged messages (Mosquitto's ``max_inflight_messages``, 20 by
default), so while ingest is behind the backlog stays in the broker, not in
this process.  The client's incoming queue is bounded as well
(``max_queued_messages``); should a QoS 1 message overflow it anyway (a broker
without an in-flight limit), the connector reconnects so that the broker
delivers every unacknowledged message again.  Messages taken but not yet
acknowledged when the connection ends are redelivered on the next session.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt

from iinode.connectivity import json_scheme
from iinode.connectivity.sparkplug import NAMESPACE, HostApplication, HostResult, Outgoing
from iinode.errors import RemoteProtocolError, ValueInvalid
from iinode.telemetry.bus import ReadingBus
from iinode.telemetry.model import Reading, now_us
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import Reject, RejectLog, RejectReason

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "iinode-ingest"
    username: str | None = "iinode"
    password: str | None = None
    qos: int = 1
    keepalive: int = 30
    persistent_session: bool = True
    reconnect_min: float = 0.2
    reconnect_max: float = 30.0
    sparkplug: bool = True
    sparkplug_groups: tuple[str, ...] = ("+",)
    json_topics: bool = True
    json_root: str = json_scheme.ROOT
    batch_points: int = 10_000
    host_id: str = "iinode"
    max_queued_messages: int = 1_000

    def __post_init__(self) -> None:
        if self.max_queued_messages < 1:
            raise ValueInvalid("max_queued_messages must be at least 1")
        if self.qos not in (0, 1, 2):
            raise ValueInvalid(f"MQTT QoS must be 0, 1 or 2, not {self.qos}")


@dataclass(slots=True)
class ConnectorStats:
    connects: int = 0
    disconnects: int = 0
    messages: int = 0
    readings: int = 0
    acked: int = 0
    queued: int = 0
    max_queued: int = 0
    overflows: int = 0
    last_error: str = ""


class _Inbox(asyncio.Queue[aiomqtt.Message]):
    """The client's bounded incoming queue; remembers what it had to turn away."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.turned_away_qos0 = 0
        self.turned_away_acked = 0

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if self.full():
            if item.qos > 0:
                self.turned_away_acked += 1
            else:
                self.turned_away_qos0 += 1
        super().put_nowait(item)


class _Client(aiomqtt.Client):
    """An aiomqtt client that acknowledges QoS 1/2 messages only when told to."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, queue_type=_Inbox, **kwargs)
        self._client.manual_ack_set(True)

    @property
    def inbox(self) -> _Inbox:
        assert isinstance(self._queue, _Inbox)
        return self._queue

    def ack(self, message: aiomqtt.Message) -> None:
        if message.qos > 0:
            self._client.ack(message.mid, message.qos)


class MqttConnector:
    """Runs until :meth:`stop`; start it with ``asyncio.create_task(connector.run())``."""

    def __init__(
        self,
        settings: MqttSettings,
        bus: ReadingBus,
        *,
        rejects: RejectLog | None = None,
        live: LiveState | None = None,
        host: HostApplication | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.rejects = rejects if rejects is not None else RejectLog()
        self.live = live
        self.host = host or HostApplication(settings.host_id)
        self.clock = clock
        self.stats = ConnectorStats()
        self.connected = asyncio.Event()
        self._stopping = False
        self._consumer: asyncio.Task[None] | None = None

    def stop(self) -> None:
        self._stopping = True
        if self._consumer is not None:
            self._consumer.cancel()

    def _client(self) -> _Client:
        s = self.settings
        state = self.host.state(False, self.clock() // 1000)
        return _Client(
            s.host,
            s.port,
            identifier=s.client_id,
            username=s.username,
            password=s.password,
            clean_session=not s.persistent_session,
            keepalive=s.keepalive,
            will=aiomqtt.Will(state.topic, state.payload, state.qos, state.retain)
            if s.sparkplug
            else None,
            timeout=5.0,
            max_queued_incoming_messages=s.max_queued_messages,
        )

    async def run(self) -> None:
        delay = self.settings.reconnect_min
        while not self._stopping:
            try:
                async with self._client() as client:
                    self.stats.connects += 1
                    delay = self.settings.reconnect_min
                    await self._subscribe(client)
                    self.connected.set()
                    self._consumer = asyncio.create_task(self._consume(client))
                    ticker = asyncio.create_task(self._tick(client))
                    try:
                        await self._consumer
                    except asyncio.CancelledError:
                        if not self._stopping:
                            raise
                    finally:
                        ticker.cancel()
                        await asyncio.gather(ticker, return_exceptions=True)
                    if self._stopping and self.settings.sparkplug:
                        await self._send(client, self.host.state(False, self.clock() // 1000))
            except aiomqtt.MqttError as exc:
                self.stats.disconnects += 1
                self.stats.last_error = str(exc)
                log.warning("MQTT %s:%s: %s; retrying in %.1f s", self.settings.host,
                            self.settings.port, exc, delay)  # fmt: skip
            finally:
                self.connected.clear()
                self._consumer = None
            if self._stopping:
                return
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, self.settings.reconnect_max)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        topics: list[str] = []
        if self.settings.sparkplug:
            topics += self.host.subscriptions(self.settings.sparkplug_groups)
        if self.settings.json_topics:
            topics.append(json_scheme.subscription(self.settings.json_root))
        for topic in topics:
            await client.subscribe(topic, qos=self.settings.qos)
        if self.settings.sparkplug:
            await self._send(client, self.host.state(True, self.clock() // 1000))

    async def _send(self, client: aiomqtt.Client, out: Outgoing) -> None:
        await client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)

    async def _consume(self, client: _Client) -> None:
        """Decode messages into batches; acknowledge each once the bus holds its readings.

        Messages still unacknowledged when this ends (cancelled, disconnected)
        are delivered again by the broker on the next session.
        """
        pending: list[Reading] = []
        taken: list[aiomqtt.Message] = []
        inbox = client.inbox
        async for message in client.messages:
            self.stats.messages += 1
            self.stats.queued = len(client.messages)
            self.stats.max_queued = max(self.stats.max_queued, self.stats.queued + 1)
            pending.extend(await self._decode(client, message))
            taken.append(message)
            if len(pending) >= self.settings.batch_points or len(client.messages) == 0:
                await self._flush(pending)
                pending = []
                for m in taken:
                    client.ack(m)
                self.stats.acked += len(taken)
                taken = []
            if inbox.turned_away_acked or inbox.turned_away_qos0:
                self._overflowed(inbox)

    def _overflowed(self, inbox: _Inbox) -> None:
        lost, kept = inbox.turned_away_qos0, inbox.turned_away_acked
        inbox.turned_away_qos0 = inbox.turned_away_acked = 0
        self.stats.overflows += lost + kept
        if lost:
            log.warning("MQTT incoming queue full: %d QoS 0 messages dropped", lost)
        if kept:
            raise aiomqtt.MqttError(
                f"incoming queue full ({self.settings.max_queued_messages} messages): "
                f"{kept} QoS 1/2 messages turned away; reconnecting to have them redelivered"
            )

    async def _flush(self, readings: list[Reading]) -> None:
        if readings:
            await self.bus.publish(readings)
            self.stats.readings += len(readings)

    async def _tick(self, client: aiomqtt.Client) -> None:
        """End Sparkplug reorder waits on time, even when no message arrives."""
        period = max(self.host.settings.reorder_timeout_us / 4e6, 0.05)
        while True:
            await asyncio.sleep(period)
            deadline = self.host.next_deadline()
            now = self.clock()
            if deadline is not None and deadline <= now:
                await self._flush(await self._apply(client, self.host.expire(now), now))

    async def _apply(self, client: aiomqtt.Client, result: HostResult, now: int) -> list[Reading]:
        for error in result.malformed:
            self.rejects.malformed(error)
        for error in result.errors:
            self.rejects.add(Reject(RejectReason.PROTOCOL, error))
        for reply in result.replies:
            await self._send(client, reply)
        if self.live is not None:
            for equipment in result.offline:
                self.live.mark_stale(equipment, now)
        return result.readings

    async def _decode(self, client: aiomqtt.Client, message: aiomqtt.Message) -> list[Reading]:
        topic = message.topic.value
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload).encode()
        now = self.clock()
        if topic.startswith(NAMESPACE + "/"):
            return await self._apply(client, self.host.receive(topic, bytes(payload), now), now)
        try:
            return json_scheme.decode(topic, bytes(payload), now, self.settings.json_root)
        except RemoteProtocolError as exc:
            self.rejects.malformed(exc.message)
            return []
