"""Native protocol client: one request/response exchange, and resolution over the driver.

``NativeClient.request`` sends one message to one server: over UDP first (each
attempt waits ``timeout``, ``retries`` extra attempts), then over TCP when the
UDP answer is a truncation error (TC) or UDP timed out, or straight over TCP
when asked.  An answer of several UDP packets is reassembled (a Handle.Net
server sends up to 256 KiB that way).  A request without a credential gets an
ExpirationTime of now + ``message_lifetime`` (a Handle.Net server, like this
node, answers with one of its own, which the client does not check).
The client keeps one unconnected UDP socket per address family for its whole
life (``native_udp_client``) and hands each datagram to the request waiting for
its request id from its source address; late, duplicate and spoofed answers are
dropped.
``NativeResolver`` loops over the I/O-free ``Resolution`` driver in its
Handle-style mode (``site_walk``): the driver first asks for the
``0.NA/<prefix>`` record of the handle's prefix, down the prefix hierarchy from
the root, then asks the site that record names.  For each site the driver
proposes the resolver orders the servers by the RFC 3652 hash rule
(``select_server``), asks them in turn, and turns the answer (values,
referral or error) into a ``RemoteAnswer``.  Answers, sites and delegations are
cached by TTL in the driver's ``ResolutionCache``.  Each resolution request
carries a fresh random request id, and an answer about another handle than the
one asked is refused (the server's failure), as is a referral whose prefix
record name does not parse.  Resolution requests are written as a Handle.Net 9
client writes them to a site of version 2.10: version 2.10 suggesting
``NODE_VERSION``, with PO (only public values: a Handle.Net server answers
AUTHENTICATION_NEEDED to an anonymous request without it when the record holds
values that are not public).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import time
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from iinode.codes import ResponseCode
from iinode.errors import HandleError, LocalProtocolError, RemoteProtocolError, TransportError
from iinode.identifiers import HandleName, Prefix, Server, SiteData, TransportProtocol
from iinode.proto import (
    CLIENT_VERSION,
    CLOSED,
    DEFAULT_MESSAGE_LIFETIME,
    NEED_DATA,
    NODE_VERSION,
    EnvelopeFlag,
    ErrorBody,
    Frame,
    ListHandlesResponse,
    Message,
    OpCode,
    OpFlag,
    ProtoLimits,
    ReferralResponse,
    RequestDigest,
    ResolutionRequest,
    ResolutionResponse,
    TcpFramer,
    to_packets,
)
from iinode.resolution.cache import ResolutionCache
from iinode.resolution.driver import (
    Query,
    RemoteAnswer,
    Resolution,
    Resolved,
    filter_values,
    run_resolution,
    select_server,
)
from iinode.resolution.native_signing import verify_signature
from iinode.resolution.native_udp_client import (
    UdpClientStats,
    UdpEndpoint,
    Waiter,
    close_endpoints,
    expire,
)

Address = tuple[str, int]
_request_ids = itertools.count(int.from_bytes(os.urandom(3), "big") + 1)

#: Resolved numeric addresses remembered per client.
_PEER_CACHE = 1024
#: Handles gathered at most from the continued (CN) messages of one LIST_HANDLES answer.
MAX_LISTED_HANDLES = 10_000_000


def next_request_id() -> int:
    """Increasing request ids (what a session's replay check expects)."""
    return next(_request_ids) % 0xFFFFFFFF or 1


def random_request_id() -> int:
    """An unpredictable request id, so an off-path attacker cannot forge an answer."""
    return secrets.randbelow(0xFFFFFFFF) + 1


class NativeClient:
    """Sends requests to native servers (UDP with TCP fallback, or TCP).

    The client keeps one UDP socket per address family open until ``aclose``
    (or until it is garbage-collected) and matches answers to requests by
    request id and source address, so concurrent requests share it.  Two
    requests in flight to one server must have different request ids.  Use a
    client from one event loop at a time (a new loop gets a new socket).
    """

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        retries: int = 1,
        limits: ProtoLimits | None = None,
        message_lifetime: int = DEFAULT_MESSAGE_LIFETIME,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        #: Seconds from now to the ExpirationTime of requests sent without a credential.
        self.message_lifetime = message_lifetime
        self.limits = limits or ProtoLimits()
        self.stats = UdpClientStats()
        self._endpoints: dict[int, UdpEndpoint] = {}
        self._peers: dict[Address, tuple[int, tuple[Any, ...]]] = {}
        self._finalizer = weakref.finalize(self, close_endpoints, self._endpoints)

    async def request(self, address: Address, message: Message, *, udp: bool = True) -> Message:
        """Send ``message`` and return the response; raises ``TransportError``."""
        response, _ = await self.exchange(address, message, udp=udp)
        return response

    async def exchange(
        self, address: Address, message: Message, *, udp: bool = True
    ) -> tuple[Message, str]:
        """Like ``request``, also saying which transport answered ("udp" or "tcp").

        A UDP answer with TC that is not a SUCCESS says "ask over TCP" (a Handle.Net
        server copies the TC of a request of several packets into a complete answer).
        """
        message = self.stamp(message)
        if udp:
            try:
                response = await self.udp(address, message)
            except TransportError:
                pass
            else:
                truncated = response.envelope_flags & EnvelopeFlag.TC
                if not truncated or response.response_code == ResponseCode.SUCCESS:
                    return response, "udp"
        return await self.tcp(address, message), "tcp"

    def stamp(self, message: Message) -> Message:
        """``message`` with an ExpirationTime, unless it has one or a credential (which
        signs the header as it is)."""
        if message.expiration or message.credential is not None:
            return message
        expiration = min(int(time.time()) + self.message_lifetime, 0xFFFF_FFFF)
        return replace(message, expiration=expiration)

    def local_udp_address(self, family: int = socket.AF_INET) -> Address | None:
        """Where the client's UDP socket of ``family`` is bound (None before first use)."""
        endpoint = self._endpoints.get(family)
        if endpoint is None or endpoint.closed:
            return None
        host, port = endpoint.sock.getsockname()[:2]
        return str(host), int(port)

    async def _peer(self, address: Address) -> tuple[int, tuple[Any, ...]]:
        """Address family and socket address of ``address``, as ``recvfrom`` reports them."""
        known = self._peers.get(address)
        if known is not None:
            return known
        host, port = address
        try:
            try:
                infos = socket.getaddrinfo(
                    host, port, 0, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST
                )
                numeric = True
            except socket.gaierror:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_DGRAM
                )
                numeric = False
        except (OSError, OverflowError, UnicodeError) as exc:
            raise TransportError(f"cannot resolve {host}:{port}: {exc}") from exc
        if not infos:
            raise TransportError(f"cannot resolve {host}:{port}")
        family, _type, _proto, _name, sockaddr = infos[0]
        peer = (int(family), tuple(sockaddr))
        if numeric:  # names may change; addresses do not
            if len(self._peers) >= _PEER_CACHE:
                self._peers.clear()
            self._peers[address] = peer
        return peer

    def _endpoint(self, loop: asyncio.AbstractEventLoop, family: int) -> UdpEndpoint:
        endpoint = self._endpoints.get(family)
        if endpoint is None or endpoint.loop is not loop or endpoint.closed:
            if endpoint is not None:
                endpoint.close()
            try:
                endpoint = UdpEndpoint(loop, family, self.stats)
            except OSError as exc:
                raise TransportError(f"cannot open a UDP socket: {exc}") from exc
            self._endpoints[family] = endpoint
        return endpoint

    async def udp(self, address: Address, message: Message) -> Message:
        """One exchange over UDP: ``1 + retries`` attempts of ``timeout`` seconds each."""
        message = self.stamp(message)
        loop = asyncio.get_running_loop()
        family, peer = await self._peer(address)
        endpoint = self._endpoint(loop, family)
        key = (message.request_id, peer[0], peer[1])
        if key in endpoint.waiters:
            raise LocalProtocolError(
                f"request id {message.request_id} is already waiting for {address[0]}:{address[1]}"
            )
        waiter = Waiter(loop.create_future(), self.limits)
        endpoint.waiters[key] = waiter
        try:
            packets = to_packets(message)
            for attempt in range(1 + self.retries):
                if attempt:
                    waiter.future = loop.create_future()
                for packet in packets:
                    await endpoint.send(packet, peer)
                timer = loop.call_later(self.timeout, expire, waiter.future)
                try:
                    frame = await waiter.future
                finally:
                    timer.cancel()
                if frame is not None:
                    return Message.from_frame(frame)
            raise TransportError(f"no UDP answer from {address[0]}:{address[1]}")
        finally:
            if endpoint.waiters.get(key) is waiter:
                del endpoint.waiters[key]

    async def tcp(self, address: Address, message: Message) -> Message:
        message = self.stamp(message)
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

    async def aclose(self) -> None:
        """Close the UDP sockets; requests still waiting fail with ``TransportError``.

        The client stays usable: a later request opens a new socket.
        """
        close_endpoints(self._endpoints)


