"""The MQTT connector: Sparkplug B and plain JSON messages in, reading batches onto the bus.

It subscribes with QoS 1 on a persistent session (fixed client id, no clean
session), so a QoS 1 message published while the connector or broker was away
is delivered when the session resumes.  Lost connections are retried with
exponential back-off.  Malformed messages and Sparkplug protocol trouble are
counted in the reject log and the connector keeps going; rebirth requests are
sent back to the edge node.

Back-pressure: a QoS 1 message is acknowledged (PUBACK) only after the bus has
accepted its readings, in the order received, so while ingest is behind the
backlog stays in the broker (a persistent session), not in this process.  The
broker's in-flight limit (Mosquitto's ``max_inflight_messages``, 20 by
default) keeps most of it there, but brokers do not hold to it reliably
(Mosquitto 2.0.11 sends past it once acknowledgements flow), so the client's
incoming queue is bounded too (``max_queued_messages``): a QoS 1 message that
overflows it is not acknowledged, and the connector reconnects so that the
broker delivers every unacknowledged message again.  Messages taken but not
yet acknowledged when a connection ends are likewise redelivered on the next
session (with a clean session, MQTT discards them).  A Sparkplug message the
host holds in its reorder buffer is acknowledged only once it is processed (the
gap filled, or the Reorder Timeout passed) or dropped; since acknowledgements
keep the order of receipt, the messages after it wait too.

Failures other than MQTT ones (a bus that cannot take readings, such as NATS
during an outage, or anything unexpected) end the connection the same way: the
unacknowledged messages stay with the broker and the connector reconnects with
back-off.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from iinode.connectivity import json_scheme
from iinode.connectivity.sparkplug import NAMESPACE, HostApplication, HostResult, Outgoing
from iinode.connectivity.sparkplug.host import Birth
from iinode.errors import IinodeError, RemoteProtocolError, ValueInvalid
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
    password: str | None = field(default=None, repr=False)
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
    #: Acknowledge QoS 1/2 messages once the bus holds their readings (back-pressure).
    #: Turn off for brokers that drop a message whose acknowledgement is slow (amqtt
    #: gives up after 5 s) and have no in-flight limit to bound the client's queue.
    manual_ack: bool = True

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
    #: Connections ended by a failure that was not MQTT's (the bus, or a bug).
    failures: int = 0
    last_error: str = ""


class _Inbox(asyncio.Queue[aiomqtt.Message]):
    """The client's bounded incoming queue; remembers what it had to turn away."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.turned_away_qos0 = 0
        self.turned_away_qos12 = 0

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if self.full():
            if item.qos > 0:
                self.turned_away_qos12 += 1
            else:
                self.turned_away_qos0 += 1
        super().put_nowait(item)

    @property
    def turned_away(self) -> int:
        return self.turned_away_qos0 + self.turned_away_qos12


class _Client(aiomqtt.Client):
    """An aiomqtt client that acknowledges QoS 1/2 messages only when told to."""

    def __init__(self, *args: Any, manual_ack: bool, **kwargs: Any) -> None:
        super().__init__(*args, queue_type=_Inbox, **kwargs)
        self._manual_ack = manual_ack
        self._client.manual_ack_set(manual_ack)

    @property
    def inbox(self) -> _Inbox:
        assert isinstance(self._queue, _Inbox)
        return self._queue

    def ack(self, message: aiomqtt.Message) -> None:
        if self._manual_ack and message.qos > 0:
            self._client.ack(message.mid, message.qos)


class _Stage(enum.IntEnum):
    DECODED = 0  # readings wait in the current batch for the bus
    HELD = 1  # in the Sparkplug reorder buffer
    DONE = 2  # readings on the bus (or none): may be acknowledged


class _Taken:
    __slots__ = ("message", "stage")

    def __init__(self, message: aiomqtt.Message) -> None:
        self.message = message
        self.stage = _Stage.DECODED


