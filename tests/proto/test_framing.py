"""UDP packetisation and reassembly, TCP stream framing, and their limits."""

from __future__ import annotations

import pytest

from iinode.codes import ResponseCode
from iinode.errors import RemoteProtocolError
from iinode.identifiers import HandleValue, StringData
from iinode.proto import (
    CLOSED,
    NEED_DATA,
    Frame,
    Message,
    OpCode,
    ProtoLimits,
    ResolutionRequest,
    ResolutionResponse,
    TcpFramer,
    UdpReassembler,
    to_packets,
)


def big_response(request_id: int, size: int = 2000) -> Message:
    value = HandleValue(1, "DESC", StringData("x" * size))
    return Message(OpCode.RESOLUTION, ResolutionResponse("88.1/big", (value,)),
                   ResponseCode.SUCCESS, request_id=request_id)  # fmt: skip


SMALL = Message(OpCode.RESOLUTION, ResolutionRequest("88.1/x"), request_id=1)


def test_small_message_is_one_packet_and_passes_straight_through() -> None:
    (packet,) = to_packets(SMALL)
    assert packet == SMALL.to_wire()
    frame = UdpReassembler().receive("a", packet, now=0.0)
    assert frame is not None
    assert Message.from_frame(frame) == SMALL


@pytest.mark.parametrize("order", ["forward", "reverse", "shuffled"])
def test_reassembles_in_any_order_with_duplicates(order: str) -> None:
    msg = big_response(7)
    packets = to_packets(msg)
    assert len(packets) == 5
    assert all(len(p) <= 512 for p in packets)
    if order == "reverse":
        packets.reverse()
    elif order == "shuffled":
        packets = [packets[i] for i in (2, 0, 4, 1, 3)]
    r = UdpReassembler()
    results = [r.receive("a", p, 1.0) for p in [packets[0], packets[0], *packets[1:]]]
    assert results[:-1] == [None] * (len(results) - 1)
    assert isinstance(results[-1], Frame)
    assert Message.from_frame(results[-1]) == msg
    assert r.pending_messages == 0
    assert r.pending_bytes == 0
    assert r.stats.duplicates == 1


def test_interleaved_sources_and_requests_stay_apart() -> None:
    a, b = to_packets(big_response(1)), to_packets(big_response(1, 1500))
    r = UdpReassembler()
    done = [f for pa, pb in zip(a, b, strict=False) for f in
            (r.receive("A", pa, 0), r.receive("B", pb, 0)) if f]  # fmt: skip
    done += [f for p in a[len(b):] if (f := r.receive("A", p, 0))]  # fmt: skip
    assert sorted(len(f.payload) for f in done) == sorted(
        [len(big_response(1).payload()), len(big_response(1, 1500).payload())]
    )


def test_incomplete_messages_expire_on_the_callers_clock() -> None:
    r = UdpReassembler(ProtoLimits(reassembly_timeout=2.0))
    r.receive("a", to_packets(big_response(1))[0], now=10.0)
    assert r.expire(11.0) == 0
    assert r.expire(12.5) == 1
    assert r.pending_messages == 0
    assert r.stats.expired == 1


def test_pending_messages_and_bytes_are_bounded() -> None:
    limits = ProtoLimits(max_pending_messages=3, max_udp_message_bytes=4000,
                         max_pending_bytes=8000)  # fmt: skip
    r = UdpReassembler(limits)
    for i in range(50):
        r.receive("flood", to_packets(big_response(i))[0], now=0.0)
        assert r.pending_messages <= 3
        assert r.pending_bytes <= 8000
    assert r.stats.evicted == 47
    with pytest.raises(RemoteProtocolError):
        r.receive("a", to_packets(big_response(99, 5000))[0], now=0.0)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p[:100],  # wrong fragment size
        lambda p: p[:12] + (99).to_bytes(4, "big") + p[16:],  # sequence past the end
        lambda p: b"\x07" + p[1:],  # wrong version
        lambda p: p[:10],  # short envelope
    ],
)
def test_bad_packets_are_rejected(mutate: object) -> None:
    packet = to_packets(big_response(1))[1]
    r = UdpReassembler()
    with pytest.raises(RemoteProtocolError):
        r.receive("a", mutate(packet), 0.0)  # type: ignore[operator]
    assert r.stats.rejected == 1


def test_contradicting_packet_drops_the_partial_message() -> None:
    first = to_packets(big_response(1))[0]
    r = UdpReassembler()
    r.receive("a", first, 0.0)
    other_length = to_packets(big_response(1, 1000))[1]
    with pytest.raises(RemoteProtocolError):
        r.receive("a", other_length, 0.0)
    assert r.pending_messages == 0


@pytest.mark.parametrize("chunk", [1, 7, 20, 44, 512, 100_000])
def test_tcp_framer_handles_any_chunking(chunk: int) -> None:
    messages = [SMALL, big_response(2), SMALL]
    stream = b"".join(m.to_wire() for m in messages)
    framer = TcpFramer()
    got = []
    for i in range(0, len(stream), chunk):
        framer.receive_data(stream[i : i + chunk])
        while (event := framer.next_event()) is not NEED_DATA:
            assert isinstance(event, Frame)
            got.append(Message.from_frame(event))
    framer.receive_data(b"")
    assert framer.next_event() is CLOSED
    assert got == messages


def test_tcp_framer_enforces_max_message_size_before_buffering() -> None:
    framer = TcpFramer(ProtoLimits(max_message_bytes=1000))
    framer.receive_data(big_response(1).to_wire()[:20])
    with pytest.raises(RemoteProtocolError):
        framer.next_event()
    with pytest.raises(RemoteProtocolError):
        framer.next_event()


def test_tcp_framer_reports_truncation_at_close() -> None:
    framer = TcpFramer()
    framer.receive_data(SMALL.to_wire()[:-3])
    assert framer.next_event() is NEED_DATA
    framer.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        framer.next_event()
