"""Native protocol client: one request/response exchange, and resolution over the driver.

``NativeClient.request`` sends one message to one server: over UDP first (each
attempt waits ``timeout``, ``retries`` extra attempts), then over TCP when the
UDP answer is truncated (TC) or UDP timed out, or straight over TCP when asked.
``NativeResolver`` loops over the I/O-free ``Resolution`` driver in its
Handle-style mode (``site_walk``): the driver first asks for the
``0.NA/<prefix>`` record of the handle's prefix, down the prefix hierarchy from
the root, then asks the site that record names.  For each site the driver
proposes the resolver orders the servers by the RFC 3652 hash rule
(``select_server``), asks them in turn, and turns the answer (values,
referral or error) into a ``RemoteAnswer``.  Answers, sites and delegations are
cached by TTL in the driver's ``ResolutionCache``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Sequence
from typing import Any

from iinode.codes import ResponseCode
from iinode.errors import HandleError, RemoteProtocolError, TransportError
from iinode.identifiers import HandleName, Prefix, Server, SiteData, TransportProtocol
from iinode.proto import (
    CLOSED,
    NEED_DATA,
    EnvelopeFlag,
    ErrorBody,
    Frame,
    Message,
    OpCode,
    ProtoLimits,
    ReferralResponse,
    ResolutionRequest,
    ResolutionResponse,
    TcpFramer,
    UdpReassembler,
    to_packets,
)
from iinode.resolution.cache import ResolutionCache
from iinode.resolution.driver import Query, RemoteAnswer, Resolution, Resolved, select_server

Address = tuple[str, int]
_request_ids = itertools.count(int.from_bytes(os.urandom(3), "big") + 1)


def next_request_id() -> int:
    return next(_request_ids) % 0xFFFFFFFF or 1


class _UdpExchange(asyncio.DatagramProtocol):
    """Collects the packets of the response to one request id."""

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.reassembler = UdpReassembler(ProtoLimits())
        self.answer: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            frame = self.reassembler.receive(addr, data, time.monotonic())
        except RemoteProtocolError:
            return
        ours = frame is not None and frame.envelope.request_id == self.request_id
        if ours and frame is not None and not self.answer.done():
            self.answer.set_result(frame)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(TransportError(f"UDP error: {exc}"))


class NativeClient:
    """Sends requests to native servers (UDP with TCP fallback, or TCP)."""

    def __init__(self, *, timeout: float = 2.0, retries: int = 1) -> None:
        self.timeout = timeout
        self.retries = retries

    async def request(self, address: Address, message: Message, *, udp: bool = True) -> Message:
        """Send ``message`` and return the response; raises ``TransportError``."""
        response, _ = await self.exchange(address, message, udp=udp)
        return response

    async def exchange(
        self, address: Address, message: Message, *, udp: bool = True
    ) -> tuple[Message, str]:
        """Like ``request``, also saying which transport answered ("udp" or "tcp")."""
        if udp:
            try:
                response = await self.udp(address, message)
            except TransportError:
                pass
            else:
                if not response.envelope_flags & EnvelopeFlag.TC:
                    return response, "udp"
        return await self.tcp(address, message), "tcp"

    async def udp(self, address: Address, message: Message) -> Message:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _UdpExchange(message.request_id), remote_addr=address
            )
        except OSError as exc:
            raise TransportError(f"cannot reach {address[0]}:{address[1]} over UDP: {exc}") from exc
        try:
            packets = to_packets(message)
            for _ in range(1 + self.retries):
                for packet in packets:
                    transport.sendto(packet)
                try:
                    frame = await asyncio.wait_for(asyncio.shield(protocol.answer), self.timeout)
                except TimeoutError:
                    continue
                return Message.from_frame(frame)
            raise TransportError(f"no UDP answer from {address[0]}:{address[1]}")
        finally:
            transport.close()

    async def tcp(self, address: Address, message: Message) -> Message:
        try:
            async with asyncio.timeout(self.timeout * (1 + self.retries)):
                reader, writer = await asyncio.open_connection(*address)
                try:
                    writer.write(message.to_wire())
                    await writer.drain()
                    return await read_response(reader, TcpFramer(), message.request_id)
                finally:
                    writer.close()
        except TimeoutError:
            raise TransportError(f"no TCP answer from {address[0]}:{address[1]}") from None
        except OSError as exc:
            raise TransportError(f"cannot reach {address[0]}:{address[1]} over TCP: {exc}") from exc


async def read_response(
    reader: asyncio.StreamReader, framer: TcpFramer, request_id: int
) -> Message:
    """Read frames from a stream until the response to ``request_id`` arrives."""
    while True:
        event = framer.next_event()
        if event is NEED_DATA:
            framer.receive_data(await reader.read(65_536))
            continue
        if event is CLOSED:
            raise TransportError("the server closed the connection without answering")
        assert isinstance(event, Frame)
        if event.envelope.request_id == request_id:
            return Message.from_frame(event)


def server_address(server: Server, protocol: TransportProtocol) -> Address | None:
    itf = server.interface(protocol)
    return None if itf is None else (server.address, itf.port)


class NativeResolver:
    """Resolves handles through the hierarchy over the native protocol."""

    def __init__(
        self,
        roots: list[SiteData],
        *,
        cache: ResolutionCache | None = None,
        client: NativeClient | None = None,
        max_referrals: int = 8,
        site_walk: bool = True,
    ) -> None:
        self.roots = roots
        self.cache = cache
        self.client = client or NativeClient()
        self.max_referrals = max_referrals
        #: Find the prefix's site through ``0.NA/<prefix>`` first (False: ask for the
        #: handle at the root and follow referrals).
        self.site_walk = site_walk

    async def resolve(
        self, handle: HandleName, *, types: Sequence[str] = (), indexes: Sequence[int] = ()
    ) -> Resolved:
        resolution = Resolution(
            handle, self.roots, self.cache,
            max_referrals=self.max_referrals, site_walk=self.site_walk,
        )  # fmt: skip
        while (query := resolution.next_query()) is not None:
            try:
                answer = await self.ask(query)
            except TransportError as exc:
                resolution.on_failure(query, exc)
            else:
                resolution.on_answer(query, answer)
        resolved = resolution.outcome()
        if types or indexes:
            wanted = {t.upper() for t in types}
            resolved.values = tuple(
                v
                for v in resolved.values
                if (not wanted or v.type.upper() in wanted) and (not indexes or v.index in indexes)
            )
        return resolved

    async def ask(self, query: Query) -> RemoteAnswer:
        """Ask the site of ``query`` (its servers in hash order) for the whole record."""
        request = Message(
            OpCode.RESOLUTION, ResolutionRequest(str(query.handle)), request_id=next_request_id()
        )
        last: Exception | None = None
        for server in select_server(query.site, query.handle):
            udp = server_address(server, TransportProtocol.UDP)
            tcp = server_address(server, TransportProtocol.TCP)
            address = udp or tcp
            if address is None:
                continue
            try:
                response, via = await self.client.exchange(address, request, udp=udp is not None)
            except (TransportError, RemoteProtocolError) as exc:
                last = exc
                continue
            return to_remote_answer(response, f"{via}://{address[0]}:{address[1]}")
        if last is None:
            raise TransportError("no server of the site has a native interface")
        raise TransportError(f"no server of the site answered: {last}")

    async def aclose(self) -> None:
        """Nothing to release: each exchange opens and closes its own socket."""


def to_remote_answer(response: Message, server: str) -> RemoteAnswer:
    code = response.response_code
    body = response.body
    if isinstance(body, ResolutionResponse):
        return RemoteAnswer(code, body.values, None, server)
    if isinstance(body, ReferralResponse):
        delegated: Prefix | None = None
        if body.handle:
            try:
                name = HandleName.parse(body.handle)
                delegated = name.authority if name.is_na_handle else None
            except HandleError:
                delegated = None
        return RemoteAnswer(code, body.values, delegated, server)
    message = body.message if isinstance(body, ErrorBody) else ""
    if code == ResponseCode.SUCCESS:
        raise RemoteProtocolError(f"{server} answered a resolution with {type(body).__name__}")
    return RemoteAnswer(code, (), None, server, message)


def resolve_native_sync(
    handle: HandleName,
    roots: list[SiteData],
    *,
    max_referrals: int = 8,
    timeout: float = 2.0,
    cache: ResolutionCache | None = None,
) -> Resolved:
    """Blocking wrapper for scripts and the CLI."""

    async def run() -> Resolved:
        resolver = NativeResolver(
            roots, cache=cache, client=NativeClient(timeout=timeout), max_referrals=max_referrals
        )
        return await resolver.resolve(handle)

    return asyncio.run(run())


__all__ = [
    "NativeClient",
    "NativeResolver",
    "next_request_id",
    "read_response",
    "resolve_native_sync",
    "server_address",
    "to_remote_answer",
]
