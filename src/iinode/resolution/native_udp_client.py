"""The native client's UDP side: one long-lived unconnected socket per address family.

``UdpEndpoint`` reads datagrams in the event loop's reader callback and hands
each one to the request waiting for its request id *from its source address*;
late answers, duplicates, answers from another address and garbage are counted
in ``UdpClientStats`` and dropped.  On Linux ``IP_RECVERR`` reports ICMP errors
with the datagram that caused them, so a request to a closed port fails at once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

from iinode.errors import RemoteProtocolError, TransportError
from iinode.proto import ENVELOPE_SIZE, Frame, ProtoLimits, UdpReassembler

#: Datagrams read per reader callback before the loop gets its turn again.
_READ_BATCH = 64
#: Largest datagram read (larger ones are truncated, then rejected by the reassembler).
_RECEIVE_SIZE = 65_535
#: Linux ``IP_RECVERR`` / ``IPV6_RECVERR`` (level, option), and ``MSG_ERRQUEUE``.
_RECVERR: dict[int, tuple[int, int]] = {
    socket.AF_INET: (socket.IPPROTO_IP, 11),
    socket.AF_INET6: (socket.IPPROTO_IPV6, 25),
}
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
#: ``struct sock_extended_err``: errno, origin, type, code, pad, info, data.
_EXTENDED_ERROR = struct.Struct("=IBBBBII")


@dataclass(slots=True)
class UdpClientStats:
    """What a client's UDP socket received, for tests and diagnostics."""

    #: Answers handed to the request waiting for them.
    answers: int = 0
    #: Datagrams no request was waiting for from their source: late, duplicate or spoofed.
    stray: int = 0
    #: Datagrams that are not a packet of a message.
    malformed: int = 0
    #: ICMP errors reported for a request (Linux, ``IP_RECVERR``).
    unreachable: int = 0


def expire(future: asyncio.Future[Frame | None]) -> None:
    if not future.done():
        future.set_result(None)


class Waiter:
    """One request waiting for its answer: the current attempt's future, its packets."""

    __slots__ = ("future", "reassembler")

    def __init__(self, future: asyncio.Future[Frame | None], limits: ProtoLimits) -> None:
        self.future = future
        self.reassembler = UdpReassembler(limits)


#: Waiters are found by (request id, source host, source port).
WaiterKey = tuple[int, str, int]


class UdpEndpoint:
    """One unconnected UDP socket of a client on one event loop, for one address family.

    Datagrams are read in the loop's reader callback and handed to the request
    waiting for their request id *from their source address*; everything else
    (late answers, duplicates, answers from another address) is counted and
    dropped.  On Linux ``IP_RECVERR`` reports ICMP errors with the datagram that
    caused them, so a request to a closed port fails at once instead of timing out.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, family: int, stats: UdpClientStats) -> None:
        self.loop = loop
        self.stats = stats
        self.waiters: dict[WaiterKey, Waiter] = {}
        self.recverr = _RECVERR.get(family) if sys.platform.startswith("linux") else None
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if self.recverr is not None:
                sock.setsockopt(self.recverr[0], self.recverr[1], 1)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    @property
    def closed(self) -> bool:
        return self.sock.fileno() == -1

    def _readable(self) -> None:
        sock = self.sock
        for _ in range(_READ_BATCH):
            try:
                data, addr = sock.recvfrom(_RECEIVE_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # an ICMP error pending on the socket: read below
                continue
            self._datagram(data, addr)
        if self.recverr is not None:
            self._errors()

    def _datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) < ENVELOPE_SIZE:
            self.stats.malformed += 1
            return
        waiter = self.waiters.get((int.from_bytes(data[8:12], "big"), addr[0], addr[1]))
        if waiter is None or waiter.future.done():
            self.stats.stray += 1
            return
        try:
            frame = waiter.reassembler.receive(addr[:2], data, time.monotonic())
        except RemoteProtocolError:
            self.stats.malformed += 1
            return
        if frame is not None:
            self.stats.answers += 1
            waiter.future.set_result(frame)

    def _errors(self) -> None:
        """Fail the requests whose datagrams drew an ICMP error (the socket's error queue)."""
        while True:
            try:
                data, ancillary, _flags, addr = self.sock.recvmsg(
                    _RECEIVE_SIZE, socket.CMSG_SPACE(_EXTENDED_ERROR.size + 32), _MSG_ERRQUEUE
                )
            except InterruptedError:
                continue
            except OSError:
                return
            self.stats.unreachable += 1
            if not addr or len(data) < ENVELOPE_SIZE:
                continue
            waiter = self.waiters.get((int.from_bytes(data[8:12], "big"), addr[0], addr[1]))
            if waiter is None or waiter.future.done():
                continue
            reason = "ICMP error"
            for _level, _type, payload in ancillary:
                if len(payload) >= _EXTENDED_ERROR.size:
                    reason = os.strerror(_EXTENDED_ERROR.unpack_from(payload)[0])
            waiter.future.set_exception(
                TransportError(f"cannot reach {addr[0]}:{addr[1]} over UDP: {reason}")
            )

    async def send(self, packet: bytes, peer: tuple[Any, ...]) -> None:
        try:
            try:
                self.sock.sendto(packet, peer)
            except (BlockingIOError, InterruptedError):
                await self.loop.sock_sendto(self.sock, packet, peer)
        except OSError as exc:
            raise TransportError(f"cannot reach {peer[0]}:{peer[1]} over UDP: {exc}") from exc

    def close(self) -> None:
        """Fail the waiting requests and close the socket (from any thread, loop open or not)."""
        if self.closed:
            return
        loop = self.loop
        if not loop.is_closed():
            if loop.is_running() and _running_loop() is not loop:
                loop.call_soon_threadsafe(self.close)
                return
            loop.remove_reader(self.sock.fileno())
        for waiter in self.waiters.values():
            if not waiter.future.done() and not loop.is_closed():
                waiter.future.set_exception(TransportError("the client was closed"))
        self.waiters.clear()
        self.sock.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def close_endpoints(endpoints: dict[int, UdpEndpoint]) -> None:
    for endpoint in endpoints.values():
        endpoint.close()
    endpoints.clear()


__all__ = ["UdpClientStats", "UdpEndpoint", "Waiter", "WaiterKey", "close_endpoints", "expire"]
