"""The native client's long-lived UDP socket: demultiplexing, late and spoofed answers."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.errors import LocalProtocolError, TransportError
from iinode.identifiers import HandleName, HandleValue, UrlData, site_for
from iinode.node.settings import Role
from iinode.proto import (
    Envelope,
    ErrorBody,
    Message,
    OpCode,
    ResolutionRequest,
    ResolutionResponse,
    to_packets,
)
from iinode.resolution import ResolutionCache
from iinode.resolution.native_client import NativeClient, NativeResolver, next_request_id
from native.nodes import Node, start_node, url

HANDLES = 200


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[Node]:
    records = {f"88.118.8/OBJ-{n}": [url(1, f"http://f.cn/{n}")] for n in range(HANDLES)}
    node = start_node(tmp_path, Role.ENTERPRISE, "88.118.8", records)
    yield node
    node.server.stop()


def request(handle: str) -> Message:
    return Message(OpCode.RESOLUTION, ResolutionRequest(handle), request_id=next_request_id())


def answer(request_id: int, text: str) -> bytes:
    """A one-packet SUCCESS answer carrying one URL value."""
    response = Message(
        OpCode.RESOLUTION,
        ResolutionResponse("88.118.8/X", (HandleValue(1, "URL", UrlData(text)),)),
        response_code=ResponseCode.SUCCESS,
        request_id=request_id,
    )
    (packet,) = to_packets(response)
    return packet


def urls(response: Message) -> list[str]:
    assert isinstance(response.body, ResolutionResponse), response.body
    return [v.data.to_wire().decode() for v in response.body.values]


class Peer:
    """A scripted UDP peer on 127.0.0.1 (a non-blocking socket read through the loop)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.sock.getsockname()

    async def receive(self) -> tuple[int, tuple[str, int]]:
        """The request id of the next request, and where it came from."""
        data, source = await asyncio.wait_for(
            asyncio.get_running_loop().sock_recvfrom(self.sock, 2048), 5
        )
        return Envelope.from_wire(data).request_id, source

    def send(self, datagram: bytes, to: tuple[str, int]) -> None:
        self.sock.sendto(datagram, to)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer]]:
    pair = (Peer(), Peer())
    yield pair
    for peer in pair:
        peer.close()


async def test_concurrent_requests_share_one_socket_and_get_their_own_answers(
    busy: Node,
) -> None:
    client = NativeClient(timeout=2.0, retries=2)
    try:
        # Existing and missing handles interleaved, all in flight at once.
        names = [f"88.118.8/OBJ-{n}" if n % 4 else f"88.118.8/NONE-{n}" for n in range(HANDLES)]
        results = await asyncio.gather(
            *(client.exchange(busy.address, request(name)) for name in names)
        )
        bound = client.local_udp_address()
        for n, (name, (response, via)) in enumerate(zip(names, results, strict=True)):
            assert via == "udp"
            if n % 4:
                assert response.response_code == ResponseCode.SUCCESS
                assert urls(response) == [f"http://f.cn/{n}"], name
            else:
                assert response.response_code == ResponseCode.HANDLE_NOT_FOUND, name
        assert client.stats.answers == HANDLES
        assert client.stats.stray == 0
        # A second round goes through the very same socket.
        again = await asyncio.gather(
            *(client.request(busy.address, request(f"88.118.8/OBJ-{n}")) for n in range(1, 50))
        )
        assert [urls(r) for r in again] == [[f"http://f.cn/{n}"] for n in range(1, 50)]
        assert client.local_udp_address() == bound is not None
    finally:
        await client.aclose()
    assert client.local_udp_address() is None


async def test_concurrent_resolutions_over_one_resolver(busy: Node) -> None:
    client = NativeClient(timeout=2.0, retries=2)
    resolver = NativeResolver(
        [site_for("127.0.0.1", handle_port=busy.port)], cache=ResolutionCache(), client=client
    )
    wanted = range(0, HANDLES, 3)
    try:
        resolved = await asyncio.gather(
            *(resolver.resolve(HandleName("88.118.8", f"OBJ-{n}")) for n in wanted)
        )
    finally:
        await resolver.aclose()
        await client.aclose()
    for n, r in zip(wanted, resolved, strict=True):
        assert [v.data.to_wire() for v in r.values] == [f"http://f.cn/{n}".encode()]
    assert client.stats.stray == 0


async def test_a_late_answer_after_the_timeout_is_ignored(peers: tuple[Peer, Peer]) -> None:
    peer, _ = peers
    client = NativeClient(timeout=0.2, retries=0)
    try:
        first = request("88.118.8/X")
        pending = asyncio.create_task(client.udp(peer.address, first))
        first_id, source = await peer.receive()
        assert first_id == first.request_id
        with pytest.raises(TransportError, match="no UDP answer"):
            await pending
        second = request("88.118.8/X")
        pending = asyncio.create_task(client.udp(peer.address, second))
        second_id, _ = await peer.receive()
        assert second_id == second.request_id
        # The answer to the first request arrives now, twice, before the right one.
        peer.send(answer(first_id, "http://late.example/"), source)
        peer.send(answer(first_id, "http://late.example/"), source)
        await asyncio.sleep(0.05)
        assert not pending.done()
        peer.send(answer(second_id, "http://right.example/"), source)
        response = await pending
        assert response.request_id == second.request_id
        assert urls(response) == ["http://right.example/"]
        assert client.stats.stray == 2
        assert client.stats.answers == 1
        # An answer repeated after it was delivered is dropped as well.
        peer.send(answer(second_id, "http://right.example/"), source)
        await asyncio.sleep(0.05)
        assert client.stats.stray == 3
    finally:
        await client.aclose()


