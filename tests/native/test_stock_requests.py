"""The request mix of real Handle.Net clients against a running node: versions 2.1 to 2.11,
the usual flags, ExpirationTime in every answer, and the UDP fast path serving them all.

Requests are written from the RFC layouts and the reference client's choices
(``native.golden.stock_request``), not with iinode.proto (but the multi-packet one).
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iinode.node.settings import Role
from iinode.proto import Message, OpCode, OpFlag, ResolutionRequest, to_packets
from native.golden import (
    AT,
    CA,
    CN,
    CT,
    DNRF,
    KA,
    PO,
    RD,
    REC,
    STOCK_FLAGS,
    parse_response,
    resolution_request,
    stock_request,
)
from native.nodes import Node, start_node, url

LIFETIME = 43_200
VERSIONS = [(2, minor) for minor in range(1, 12)]
#: Flag sets clients send on a plain resolution; all are served by the fast path.
FLAG_SETS = [0, STOCK_FLAGS, REC | PO, STOCK_FLAGS | KA, AT | REC | DNRF, REC | CN]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    records = {f"88.118.8/X{n}": [url(1, f"http://x.cn/{n}")] for n in range(4)}
    started = start_node(tmp_path, Role.ENTERPRISE, "88.118.8", records)
    yield started
    started.server.stop()


class Asker:
    """One client socket; ``ask`` sends a datagram and returns the answer."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2)

    def ask(self, datagram: bytes) -> bytes:
        self.sock.sendto(datagram, self.node.address)
        while True:
            answer = self.sock.recv(65_535)
            if answer[8:12] == datagram[8:12]:
                return answer

    def hits(self) -> int:
        return self.node.server.counters.fast_hits

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def asker(node: Node) -> Iterator[Asker]:
    a = Asker(node)
    yield a
    a.close()


def without_id_and_expiration(answer: bytes) -> bytes:
    return answer[:8] + answer[12:36] + answer[40:]


def check_expiration(answer: dict[str, object], before: float, after: float) -> None:
    expiration = answer["expiration"]
    assert isinstance(expiration, int)
    assert int(before) + LIFETIME <= expiration <= int(after) + LIFETIME


def test_the_stock_datagram_is_answered_then_served_from_the_fast_path(asker: Asker) -> None:
    before = time.time()
    first = asker.ask(stock_request("88.118.8/X0", 0x1234ABCD))
    answer = parse_response(first)
    check_expiration(answer, before, time.time())
    assert answer["version"] == (2, 11)
    assert answer["message_flags"] == 0x020B  # suggesting 2.11
    assert (answer["code"], answer["flags"], answer["serial"]) == (1, STOCK_FLAGS, 1)
    assert answer["values"] == [(1, "URL", b"http://x.cn/0")]
    time.sleep(0.05)  # the cache is filled after the first answer is sent
    hits = asker.hits()
    # The next request of the same client: new request id, new ExpirationTime.
    second = asker.ask(stock_request("88.118.8/X0", 7, expiration=int(time.time()) + 43_201))
    assert asker.hits() == hits + 1
    assert second[8:12] == (7).to_bytes(4, "big")
    assert without_id_and_expiration(second) == without_id_and_expiration(first)
    check_expiration(parse_response(second), before, time.time())


def test_every_version_and_usual_flag_set_is_served_by_the_fast_path(asker: Asker) -> None:
    request_id = 100
    for version in VERSIONS:
        for suggested in (None, (2, 11)):
            for flags in FLAG_SETS:
                request_id += 1
                handle = f"88.118.8/X{request_id % 4}"
                ask = {"version": version, "suggested": suggested, "flags": flags}
                first = asker.ask(stock_request(handle, request_id, **ask))  # type: ignore[arg-type]
                answer = parse_response(first)
                expected = suggested or version
                assert answer["version"] == expected, ask
                assert answer["message_flags"] == 0x020B, ask
                echoed = flags & (AT | CT | CA | PO | DNRF)
                assert answer["flags"] == REC | echoed, ask
                assert answer["values"] == [(1, "URL", f"http://x.cn/{request_id % 4}".encode())]
                for _ in range(50):  # the fill follows the answer
                    hits = asker.hits()
                    again = asker.ask(stock_request(handle, request_id + 10_000, **ask))  # type: ignore[arg-type]
                    if asker.hits() == hits + 1:
                        break
                    time.sleep(0.01)
                else:
                    pytest.fail(f"not served from the fast path: {ask}")
                assert without_id_and_expiration(again) == without_id_and_expiration(first)


def test_answers_bound_to_their_request_are_not_replayed(asker: Asker) -> None:
    """CT (signed: the signature covers the request id) and RD (the digest covers the
    request's ExpirationTime) answers always come from the slow path."""
    for n, flags in enumerate((STOCK_FLAGS | CT, STOCK_FLAGS | RD)):
        asker.ask(stock_request("88.118.8/X1", 500 + n, flags=flags))
        time.sleep(0.05)
        hits = asker.hits()
        datagram = stock_request("88.118.8/X1", 600 + n, flags=flags)
        answer = asker.ask(datagram)
        assert asker.hits() == hits
        fields = parse_response(answer)
        assert fields["code"] == 1
        assert fields["flags"] & flags == flags
        if flags & RD:  # the digest of the request's header and body, SHA-256 in 2.11
            assert fields["digest"] == b"\x03" + hashlib.sha256(datagram[20:-4]).digest()


def test_fast_path_answers_carry_a_current_expiration(asker: Asker) -> None:
    asker.ask(stock_request("88.118.8/X2", 1))
    time.sleep(0.05)
    hits = asker.hits()
    early = parse_response(asker.ask(stock_request("88.118.8/X2", 2)))
    time.sleep(1.1)
    late = parse_response(asker.ask(stock_request("88.118.8/X2", 3)))
    assert asker.hits() == hits + 2
    assert isinstance(early["expiration"], int)
    assert isinstance(late["expiration"], int)
    assert late["expiration"] > early["expiration"] >= int(time.time()) + LIFETIME - 3


def test_the_rfc_form_still_answers_in_2_1(asker: Asker) -> None:
    answer = parse_response(asker.ask(resolution_request("88.118.8/X3", 9)))
    assert answer["version"] == (2, 1)
    assert answer["message_flags"] == 0x020B
    assert answer["flags"] == REC
    assert isinstance(answer["expiration"], int)
    assert answer["expiration"] > time.time()


def test_a_request_of_several_packets_marked_tc_is_reassembled_and_answered(asker: Asker) -> None:
    """Handle.Net clients set TC on every packet of a request longer than one packet."""
    types = tuple(f"TYPE-{n:03d}-" + "t" * 40 for n in range(12))  # about 700 octets of body
    request = Message(
        OpCode.RESOLUTION, ResolutionRequest("88.118.8/X0", (), (*types, "URL")),
        flags=OpFlag(STOCK_FLAGS), request_id=77, version=(2, 10), suggested_version=(2, 11),
        expiration=int(time.time()) + LIFETIME,
    )  # fmt: skip
    packets = to_packets(request)
    assert len(packets) == 2
    assert all(int.from_bytes(p[2:4], "big") & 0x2000 for p in packets)
    for packet in reversed(packets):  # out of order, as UDP may deliver them
        asker.sock.sendto(packet, asker.node.address)
    answer = parse_response(asker.sock.recv(65_535))
    assert (answer["request_id"], answer["code"], answer["version"]) == (77, 1, (2, 11))
    assert answer["values"] == [(1, "URL", b"http://x.cn/0")]