async def read_response(
    reader: asyncio.StreamReader, framer: TcpFramer, request_id: int
) -> Message:
    """Read frames from a stream until the response to ``request_id`` arrives.

    A LIST_HANDLES answer sent as several messages (all but the last with the
    CN flag, RFC 3652 s3.8) is gathered into one message without CN.
    """
    response = await _read_message(reader, framer, request_id)
    if not response.flags & OpFlag.CN or not isinstance(response.body, ListHandlesResponse):
        return response
    handles = list(response.body.handles)
    while response.flags & OpFlag.CN:
        response = await _read_message(reader, framer, request_id)
        if not isinstance(response.body, ListHandlesResponse):
            return response  # an error ends the sequence
        handles.extend(response.body.handles)
        if len(handles) > MAX_LISTED_HANDLES:
            raise RemoteProtocolError(f"more than {MAX_LISTED_HANDLES} handles listed")
    return replace(response, body=ListHandlesResponse(tuple(handles)), received_bytes=b"")


async def _read_message(
    reader: asyncio.StreamReader, framer: TcpFramer, request_id: int
) -> Message:
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
        certified: bool = False,
    ) -> None:
        self.roots = roots
        self.cache = cache
        self._owns_client = client is None
        self.client = client or NativeClient()
        self.max_referrals = max_referrals
        #: Find the prefix's site through ``0.NA/<prefix>`` first (False: ask for the
        #: handle at the root and follow referrals).
        self.site_walk = site_walk
        #: Ask for signed answers (CT) and check each against the public key of the
        #: server in the site it came from (``native_signing.verify_signature``).
        self.certified = certified

    async def resolve(
        self,
        handle: HandleName,
        *,
        types: Sequence[str] = (),
        indexes: Sequence[int] = (),
        recursion_count: int = 0,
    ) -> Resolved:
        """Resolve ``handle``; ``recursion_count`` goes into every request sent
        (a recursive node passes its client's count plus one)."""
        resolution = Resolution(
            handle, self.roots, self.cache,
            max_referrals=self.max_referrals, site_walk=self.site_walk,
        )  # fmt: skip

        async def ask(query: Query) -> RemoteAnswer:
            return await self.ask(query, recursion_count=recursion_count)

        resolved = await run_resolution(resolution, ask)
        resolved.values = filter_values(resolved.values, types, indexes)
        return resolved

    async def ask(self, query: Query, *, recursion_count: int = 0) -> RemoteAnswer:
        """Ask the site of ``query`` (its servers in hash order) for the whole record."""
        # Certified: signed, and naming this request's digest (RD), so that no signed
        # answer to another request (an older one under the same id) passes.
        request = self.client.stamp(Message(
            OpCode.RESOLUTION, ResolutionRequest(str(query.handle)),
            request_id=random_request_id(), recursion_count=min(recursion_count, 0xFF),
            flags=OpFlag.PO | (OpFlag.CT | OpFlag.RD if self.certified else OpFlag(0)),
            version=CLIENT_VERSION, suggested_version=NODE_VERSION,
        ))  # fmt: skip
        last: Exception | None = None
        for server in select_server(query.site, query.handle):
            udp = server_address(server, TransportProtocol.UDP)
            tcp = server_address(server, TransportProtocol.TCP)
            address = udp or tcp
            if address is None:
                continue
            label = f"{address[0]}:{address[1]}"
            try:
                response, via = await self.client.exchange(address, request, udp=udp is not None)
                if self.certified and not verify_signature(response, server.public_key):
                    raise RemoteProtocolError(f"the answer of {label} is not signed by its key")
                echoed = response.request_digest
                if self.certified and (
                    echoed is None
                    or RequestDigest.of(request.signed_data(), echoed.algorithm) != echoed
                ):
                    raise RemoteProtocolError(f"the answer of {label} is to another request")
                return to_remote_answer(response, f"{via}://{label}", query.handle)
            except (TransportError, RemoteProtocolError) as exc:
                last = exc
        if last is None:
            raise TransportError("no server of the site has a native interface")
        raise TransportError(f"no server of the site answered: {last}")

    async def aclose(self) -> None:
        """Close the client's sockets if the resolver made the client itself."""
        if self._owns_client:
            await self.client.aclose()