async def test_an_answer_from_another_source_is_ignored(peers: tuple[Peer, Peer]) -> None:
    peer, spoofer = peers
    client = NativeClient(timeout=1.0, retries=0)
    try:
        sent = request("88.118.8/X")
        pending = asyncio.create_task(client.udp(peer.address, sent))
        request_id, source = await peer.receive()
        spoofer.send(answer(request_id, "http://forged.example/"), source)
        await asyncio.sleep(0.05)
        assert not pending.done()
        assert client.stats.stray == 1
        peer.send(answer(request_id, "http://genuine.example/"), source)
        assert urls(await pending) == ["http://genuine.example/"]
        # With only the forged answer, the request times out.
        client.timeout = 0.2
        pending = asyncio.create_task(client.udp(peer.address, request("88.118.8/X")))
        request_id, source = await peer.receive()
        spoofer.send(answer(request_id, "http://forged.example/"), source)
        with pytest.raises(TransportError, match="no UDP answer"):
            await pending
        assert client.stats.stray == 2
        assert client.stats.answers == 1
    finally:
        await client.aclose()


async def test_garbage_and_retries(peers: tuple[Peer, Peer]) -> None:
    peer, _ = peers
    client = NativeClient(timeout=0.2, retries=2)
    try:
        sent = request("88.118.8/X")
        pending = asyncio.create_task(client.udp(peer.address, sent))
        request_id, source = await peer.receive()
        peer.send(b"\x02\x01 not a packet", source)
        peer.send(b"short", source)
        again, _ = await peer.receive()  # the retry, same request id
        assert again == request_id
        error = Message(
            OpCode.RESOLUTION,
            ErrorBody("busy"),
            response_code=ResponseCode.SERVER_BUSY,
            request_id=request_id,
        )
        peer.send(error.to_wire(), source)
        response = await pending
        assert response.response_code == ResponseCode.SERVER_BUSY
        assert client.stats.malformed == 2
    finally:
        await client.aclose()


async def test_one_request_id_in_flight_per_server(peers: tuple[Peer, Peer]) -> None:
    peer, other = peers
    client = NativeClient(timeout=0.3, retries=0)
    try:
        sent = request("88.118.8/X")
        first = asyncio.create_task(client.udp(peer.address, sent))
        await peer.receive()
        with pytest.raises(LocalProtocolError, match="already waiting"):
            await client.udp(peer.address, sent)
        # The same id to another server is a different exchange.
        second = asyncio.create_task(client.udp(other.address, sent))
        _, source = await other.receive()
        other.send(answer(sent.request_id, "http://other.example/"), source)
        assert urls(await second) == ["http://other.example/"]
        with pytest.raises(TransportError):
            await first
    finally:
        await client.aclose()


async def test_aclose_fails_waiting_requests_and_the_client_reopens(
    peers: tuple[Peer, Peer],
) -> None:
    peer, _ = peers
    client = NativeClient(timeout=5.0, retries=0)
    pending = asyncio.create_task(client.udp(peer.address, request("88.118.8/X")))
    _, source = await peer.receive()
    assert client.local_udp_address() == ("0.0.0.0", source[1])
    await client.aclose()
    with pytest.raises(TransportError, match="closed"):
        await pending
    assert client.local_udp_address() is None
    await client.aclose()  # twice is fine
    sent = request("88.118.8/X")
    pending = asyncio.create_task(client.udp(peer.address, sent))
    _, source = await peer.receive()
    peer.send(answer(sent.request_id, "http://again.example/"), source)
    assert urls(await pending) == ["http://again.example/"]
    await client.aclose()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_RECVERR is Linux only")
async def test_a_closed_port_fails_at_once_and_tcp_is_tried(peers: tuple[Peer, Peer]) -> None:
    peer, _ = peers
    address = peer.address
    peer.close()  # nothing listens there now, over UDP or TCP
    client = NativeClient(timeout=5.0, retries=3)
    try:
        started = time.monotonic()
        with pytest.raises(TransportError, match="over UDP"):
            await client.udp(address, request("88.118.8/X"))
        with pytest.raises(TransportError, match="over TCP"):
            await client.request(address, request("88.118.8/X"))
        assert time.monotonic() - started < 2.0
        assert client.stats.unreachable >= 2
    finally:
        await client.aclose()


def test_an_unclosed_client_releases_its_socket(busy: Node) -> None:
    async def run() -> tuple[str, int] | None:
        client = NativeClient()
        await client.request(busy.address, request("88.118.8/OBJ-1"))
        return client.local_udp_address()

    bound = asyncio.run(run())
    assert bound is not None
    # The socket is gone with the client: its port can be bound again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", bound[1]))
