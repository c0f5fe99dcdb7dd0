"""Slow and greedy TCP peers are bounded (real sockets against a ``TcpTransport``).

A byte every so often does not hold a connection past the per-message deadline;
a peer that never reads is dropped after the write timeout; one host cannot
take all connections; announced message sizes are charged to a shared budget.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.identifiers import HandleValue, UrlData, encode_record
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import Message, OpCode, OpFlag, ResolutionRequest, TcpFramer
from iinode.resolution.native_client import next_request_id, read_response
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_tcp import TcpTransport
from iinode.storage import MemoryStore

BIG = "88.118.8/BIG"


@dataclass
class Served:
    transport: TcpTransport
    address: tuple[str, int]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., asyncio.Future[Served]]]:
    servers: list[asyncio.Server] = []
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    store = MemoryStore()
    service = HandleService(settings, store)
    big = encode_record(
        [HandleValue(n, "URL", UrlData("http://f.cn/" + "x" * 60_000)) for n in range(1, 5)]
    )
    small = encode_record([HandleValue(1, "URL", UrlData("http://f.cn/x"))])
    await store.modify(BIG, lambda _old: big)
    await store.modify("88.118.8/X", lambda _old: small)
    handler = NativeHandler(service, service._own_site(service.owned))  # type: ignore[arg-type]

    async def start(**options: float) -> Served:
        transport = TcpTransport(handler, **options)  # type: ignore[arg-type]
        server = await asyncio.start_server(transport.serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return Served(transport, ("127.0.0.1", port))

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


def request(handle: str = "88.118.8/X", *, keep_alive: bool = True) -> Message:
    flags = OpFlag.KA if keep_alive else OpFlag(0)
    return Message(OpCode.RESOLUTION, ResolutionRequest(handle), flags=flags,
                   request_id=next_request_id())  # fmt: skip


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Seconds until the server closes the connection (reading whatever it sends)."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        try:
            while await reader.read(65_536):
                pass
        except ConnectionError:
            pass
    return time.monotonic() - started


async def test_a_trickling_message_is_cut_at_the_message_deadline(serve: Callable) -> None:
    served = await serve(idle_timeout=5.0, message_timeout=0.6)
    reader, writer = await asyncio.open_connection(*served.address)
    wire = request().to_wire()
    started = time.monotonic()

    async def trickle() -> None:
        for byte in wire[:-1]:  # one byte every 0.1 s: each read is well within any timeout
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)

    sender = asyncio.create_task(trickle())
    await closed_within(reader, 3.0)
    sender.cancel()
    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 2.0  # not the idle timeout (5 s), nor never
    assert served.transport.timeouts == 1
    writer.close()


async def test_idle_between_messages_and_a_complete_exchange(serve: Callable) -> None:
    served = await serve(idle_timeout=0.5, message_timeout=5.0)
    reader, writer = await asyncio.open_connection(*served.address)
    first = request()
    writer.write(first.to_wire())
    answer = await read_response(reader, TcpFramer(), first.request_id)
    assert answer.response_code == ResponseCode.SUCCESS
    assert 0.3 < await closed_within(reader, 3.0) < 2.0
    assert served.transport.connections == 0
    writer.close()


async def test_a_peer_that_does_not_read_is_dropped_after_the_write_timeout(
    serve: Callable,
) -> None:
    served = await serve(write_timeout=0.5)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(served.address)
    sock.setblocking(False)
    _reader, writer = await asyncio.open_connection(sock=sock)
    # Many requests for a 240 kB record, answers never read: the server's buffers fill.
    for _ in range(200):
        writer.write(request(BIG).to_wire())
    await writer.drain()
    for _ in range(100):  # up to 10 s
        if served.transport.timeouts:
            break
        await asyncio.sleep(0.1)
    assert served.transport.timeouts == 1
    assert served.transport.connections == 0
    writer.close()


async def test_one_host_cannot_take_every_connection(serve: Callable) -> None:
    served = await serve(max_connections_per_peer=2)
    held = [await asyncio.open_connection(*served.address) for _ in range(2)]
    await asyncio.sleep(0.1)
    assert served.transport.connections == 2
    reader, writer = await asyncio.open_connection(*served.address)
    assert await closed_within(reader, 2.0) < 1.0  # refused at once
    dropped = served.transport.counters.dropped
    assert dropped >= 1
    # The held connections still work.
    for r, w in held:
        message = request()
        w.write(message.to_wire())
        answer = await read_response(r, TcpFramer(), message.request_id)
        assert answer.response_code == ResponseCode.SUCCESS
        w.close()
    writer.close()


async def test_announced_sizes_share_one_budget(serve: Callable) -> None:
    served = await serve(max_pending_bytes=100_000, message_timeout=5.0)
    # A begins a 60 kB message and stalls; B announces another 60 kB: over the budget.
    envelope = struct.pack(">BBHIIII", 2, 1, 0, 0, 77, 0, 60_000)
    a_reader, a_writer = await asyncio.open_connection(*served.address)
    a_writer.write(envelope + bytes(100))
    await a_writer.drain()
    await asyncio.sleep(0.2)
    assert served.transport.pending_bytes == 60_000
    b_reader, b_writer = await asyncio.open_connection(*served.address)
    b_writer.write(struct.pack(">BBHIIII", 2, 1, 0, 0, 78, 0, 60_000) + bytes(100))
    answer = await read_response(b_reader, TcpFramer(), 78)
    assert answer.response_code == ResponseCode.SERVER_BUSY
    await closed_within(b_reader, 2.0)
    # A gives up: its reservation is released; a small request still goes through.
    a_writer.close()
    await closed_within(a_reader, 2.0)
    await asyncio.sleep(0.1)
    assert served.transport.pending_bytes == 0
    c_reader, c_writer = await asyncio.open_connection(*served.address)
    message = request(keep_alive=False)
    c_writer.write(message.to_wire())
    done = await read_response(c_reader, TcpFramer(), message.request_id)
    assert done.response_code == ResponseCode.SUCCESS
    b_writer.close()
    c_writer.close()
