"""The UDP side of a native server process: a blocking fast path and an asyncio slow path.

The receive loop runs in its own thread with a blocking socket.  A plain,
anonymous, single-packet RESOLUTION request whose exact octets (after the
request id) were answered before is served from ``UdpFastCache``: the stored
response datagram gets the request id patched in and goes straight back, with
no decoding.  Everything else (first requests, other operations, fragments,
garbage) is handed to the node's event loop, which reassembles, decodes, calls
the ``NativeHandler`` and sends the answer, filling the cache when the answer
may be replayed.  The cache is keyed to the node's ``ChangeCounter``: when any
process commits a write the counter moves and the cache is emptied.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from iinode.codes import ResponseCode
from iinode.errors import RemoteProtocolError
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
from iinode.resolution.native_sessions import NativeCounters, PeerState

#: Envelope start of a request the fast path serves: version 2.1, no flags, no session.
FAST_HEAD = b"\x02\x01\x00\x00\x00\x00\x00\x00"
#: Opcode RESOLUTION, response code 0, at the start of the header.
_RESOLUTION_HEADER = b"\x00\x00\x00\x01\x00\x00\x00\x00"
_MAX_DATAGRAM = 65_535
#: A UDP peer's address as the socket module gives it.
Address = tuple[Any, ...]


class UdpFastCache:
    """Complete response datagrams by request octets, valid for one change-counter value."""

    def __init__(self, changes: ChangeCounter, max_entries: int = 500_000) -> None:
        self.changes = changes
        self.max_entries = max_entries
        self.version = changes.value()
        #: request octets from the sequence number on -> response octets after the request id
        self.table: dict[bytes, bytes] = {}

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

    def refresh(self) -> None:
        version = self.changes.value()
        if version != self.version:
            self.table.clear()
            self.version = version

    def answer(self, datagram: bytes) -> bytes | None:
        """The response to ``datagram`` if it is cached (what the receive loop inlines)."""
        self.refresh()
        if datagram[:8] != FAST_HEAD:
            return None
        tail = self.table.get(datagram[12:])
        return None if tail is None else FAST_HEAD + datagram[8:12] + tail

    def fill(self, key: bytes, response: bytes, version: int) -> None:
        """Remember ``response`` if nothing was written since ``version`` was read."""
        if version != self.version or version != self.changes.value():
            return
        if response[:8] != FAST_HEAD:
            return
        if len(self.table) >= self.max_entries:
            self.table.clear()
        self.table[key] = response[12:]


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
        max_response_packets: int = 16,
        max_in_flight: int = 256,
        max_peers: int = 4096,
        fast_path: bool = True,
    ) -> None:
        self.sock = sock
        self.loop = loop
        self.handler = handler
        self.counters: NativeCounters = handler.counters
        self.cache = UdpFastCache(changes)
        self.fast_path = fast_path
        self.reassembler = UdpReassembler(limits)
        self.max_response_packets = max_response_packets
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._peers: OrderedDict[Address, PeerState] = OrderedDict()
        self._max_peers = max_peers
        self._closing = False

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
        table = cache.table
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
            if value() != cache.version:
                cache.refresh()
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
        if self.in_flight >= self.max_in_flight:
            self.counters.dropped += 1
            return True
        self.in_flight += 1
        try:
            self.loop.call_soon_threadsafe(self._slow, data, addr)
        except RuntimeError:  # the loop is closed: shutting down
            return False
        return True

    def _run_single(self) -> None:
        recvfrom = self.sock.recvfrom
        sendto = self.sock.sendto
        cache = self.cache
        table = cache.table
        value = cache.changes.value
        counters = self.counters
        call = self.loop.call_soon_threadsafe
        slow = self._slow
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
            if value() != cache.version:
                cache.refresh()
            if fast and data[:8] == head:
                tail = table.get(data[12:])
                if tail is not None:
                    try:  # noqa: SIM105 (no context manager on the hot path)
                        sendto(head + data[8:12] + tail, addr)
                    except OSError:
                        pass
                    counters.fast_hits += 1
                    continue
            if self.in_flight >= self.max_in_flight:
                counters.dropped += 1
                continue
            self.in_flight += 1
            try:
                call(slow, data, addr)
            except RuntimeError:  # the loop is closed: shutting down
                return

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):  # wakes the blocked recvfrom
            self.sock.shutdown(socket.SHUT_RDWR)

    # -- the slow path (event loop thread) -----------------------------------------
    def _slow(self, data: bytes, addr: Address) -> None:
        task = self.loop.create_task(self._answer(data, addr))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight -= 1
        if not task.cancelled() and task.exception() is not None:
            self.counters.internal_errors += 1

    def _peer(self, addr: Address) -> PeerState:
        state = self._peers.get(addr)
        if state is None:
            state = self._peers[addr] = PeerState()
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
            return  # not even a packet: drop rather than answer spoofable garbage
        if frame is None:
            return
        try:
            request = Message.from_frame(frame)
        except RemoteProtocolError as exc:
            counters.protocol_errors += 1
            self._send(protocol_error(frame, exc.message), addr)
            return
        version = self.cache.changes.value()
        outcome = await self.handler.handle(request, self._peer(addr))
        if outcome.message is None:
            return
        sent = self._send(outcome.message, addr)
        if outcome.cacheable and sent is not None:
            key = UdpFastCache.key(data)
            if key is not None:
                self.cache.fill(key, sent, version)

    def _send(self, message: Message, addr: Address) -> bytes | None:
        """Send ``message``; return the datagram if it was one packet."""
        packets = to_packets(message)
        if len(packets) > self.max_response_packets:
            packets = to_packets(replace(_truncated(message), envelope_flags=EnvelopeFlag.TC))
        for packet in packets:
            try:
                self.sock.sendto(packet, addr)
            except OSError:
                return None
        return packets[0] if len(packets) == 1 else None


def _truncated(response: Message) -> Message:
    """The header of ``response`` with an error body: the client retries over TCP."""
    return Message(
        response.opcode,
        ErrorBody("answer too large for UDP; ask over TCP"),
        ResponseCode.ERROR,
        request_id=response.request_id,
        session_id=response.session_id,
        version=response.version,
    )


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
