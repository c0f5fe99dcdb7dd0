"""iinode's own client against iinode's server in every protocol version 2.1-2.11 and the
usual flag combinations, and what its resolver puts on the wire."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.identifiers import HandleName, HandleValue, UrlData, site_for
from iinode.node.settings import Role
from iinode.proto import (
    DEFAULT_MESSAGE_LIFETIME,
    EnvelopeFlag,
    Message,
    OpCode,
    OpFlag,
    ResolutionRequest,
    ResolutionResponse,
    to_packets,
)
from iinode.resolution.native_client import NativeClient, NativeResolver, next_request_id
from native.nodes import Node, start_node, url

BIG = [HandleValue(n, "URL", UrlData(f"http://f.cn/{n}/" + "z" * 700)) for n in range(1, 9)]
FLAGS = [
    OpFlag(0),
    OpFlag.PO,
    OpFlag.REC | OpFlag.CA | OpFlag.PO,
    OpFlag.REC | OpFlag.CA | OpFlag.PO | OpFlag.RD,
    OpFlag.AT | OpFlag.DNRF | OpFlag.KA,
    OpFlag.REC | OpFlag.CN,
]
ECHOED = OpFlag.AT | OpFlag.CT | OpFlag.CA | OpFlag.PO | OpFlag.DNRF


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    records = {"88.118.8/X": [url(1, "http://x.cn/")], "88.118.8/BIG": BIG}
    started = start_node(tmp_path, Role.ENTERPRISE, "88.118.8", records)
    yield started
    started.server.stop()


def test_client_and_server_agree_in_every_version_and_flag_set(node: Node) -> None:
    async def run() -> list[str]:
        client = NativeClient(timeout=1.0)
        problems = []
        try:
            for minor in range(1, 12):
                for suggested in (None, (2, 11)):
                    for flags in FLAGS:
                        for udp in (True, False):
                            request = Message(
                                OpCode.RESOLUTION, ResolutionRequest("88.118.8/X"),
                                flags=flags, request_id=next_request_id(), version=(2, minor),
                                suggested_version=suggested,
                            )  # fmt: skip
                            before = int(time.time())
                            response, via = await client.exchange(node.address, request, udp=udp)
                            expected = suggested or (2, minor)
                            seen = (
                                via, response.response_code, response.version,
                                response.suggested_version, response.flags,
                            )  # fmt: skip
                            want = (
                                "udp" if udp else "tcp", ResponseCode.SUCCESS, expected, (2, 11),
                                OpFlag.REC | (flags & (ECHOED | OpFlag.RD)),
                            )  # fmt: skip
                            if seen != want:
                                problems.append(f"2.{minor} {suggested} {flags!r}: {seen}")
                            lifetime = response.expiration - before
                            if not 0 <= lifetime - DEFAULT_MESSAGE_LIFETIME <= 2:
                                problems.append(f"2.{minor} {flags!r}: expires in {lifetime}")
                            body = response.body
                            assert isinstance(body, ResolutionResponse)
                            assert [v.index for v in body.values] == [1]
        finally:
            await client.aclose()
        return problems

    assert asyncio.run(run()) == []


def test_a_multi_packet_answer_is_taken_over_udp(node: Node) -> None:
    async def run() -> tuple[Message, str]:
        client = NativeClient(timeout=1.0)
        request = Message(OpCode.RESOLUTION, ResolutionRequest("88.118.8/BIG"),
                          request_id=next_request_id())  # fmt: skip
        try:
            return await client.exchange(node.address, request)
        finally:
            await client.aclose()

    response, via = asyncio.run(run())
    assert via == "udp"
    assert isinstance(response.body, ResolutionResponse)
    assert [v.index for v in response.body.values] == [v.index for v in BIG]
    assert len(response.payload()) > 5 * 492


class OneShotServer:
    """A UDP socket that records the first request and answers it with one value."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        data, addr = self.sock.recvfrom(65_535)
        self.seen.append(data)
        request = Message.from_wire(data)
        body = ResolutionResponse("88.118.8/X", (HandleValue(1, "URL", UrlData("http://x/")),))
        answer = request.reply(body, expiration=int(time.time()) + 60)
        for packet in to_packets(answer):
            self.sock.sendto(packet, addr)

    def close(self) -> None:
        self.thread.join(5)
        self.sock.close()


def test_the_resolver_writes_requests_as_a_handle_net_9_client() -> None:
    server = OneShotServer()
    site = site_for("127.0.0.1", handle_port=server.port)

    async def run() -> None:
        resolver = NativeResolver([site], site_walk=False)
        try:
            resolved = await resolver.resolve(HandleName.parse("88.118.8/X"))
        finally:
            await resolver.aclose()
        assert [v.index for v in resolved.values] == [1]

    before = int(time.time())
    try:
        asyncio.run(run())
    finally:
        server.close()
    (datagram,) = server.seen
    assert datagram[:4] == b"\x02\x0a\x02\x0b"  # version 2.10, suggesting 2.11
    request = Message.from_wire(datagram)
    assert request.flags & OpFlag.PO  # only public values: no 402 from a stock server
    assert not request.flags & (OpFlag.CT | OpFlag.RD)
    assert 0 <= request.expiration - before - DEFAULT_MESSAGE_LIFETIME <= 2
    assert not request.envelope_flags & EnvelopeFlag.TC
