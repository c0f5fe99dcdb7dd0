"""The UDP side of a native server process: a blocking fast path and an asyncio slow path.

The receive loop runs in its own thread with a blocking socket.  A plain,
anonymous, single-packet RESOLUTION request whose exact octets (after the
request id) were answered before is served from ``UdpFastCache``: the stored
response datagram gets the request id patched in and goes straight back, with
no decoding.  Everything else (first requests, other operations, fragments,
garbage) is handed to the node's event loop, which reassembles, decodes, calls
the ``NativeHandler`` and sends the answer, filling the cache when the answer
may be replayed.  The cache is keyed to the node's ``ChangeCounter``: when any
process commits a write the counter moves and the cache starts a new generation.

Threads: the receive thread only reads the cache's current generation and
replaces it; the loop thread only adds to the generation of the version it read
before the store read, so an answer computed before a write can never be filed
under the version after it.  ``handed`` (receive thread) and ``finished`` (loop
thread) each have one writer; their difference is the slow path's backlog.

Amplification: a forged source address draws at most ``max_response_packets``
packets per request (larger answers become an error with the TC flag, so a real
client asks again over TCP), and the slow path answers each source host at most
``ResponseRateLimit.rate`` times a second.
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
    EnvelopeFlag,
    ErrorBody,
    Frame,
    Message,
    OpCode,
    ProtoLimits,
    UdpReassembler,
    to_packets,
)
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_mmsg import SLOT_SIZE, DatagramBatch
from iinode.resolution.native_ratelimit import ResponseRateLimit
from iinode.resolution.native_sessions import NativeCounters, OffenderTally, PeerState

#: Envelope start of a request the fast path serves: version 2.1, no flags, no session.
FAST_HEAD = b"\x02\x01\x00\x00\x00\x00\x00\x00"
#: Opcode RESOLUTION, response code 0, at the start of the header.
_RESOLUTION_HEADER = b"\x00\x00\x00\x01\x00\x00\x00\x00"
_MAX_DATAGRAM = 65_535
#: The error text of an answer replaced because it needs too many UDP packets.
_TOO_LARGE = "answer too large for UDP; ask over TCP"
#: A UDP peer's address as the socket module gives it.
Address = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class CacheGeneration:
    """The cached answers valid for one change-counter value."""

    version: int
    #: request octets from the sequence number on -> response octets after the request id
    table: dict[bytes, bytes] = field(default_factory=dict)


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
    def table(self) -> dict[bytes, bytes]:
        return self.generation.table

    @staticmethod
    def key(datagram: bytes) -> bytes | None:
        """The cache key of a request the fast path may answer, else ``None``."""
        if (
            len(datagram) <= 512
            and datagram[:8] == FAST_HEAD
            and datagram[20:28] == _RESOLUTION_HEADER
            and datagram[12:16] == b"\x00\x00\x00\x00"
        ):
            return datagram[12:]
        return None

    def refresh(self) -> CacheGeneration:
        """Start a new generation if the counter moved; the current generation."""
        version = self.changes.value()
        if version != self.generation.version:
            self.generation = CacheGeneration(version)
        return self.generation

    def answer(self, datagram: bytes) -> bytes | None:
        """The response to ``datagram`` if it is cached (what the receive loop inlines)."""
        table = self.refresh().table
        if datagram[:8] != FAST_HEAD:
            return None
        tail = table.get(datagram[12:])
        return None if tail is None else FAST_HEAD + datagram[8:12] + tail

    def fill(self, key: bytes, response: bytes, version: int) -> None:
        """Remember ``response`` if nothing was written since ``version`` was read.

        The answer goes into the generation of ``version`` only: if the receive
        thread has moved on to a newer one meanwhile, it lands in a generation
        nobody reads any more.
        """
        generation = self.generation
        if version != generation.version or version != self.changes.value():
            return
        if response[:8] != FAST_HEAD:
            return
        table = generation.table
        if len(table) >= self.max_entries:
            table.clear()
        table[key] = response[12:]


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
        max_response_packets: int = 2,
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
        self.max_response_packets = max_response_packets
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
        """The fast path over ``recvmmsg``/``sendmmsg``: answers are written in place."""
        receive, length, reply, send = batch.receive, batch.length, batch.reply, batch.send
        buffer = batch.buffer
        cache = self.cache
        generation = cache.generation
        table = generation.table
        value = cache.changes.value
        counters = self.counters
        head = FAST_HEAD
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
            hits = 0
            for i in range(count):
                at = i * slot
                size = length(i)
                data = buffer[at : at + size].tobytes()
                if data[:8] == head:
                    tail = table.get(data[12:])
                    if tail is not None:
                        end = at + 12 + len(tail)
                        if end <= at + slot:
                            buffer[at + 12 : end] = tail
                            reply(i, 12 + len(tail))
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
        head = FAST_HEAD
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
            if fast and data[:8] == head:
                tail = table.get(data[12:])
                if tail is not None:
                    try:  # noqa: SIM105 (no context manager on the hot path)
                        sendto(head + data[8:12] + tail, addr)
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
        try:
            frame = self.reassembler.receive(addr, data, time.monotonic())
        except RemoteProtocolError:
            counters.protocol_errors += 1
            self.offenders.note(str(addr[0]), "protocol_errors")
            return  # not even a packet: drop rather than answer spoofable garbage
        if frame is None:
            return
        if not self.rate_limit.allow(addr[0], time.monotonic()):
            counters.dropped += 1
            self.offenders.note(str(addr[0]), "dropped")
            return
        try:
            request = Message.from_frame(frame)
        except RemoteProtocolError as exc:
            counters.protocol_errors += 1
            self.offenders.note(str(addr[0]), "protocol_errors")
            self._send(protocol_error(frame, exc.message), addr)
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
        if outcome.cacheable and sent is not None:
            key = UdpFastCache.key(data)
            if key is not None:
                self.cache.fill(key, sent, version)

    def _send(self, message: Message, addr: Address) -> bytes | None:
        """Send ``message``; return the datagram if it was one packet.

        An answer of more than ``max_response_packets`` packets is replaced by an
        error with the TC flag (the client asks again over TCP); one that cannot
        be encoded at all by an ERROR answer.
        """
        try:
            packets = to_packets(message)
        except LocalProtocolError:
            self.counters.internal_errors += 1
            packets = to_packets(message.as_error("the answer cannot be encoded"))
        if len(packets) > self.max_response_packets:
            packets = to_packets(
                replace(message.as_error(_TOO_LARGE), envelope_flags=EnvelopeFlag.TC)
            )
        for packet in packets:
            try:
                self.sock.sendto(packet, addr)
            except OSError:
                return None
        return packets[0] if len(packets) == 1 else None


def protocol_error(frame: Frame, text: str) -> Message:
    """A PROTOCOL_ERROR answer to a frame that did not decode (its request id is known)."""
    opcode = OpCode.RESERVED
    payload = frame.payload
    if len(payload) >= 4:
        opcode = OpCode(int.from_bytes(payload[:4], "big"))
    return Message(
        opcode,
        ErrorBody(text[:200]),
        ResponseCode.PROTOCOL_ERROR,
        request_id=frame.envelope.request_id,
    )


__all__ = ["FAST_HEAD", "UdpFastCache", "UdpTransport", "protocol_error"]
