"""Arbitrary bytes on either port never stop a server from answering."""

from __future__ import annotations

import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from native.golden import parse_response, resolution_request, tcp_ask, udp_ask
from native.nodes import Node

VALID = resolution_request("88.118.8/X", 1)


def mutated() -> st.SearchStrategy[bytes]:
    flips = st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6)
    return st.one_of(
        st.binary(max_size=600),
        flips.map(lambda fs: _apply(VALID, fs)),
        st.integers(0, len(VALID)).map(lambda n: VALID[:n]),
        st.integers(0, 2**32 - 1).map(lambda n: VALID[:16] + struct.pack(">I", n) + VALID[20:]),
    )


def _apply(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in flips:
        out[pos] = value
    return bytes(out)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(junk=st.lists(mutated(), min_size=1, max_size=4))
def test_random_bytes_to_both_ports(enterprise: Node, junk: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in junk:
            s.sendto(data, enterprise.address)
    for data in junk:
        with socket.create_connection(enterprise.address, timeout=2) as c:
            c.settimeout(2)
            try:
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
                while c.recv(65536):
                    pass
            except OSError:
                pass
    assert parse_response(udp_ask(enterprise.address, VALID))["code"] == 1


def test_still_answers_after_fuzzing_and_counts(enterprise: Node) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _n in range(200):  # a flood of first fragments of messages that never complete
            s.sendto(VALID[:16] + struct.pack(">I", 4000) + bytes(492), enterprise.address)
        s.sendto(b"\x07" + VALID[1:], enterprise.address)  # wrong major version
    lying = VALID[:16] + struct.pack(">I", 10) + VALID[20:]
    answer = tcp_ask(enterprise.address, lying)
    assert parse_response(answer)["code"] == 4  # PROTOCOL_ERROR
    huge = VALID[:16] + struct.pack(">I", 2**31) + VALID[20:]
    assert parse_response(tcp_ask(enterprise.address, huge))["code"] == 4
    assert parse_response(udp_ask(enterprise.address, VALID))["code"] == 1
    assert parse_response(tcp_ask(enterprise.address, VALID))["code"] == 1
    assert enterprise.server.counters.protocol_errors >= 3