def to_remote_answer(
    response: Message, server: str, asked: HandleName | None = None
) -> RemoteAnswer:
    """The driver's view of a RESOLUTION answer; ``RemoteProtocolError`` if it is unusable.

    With ``asked``, a SUCCESS about another handle is refused.  A referral names
    the delegated prefix by its record ``0.NA/<prefix>`` (or nothing).
    """
    code = response.response_code
    body = response.body
    if isinstance(body, ResolutionResponse):
        if asked is not None and not _names(body.handle, asked):
            raise RemoteProtocolError(f"{server} answered about {body.handle!r}, not {asked}")
        return RemoteAnswer(code, body.values, None, server)
    if isinstance(body, ReferralResponse):
        delegated: Prefix | None = None
        if body.handle:
            try:
                name = HandleName.parse(body.handle)
            except HandleError:
                name = None
            if name is None or not name.is_na_handle:
                raise RemoteProtocolError(
                    f"{server} referred to {body.handle!r}, which is not a prefix record"
                )
            delegated = name.authority
        return RemoteAnswer(code, body.values, delegated, server)
    message = body.message if isinstance(body, ErrorBody) else ""
    if code == ResponseCode.SUCCESS:
        raise RemoteProtocolError(f"{server} answered a resolution with {type(body).__name__}")
    return RemoteAnswer(code, (), None, server, message)


def _names(text: str, handle: HandleName) -> bool:
    try:
        return HandleName.parse(text) == handle
    except HandleError:
        return False


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
        client = NativeClient(timeout=timeout)
        try:
            resolver = NativeResolver(
                roots, cache=cache, client=client, max_referrals=max_referrals
            )
            return await resolver.resolve(handle)
        finally:
            await client.aclose()

    return asyncio.run(run())


__all__ = [
    "NativeClient",
    "NativeResolver",
    "UdpClientStats",
    "next_request_id",
    "random_request_id",
    "read_response",
    "resolve_native_sync",
    "server_address",
    "to_remote_answer",
]
