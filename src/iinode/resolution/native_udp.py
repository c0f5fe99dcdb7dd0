"""The UDP side of a native server process: a blocking fast path and an asyncio slow path.

The receive loop runs in its own thread with a blocking socket.  A plain,
anonymous, single-packet RESOLUTION request whose octets were answered before
is served from ``UdpFastCache``, with no decoding.  The cache key is the whole
datagram but its request id and ExpirationTime (``cache_key``): every other
octet (version, suggested version, flags, serial, recursion count, body) may
change the answer, and a Handle.Net client writes a new ExpirationTime (now +
12 hours) into each request.  The stored answer gets the request's id and a
current ExpirationTime (now + ``message_lifetime``, computed once per batch)
patched in and goes straight back.  Everything else (first requests, other
operations, fragments, garbage) is handed to the node's event loop, which
reassembles, decodes, calls the ``NativeHandler`` and sends the answer, filling
the cache when the answer may be replayed.  The cache is keyed to the node's
``ChangeCounter``: when any process commits a write the counter moves and the
cache starts a new generation.

Threads: the receive thread only reads the cache's current generation and
replaces it; the loop thread only adds to the generation of the version it read
before the store read, so an answer computed before a write can never be filed
under the version after it.  ``handed`` (receive thread) and ``finished`` (loop
thread) each have one writer; their difference is the slow path's backlog.

Only requests without a session, credential or the CT, ENC and RD flags are
filed (a signed answer covers its request id, a request digest the request's
ExpirationTime), so other requests never hit the cache and take the slow path.

Amplification: the fast path sends one packet of at most 512 octets per request.
The slow path sends an answer in as many packets as it takes, up to
``max_response_bytes`` (default the 256 KiB a Handle.Net peer accepts, as the
Handle.Net server does; larger answers become an error with the TC flag, so a
real client asks again over TCP), and charges each source host one token per
packet: at most ``ResponseRateLimit.rate`` packets a second, in bursts of
``burst``, whatever the answers' sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from iinode.codes import ResponseCode
from iinode.errors import LocalProtocolError, RemoteProtocolError
from iinode.node.changes import ChangeCounter
from iinode.proto import (
    ENVELOPE_SIZE,
    MAX_MESSAGE_LENGTH,
    NODE_VERSION,
    EnvelopeFlag,
    ErrorBody,
    Frame,
    Message,
    OpCode,
    OpFlag,
    ProtoLimits,
    UdpReassembler,
    to_packets,
)
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_mmsg import SLOT_SIZE, DatagramBatch
from iinode.resolution.native_ratelimit import ResponseRateLimit
from iinode.resolution.native_sessions import NativeCounters, OffenderTally, PeerState

#: Where the request id lies in a datagram (the ExpirationTime is at octets 36-40).
_REQUEST_ID = slice(8, 12)
#: Request flags that keep a request out of the cache (its answer is bound to the request).
_UNCACHEABLE_FLAGS = OpFlag.CT | OpFlag.ENC | OpFlag.RD
_U32_MAX = 0xFFFF_FFFF
_MAX_DATAGRAM = 65_535
#: The error text of an answer replaced because it needs too many UDP packets.
_TOO_LARGE = "answer too large for UDP; ask over TCP"
#: A UDP peer's address as the socket module gives it.
Address = tuple[Any, ...]


def cache_key(datagram: bytes) -> bytes:
    """The octets of a request that decide its answer: all but request id and ExpirationTime."""
    return datagram[:8] + datagram[12:36] + datagram[40:]


def expiration_octets(lifetime: int, now: float) -> bytes:
    """The ExpirationTime field of an answer sent at ``now``."""
    return min(int(now) + lifetime, _U32_MAX).to_bytes(4, "big")


#: A cached answer: its first 8 octets, and its octets from the sequence number on.
CachedAnswer = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class CacheGeneration:
    """The cached answers valid for one change-counter value."""

    version: int
    #: ``cache_key`` of a request -> its answer (request id and ExpirationTime to patch in)
    table: dict[bytes, CachedAnswer] = field(default_factory=dict)


class UdpFastCache:
    """Complete response datagrams by request octets, valid for one change-counter value.

    ``generation`` is replaced whole (one attribute store) when the counter moves,
    so a reader always sees a version together with the answers filed under it.
    """

    def __init__(self, changes: ChangeCounter, max_entries: int = 500_000) -> None:
        self.changes = changes
        self.max_entries = max_entries
        self.generation = CacheGeneration(changes.value())

    @property
    def version(self) -> int:
        return self.generation.version

    @property
    def table(self) -> dict[bytes, CachedAnswer]:
        return self.generation.table

    @staticmethod
    def key(datagram: bytes, request: Message) -> bytes | None:
        """The cache key of ``datagram`` (decoded as ``request``) if its answer may be
        replayed to anyone sending the same octets, else ``None``."""
        if (
            request.opcode == OpCode.RESOLUTION
            and not request.session_id
            and request.credential is None
            and not request.flags & _UNCACHEABLE_FLAGS
            and not request.envelope_flags
            and len(datagram) == ENVELOPE_SIZE + len(request.payload())
        ):
            return cache_key(datagram)
        return None

    def refresh(self) -> CacheGeneration:
        """Start a new generation if the counter moved; the current generation."""
        version = self.changes.value()
        if version != self.generation.version:
            self.generation = CacheGeneration(version)
        return self.generation

    def answer(self, datagram: bytes, expiration: bytes) -> bytes | None:
        """The response to ``datagram`` if it is cached (what the receive loop inlines)."""
        cached = self.refresh().table.get(cache_key(datagram))
        if cached is None:
            return None
        head, tail = cached
        return head + datagram[_REQUEST_ID] + tail[:24] + expiration + tail[28:]

    def fill(self, key: bytes, response: bytes, version: int) -> None:
        """Remember ``response`` if nothing was written since ``version`` was read.

        The answer goes into the generation of ``version`` only: if the receive
        thread has moved on to a newer one meanwhile, it lands in a generation
        nobody reads any more.
        """
        generation = self.generation
        if version != generation.version or version != self.changes.value():
            return
        table = generation.table
        if len(table) >= self.max_entries:
            table.clear()
        table[key] = (response[:8], response[12:])


class UdpTransport:
    """Serves one UDP socket: ``run`` is the blocking receive loop (own thread)."""

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        handler: NativeHandler,
        changes: ChangeCounter,
        *,
        limits: ProtoLimits | None = None,
        max_response_bytes: int = MAX_MESSAGE_LENGTH,
        max_in_flight: int = 256,
        max_peers: int = 4096,
        fast_path: bool = True,
        rate_limit: ResponseRateLimit | None = None,
    ) -> None:
        self.sock = sock
        self.loop = loop
        self.handler = handler
        self.counters: NativeCounters = handler.counters
        #: Offences by source address (loop thread only: never the receive thread).
        self.offenders: OffenderTally = handler.offenders
        self.cache = UdpFastCache(changes)
        self.fast_path = fast_path
        self.reassembler = UdpReassembler(limits)
        #: Largest answer sent over UDP (in several packets); larger ones get TC.
        self.max_response_bytes = max_response_bytes
        self.lifetime = handler.message_lifetime
        self.max_in_flight = max_in_flight
        self.rate_limit = rate_limit if rate_limit is not None else ResponseRateLimit()
        #: Datagrams handed to the slow path (written by the receive thread only).
        self.handed = 0
        #: Slow-path datagrams done with (written by the loop thread only).
        self.finished = 0
        self._peers: OrderedDict[Address, PeerState] = OrderedDict()
        self._max_peers = max_peers
        self._closing = False

    @property
    def in_flight(self) -> int:
        """Datagrams handed to the slow path and not yet answered."""
        return self.handed - self.finished

    # -- the receive loop (its own thread) ------------------------------------------
    def run(self) -> None:
        if self.fast_path and DatagramBatch.available():
            self._run_batched(DatagramBatch(self.sock))
        else:
            self._run_single()

    def _run_batched(self, batch: DatagramBatch) -> None:
        """The fast path over ``recvmmsg``/``sendmmsg``: answers are written in place.

        A hit's slot keeps the request id (octets 8-12); the cached answer's head goes
        before it, its tail after it, and the ExpirationTime over the tail.
        """
        receive, length, reply, send = batch.receive, batch.length, batch.reply, batch.send
        buffer = batch.buffer
        cache = self.cache
        generation = cache.generation
        table = generation.table
        value = cache.changes.value
        counters = self.counters
        lifetime = self.lifetime
        clock = time.time
        slot = SLOT_SIZE
        while True:
            try:
                count = receive()
            except OSError:
                if self._closing:
                    return
                continue
            if self._closing:
                return
            if value() != generation.version:
                generation = cache.refresh()
                table = generation.table
            expiration = expiration_octets(lifetime, clock())
            hits = 0
            for i in range(count):
                at = i * slot
                size = length(i)
                data = buffer[at : at + size].tobytes()
                cached = table.get(data[:8] + data[12:36] + data[40:])
                if cached is not None:
                    head, tail = cached
                    end = at + 12 + len(tail)
                    if end <= at + slot:
                        buffer[at : at + 8] = head
                        buffer[at + 12 : end] = tail
                        buffer[at + 36 : at + 40] = expiration
                        reply(i, end - at)
                        hits += 1
                        continue
                if not data:
                    continue
                if not self._hand_over(data, batch.peer(i)):
                    return
            if hits:
                counters.fast_hits += hits
                send()

    def _hand_over(self, data: bytes, addr: Address) -> bool:
        """Pass a datagram to the slow path; ``False`` once the event loop has closed."""
        if self.handed - self.finished >= self.max_in_flight:
            self.counters.dropped += 1
            return True
        self.handed += 1
        try:
            self.loop.call_soon_threadsafe(self._slow, data, addr)
        except RuntimeError:  # the loop is closed: shutting down
            return False
        return True

    def _run_single(self) -> None:
        recvfrom = self.sock.recvfrom
        sendto = self.sock.sendto
        cache = self.cache
        generation = cache.generation
        table = generation.table
        value = cache.changes.value
        counters = self.counters
        lifetime = self.lifetime
        clock = time.time
        fast = self.fast_path
        while True:
            try:
                data, addr = recvfrom(_MAX_DATAGRAM)
            except OSError:
                if self._closing:
                    return
                continue
            if not data:
                if self._closing:
                    return
                continue
            if value() != generation.version:
                generation = cache.refresh()
                table = generation.table
            if fast:
                cached = table.get(data[:8] + data[12:36] + data[40:])
                if cached is not None:
                    head, tail = cached
                    expiration = expiration_octets(lifetime, clock())
                    answer = head + data[8:12] + tail[:24] + expiration + tail[28:]
                    try:  # noqa: SIM105 (no context manager on the hot path)
                        sendto(answer, addr)
                    except OSError:
                        pass
                    counters.fast_hits += 1
                    continue
            if not self._hand_over(data, addr):
                return

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):  # wakes the blocked recvfrom
            self.sock.shutdown(socket.SHUT_RDWR)

    # -- the slow path (event loop thread) -----------------------------------------
    def _slow(self, data: bytes, addr: Address) -> None:
        try:
            task = self.loop.create_task(self._answer(data, addr))
        except BaseException:
            self.finished += 1
            raise
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.finished += 1
        if not task.cancelled() and task.exception() is not None:
            self.counters.internal_errors += 1

    def _peer(self, addr: Address) -> PeerState:
        state = self._peers.get(addr)
        if state is None:
            state = self._peers[addr] = PeerState(address=str(addr[0]) if addr else None)
            while len(self._peers) > self._max_peers:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(addr)
        return state

    async def _answer(self, data: bytes, addr: Address) -> None:
        counters = self.counters
        host = addr[0]
        try:
            frame = self.reassembler.receive(addr, data, time.monotonic())
        except RemoteProtocolError:
            counters.protocol_errors += 1
            self.offenders.note(str(host), "protocol_errors")
            return  # not even a packet: drop rather than answer spoofable garbage
        if frame is None:
            return
        if not self.rate_limit.allow(host, time.monotonic()):
            counters.dropped += 1
            self.offenders.note(str(host), "dropped")
            return
        try:
            request = Message.from_frame(frame)
        except RemoteProtocolError as exc:
            counters.protocol_errors += 1
            self.offenders.note(str(host), "protocol_errors")
            self._send(protocol_error(frame, exc.message, self.handler.expiration()), addr)
            return
        version = self.cache.changes.value()
        outcome = await self.handler.handle(request, self._peer(addr))
        if outcome.message is None:
            return
        message = outcome.message
        if outcome.more is not None:  # a streamed answer: over TCP only
            await outcome.more.aclose()
            message = replace(message.as_error(_TOO_LARGE), envelope_flags=EnvelopeFlag.TC)
        sent = self._send(message, addr)
        if outcome.cacheable and sent is not None and message.credential is None:
            key = UdpFastCache.key(data, request)
            if key is not None:
                self.cache.fill(key, sent, version)

    def _packets(self, message: Message) -> list[bytes]:
        """The packets of ``message``; an error with TC instead if it is too large for UDP,
        an ERROR answer if it cannot be encoded at all."""
        try:
            packets = to_packets(message)
        except LocalProtocolError:
            self.counters.internal_errors += 1
            return to_packets(message.as_error("the answer cannot be encoded"))
        if len(packets) > 1 and len(message.payload()) > self.max_response_bytes:
            return self._truncated(message)
        return packets

    @staticmethod
    def _truncated(message: Message) -> list[bytes]:
        return to_packets(replace(message.as_error(_TOO_LARGE), envelope_flags=EnvelopeFlag.TC))

    def _send(self, message: Message, addr: Address) -> bytes | None:
        """Send ``message``; return the datagram if it was one packet.

        An answer of several packets costs its source host one rate-limit token per
        packet beyond the first (already paid); one the host cannot afford, or one of
        more than ``max_response_bytes``, is replaced by an error with the TC flag
        (the client asks again over TCP).
        """
        packets = self._packets(message)
        if len(packets) > 1 and not self.rate_limit.allow(
            addr[0], time.monotonic(), len(packets) - 1
        ):
            self.counters.dropped += 1
            packets = self._truncated(message)
        for packet in packets:
            try:
                self.sock.sendto(packet, addr)
            except OSError:
                return None
        return packets[0] if len(packets) == 1 else None


def protocol_error(frame: Frame, text: str, expiration: int = 0) -> Message:
    """A PROTOCOL_ERROR answer to a frame that did not decode (its request id is known),
    written in the version it suggests (at most ``NODE_VERSION``)."""
    opcode = OpCode.RESERVED
    payload = frame.payload
    if len(payload) >= 4:
        opcode = OpCode(int.from_bytes(payload[:4], "big"))
    envelope = frame.envelope
    asked = envelope.suggested_version or envelope.version
    return Message(
        opcode,
        ErrorBody(text[:200]),
        ResponseCode.PROTOCOL_ERROR,
        OpFlag.REC,
        request_id=envelope.request_id,
        expiration=expiration,
        version=min(asked, NODE_VERSION),
        suggested_version=NODE_VERSION,
    )


__all__ = ["UdpFastCache", "UdpTransport", "cache_key", "expiration_octets", "protocol_error"]