class _Acks:
    """The messages of one connection in order of receipt; acknowledges the finished prefix.

    Without manual acknowledgement (``track=False``) the client acknowledges on
    receipt and nothing is kept here.
    """

    def __init__(self, client: _Client, *, track: bool) -> None:
        self.client = client
        self.track = track
        self.taken: deque[_Taken] = deque()

    def take(self, message: aiomqtt.Message) -> _Taken:
        entry = _Taken(message)
        if self.track:
            self.taken.append(entry)
        return entry

    def released(self, tokens: Iterable[object], stage: _Stage) -> None:
        """Held messages the host let go (tokens of other connections are ignored)."""
        for token in tokens:
            if isinstance(token, _Taken) and token.stage is _Stage.HELD:
                token.stage = stage

    def flushed(self) -> int:
        """The current batch is on the bus: acknowledge what can be, in order; how many."""
        for entry in self.taken:
            if entry.stage is _Stage.DECODED:
                entry.stage = _Stage.DONE
        return self.ack_ready()

    def ack_ready(self) -> int:
        taken = self.taken
        n = 0
        while taken and taken[0].stage is _Stage.DONE:
            self.client.ack(taken.popleft().message)
            n += 1
        return n


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
        #: Told of every Sparkplug birth (monitoring); they must not raise.
        self.birth_observers: list[Callable[[Birth], None]] = []
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
            manual_ack=s.manual_ack,
        )

    async def run(self) -> None:
        delay = self.settings.reconnect_min
        while not self._stopping:
            try:
                async with self._client() as client:
                    self.stats.connects += 1
                    delay = self.settings.reconnect_min
                    acks = _Acks(client, track=self.settings.manual_ack)
                    # Consume before subscribing: a resumed session may deliver (and
                    # wait for acknowledgements) before the broker answers SUBSCRIBE.
                    consumer = self._consumer = asyncio.create_task(self._consume(client, acks))
                    ticker = asyncio.create_task(self._tick(client, acks))
                    try:
                        await self._subscribe(client)
                        self.connected.set()
                        await consumer
                    except asyncio.CancelledError:
                        if not self._stopping:
                            raise
                    finally:
                        ticker.cancel()
                        consumer.cancel()
                        await asyncio.gather(ticker, consumer, return_exceptions=True)
                    if self._stopping and self.settings.sparkplug:
                        await self._send(client, self.host.state(False, self.clock() // 1000))
            except aiomqtt.MqttError as exc:
                self.stats.disconnects += 1
                self.stats.last_error = str(exc)
                log.warning("MQTT %s:%s: %s; retrying in %.1f s", self.settings.host,
                            self.settings.port, exc, delay)  # fmt: skip
            except Exception as exc:  # the bus failed (TransportError, BusClosed) or a bug
                self.stats.disconnects += 1
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                log.warning("MQTT connector: %s; unacknowledged messages stay with the broker, "
                            "reconnecting in %.1f s", exc, delay,
                            exc_info=not isinstance(exc, IinodeError))  # fmt: skip
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

    async def _consume(self, client: _Client, acks: _Acks) -> None:
        """Decode messages into batches; acknowledge each once the bus holds its readings.

        Messages still unacknowledged when this ends (cancelled, disconnected)
        are delivered again by the broker on the next session.  After the
        incoming queue turned a QoS 1/2 message away, the messages queued at
        that moment are still processed and acknowledged, then the connector
        reconnects to get the turned-away ones again.
        """
        pending: list[Reading] = []
        inbox = client.inbox
        seen = 0
        backlog = -1  # after an overflow: messages left to take before reconnecting
        async for message in client.messages:
            self.stats.messages += 1
            self.stats.queued = len(client.messages)
            self.stats.max_queued = max(self.stats.max_queued, self.stats.queued)
            pending.extend(await self._decode(client, message, acks))
            if inbox.turned_away > seen:
                self.stats.overflows += inbox.turned_away - seen
                seen = inbox.turned_away
                if backlog < 0 and self._must_resync(inbox):
                    backlog = len(client.messages)
            backlog -= backlog > 0
            if (
                len(pending) >= self.settings.batch_points
                or len(client.messages) == 0
                or backlog == 0
            ):
                await self._flush(pending)
                pending = []
                self.stats.acked += acks.flushed()
            if backlog == 0:
                raise aiomqtt.MqttError(
                    f"incoming queue was full ({self.settings.max_queued_messages} messages) "
                    "and turned QoS 1/2 messages away; reconnecting to have them redelivered"
                )

    def _must_resync(self, inbox: _Inbox) -> bool:
        """Log what a full queue turned away; True if the broker can deliver it again."""
        if self.settings.manual_ack and inbox.turned_away_qos12:
            return True
        log.warning("MQTT incoming queue full: %d messages dropped", inbox.turned_away)
        return False

    async def _flush(self, readings: list[Reading]) -> None:
        if readings:
            await self.bus.publish(readings)
            self.stats.readings += len(readings)

    async def _tick(self, client: _Client, acks: _Acks) -> None:
        """End Sparkplug reorder waits on time, even when no message arrives."""
        period = max(self.host.settings.reorder_timeout_us / 4e6, 0.05)
        while True:
            await asyncio.sleep(period)
            deadline = self.host.next_deadline()
            now = self.clock()
            if deadline is not None and deadline <= now:
                result = self.host.expire(now)
                await self._flush(await self._apply(client, result, now))
                acks.released(result.released, _Stage.DONE)
                self.stats.acked += acks.ack_ready()

    async def _apply(self, client: aiomqtt.Client, result: HostResult, now: int) -> list[Reading]:
        for error in result.malformed:
            self.rejects.malformed(error)
        for error in result.errors:
            self.rejects.add(Reject(RejectReason.PROTOCOL, error))
        for birth in result.births:
            for observe in self.birth_observers:
                observe(birth)
        for reply in result.replies:
            await self._send(client, reply)
        if self.live is not None:
            # A death marks the equipment offline in the live state until its next birth,
            # so the birth's readings still on their way to ingest show bad quality too.
            for birth in result.births:
                if birth.equipment is not None:
                    self.live.revive(birth.equipment)
            for equipment in result.offline:
                self.live.mark_stale(equipment, now)
        return result.readings

    async def _decode(
        self, client: aiomqtt.Client, message: aiomqtt.Message, acks: _Acks
    ) -> list[Reading]:
        topic = message.topic.value
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload).encode()
        now = self.clock()
        entry = acks.take(message)
        if topic.startswith(NAMESPACE + "/"):
            result = self.host.receive(topic, bytes(payload), now, entry)
            if result.held:
                entry.stage = _Stage.HELD
            # Released messages' readings are in this result: they go with the batch.
            acks.released(result.released, _Stage.DECODED)
            return await self._apply(client, result, now)
        try:
            return json_scheme.decode(topic, bytes(payload), now, self.settings.json_root)
        except RemoteProtocolError as exc:
            self.rejects.malformed(exc.message)
            return []
