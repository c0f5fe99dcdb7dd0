"""The UDP side's bounds: answer size, per-source rate, the slow-path backlog, the cache's
generations (a stale answer is never filed under a newer change-counter value)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.identifiers import HandleValue, UrlData
from iinode.node.settings import Role
from iinode.proto import (
    EnvelopeFlag,
    Message,
    OpCode,
    ResolutionRequest,
    ResolutionResponse,
    UdpReassembler,
)
from iinode.resolution.native_client import NativeClient, next_request_id
from iinode.resolution.native_ratelimit import ResponseRateLimit
from iinode.resolution.native_udp import UdpFastCache, UdpTransport
from native.golden import resolution_request
from native.nodes import Node, start_node, url

HUGE = [HandleValue(n, "URL", UrlData(f"http://f.cn/{n}/" + "y" * 400)) for n in range(1, 9)]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    records = {"88.118.8/X": [url(1, "http://f.cn/x")], "88.118.8/HUGE": HUGE}
    started = start_node(tmp_path, Role.ENTERPRISE, "88.118.8", records)
    yield started
    started.server.stop()


def udp(node: Node) -> UdpTransport:
    transport = node.server.udp
    assert transport is not None
    return transport


def receive_all(sock: socket.socket, quiet: float = 0.3) -> list[bytes]:
    """Every datagram that arrives until ``quiet`` seconds pass without one."""
    sock.settimeout(quiet)
    packets = []
    while True:
        try:
            packets.append(sock.recv(65_535))
        except TimeoutError:
            return packets


def test_a_large_answer_comes_in_several_packets_like_the_reference_server(node: Node) -> None:
    request = resolution_request("88.118.8/HUGE", 41)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(request, node.address)
        packets = receive_all(s)
    length = int.from_bytes(packets[0][16:20], "big")
    assert len(packets) == -(-length // 492) > 1
    assert sorted(int.from_bytes(p[12:16], "big") for p in packets) == list(range(len(packets)))
    assert all(len(p) <= 512 for p in packets)
    # As the Handle.Net server sends them: no TC flag, the request's flags otherwise.
    assert not any(int.from_bytes(p[2:4], "big") & EnvelopeFlag.TC for p in packets)
    reassembler = UdpReassembler()
    frames = [reassembler.receive("server", p, 0.0) for p in packets]
    frame = next(f for f in frames if f is not None)
    answer = Message.from_frame(frame)
    assert answer.request_id == 41
    assert isinstance(answer.body, ResolutionResponse)
    assert len(answer.body.values) == len(HUGE)


def test_an_answer_over_the_udp_limit_draws_one_truncated_packet_and_tcp_gets_it_all(
    node: Node,
) -> None:
    udp(node).max_response_bytes = 1000
    request = resolution_request("88.118.8/HUGE", 42)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(request, node.address)
        packets = receive_all(s)
    assert len(packets) == 1
    answer = Message.from_wire(packets[0])
    assert answer.envelope_flags & EnvelopeFlag.TC
    assert answer.response_code == ResponseCode.ERROR
    assert answer.request_id == 42
    assert answer.expiration > time.time()

    async def over_the_client() -> tuple[Message, str]:
        client = NativeClient(timeout=1.0)
        message = Message(OpCode.RESOLUTION, ResolutionRequest("88.118.8/HUGE"),
                          request_id=next_request_id())  # fmt: skip
        try:
            return await client.exchange(node.address, message)
        finally:
            await client.aclose()

    response, via = asyncio.run(over_the_client())
    assert via == "tcp"
    assert isinstance(response.body, ResolutionResponse)
    assert len(response.body.values) == len(HUGE)


def test_a_multi_packet_answer_costs_its_source_one_token_per_packet(node: Node) -> None:
    transport = udp(node)
    transport.rate_limit = ResponseRateLimit(rate=0.001, burst=12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(resolution_request("88.118.8/HUGE", 43), node.address)
        first = receive_all(s)
        s.sendto(resolution_request("88.118.8/HUGE", 44), node.address)
        second = receive_all(s)
    assert 1 < len(first) <= 12
    # The bucket holds fewer tokens than the answer has packets: one TC error instead.
    assert len(second) == 1
    assert Message.from_wire(second[0]).envelope_flags & EnvelopeFlag.TC


def test_the_slow_path_answers_each_source_at_a_bounded_rate(node: Node) -> None:
    transport = udp(node)
    transport.rate_limit = ResponseRateLimit(rate=20, burst=10)
    dropped = node.server.counters.dropped
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
        started = time.monotonic()
        for n in range(200):  # all different, all missing: every one takes the slow path
            flood.sendto(resolution_request(f"88.118.8/MISSING-{n}", n + 1), node.address)
        answers = receive_all(flood, quiet=0.5)
        elapsed = time.monotonic() - started
    assert 10 <= len(answers) <= 10 + 20 * elapsed + 2
    assert node.server.counters.dropped - dropped >= 200 - len(answers) - 2
    assert transport.rate_limit.limited >= 150
    # Another source host is answered meanwhile (the whole of 127/8 is loopback).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.2", 0))
        other.settimeout(2)
        other.sendto(resolution_request("88.118.8/X", 7), node.address)
        answer = Message.from_wire(other.recv(65_535))
    assert answer.response_code == ResponseCode.SUCCESS
    # The backlog counters agree once everything is answered (a task ends just after
    # it sends its answer).
    for _ in range(50):
        if transport.in_flight == 0:
            break
        time.sleep(0.02)
    assert transport.in_flight == 0
    assert transport.handed == transport.finished >= 200


def test_rate_limit_buckets_refill_and_are_bounded() -> None:
    limit = ResponseRateLimit(rate=10, burst=5, max_sources=3)
    assert [limit.allow("a", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert limit.allow("a", 0.1)  # one token back after 0.1 s
    assert not limit.allow("a", 0.1)
    assert limit.allow("a", 10.0)
    for host in ("b", "c", "d"):
        assert limit.allow(host, 10.0)
    assert len(limit) == 3  # "a" was forgotten first
    assert limit.limited == 2
    # An answer of several packets costs one token per packet, all or nothing.
    packets = ResponseRateLimit(rate=10, burst=5)
    assert packets.allow("a", 0.0, 4)
    assert not packets.allow("a", 0.0, 2)  # one token left: refused, nothing spent
    assert packets.allow("a", 0.0, 1)
    assert packets.allow("a", 0.3, 3)  # three tokens back after 0.3 s


class RacingCounter:
    """A change counter whose next read lets a write commit and the receive thread
    refresh, *after* the reader has seen the old value (the interleaving of the race)."""

    def __init__(self) -> None:
        self.current = 1
        self.race: Callable[[], object] | None = None

    def value(self) -> int:
        seen = self.current
        if self.race is not None:
            race, self.race = self.race, None
            self.current += 1  # a write commits...
            race()  # ...and the receive thread starts a new generation
        return seen


def cacheable(datagram: bytes) -> bytes:
    key = UdpFastCache.key(datagram, Message.from_wire(datagram))
    assert key is not None
    return key


def test_an_answer_read_before_a_write_is_never_filed_under_the_new_version() -> None:
    counter = RacingCounter()
    cache = UdpFastCache(counter)  # type: ignore[arg-type]
    request = resolution_request("88.118.8/X", 1)
    key = cacheable(request)
    response = bytes(range(8)) + b"\x00" * 4 + bytes(range(40))
    version = cache.version
    counter.race = cache.refresh
    cache.fill(key, response, version)
    assert cache.version == 2
    assert cache.answer(request, b"EXPI") is None  # the stale answer is not served
    # Without a race, an answer is filed and served, with the new request id and expiration.
    cache.fill(key, response, cache.version)
    again = request[:8] + b"\x00\x00\x00\x09" + request[12:]
    assert cache.answer(again, b"EXPI") == (
        response[:8] + b"\x00\x00\x00\x09" + response[12:36] + b"EXPI" + response[40:]
    )


def test_fill_after_a_refresh_is_dropped() -> None:
    counter = RacingCounter()
    cache = UdpFastCache(counter)  # type: ignore[arg-type]
    key = cacheable(resolution_request("88.118.8/X", 1))
    old = cache.version
    counter.current += 1
    cache.refresh()
    cache.fill(key, resolution_request("88.118.8/X", 1), old)
    assert cache.table == {}
