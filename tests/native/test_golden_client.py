"""A client built only from the RFC layouts resolves against a running server."""

from __future__ import annotations

import time

from native.golden import parse_response, resolution_request, tcp_ask, udp_ask
from native.nodes import Node


def test_udp_resolution_from_rfc_bytes(enterprise: Node) -> None:
    answer = parse_response(udp_ask(enterprise.address, resolution_request("88.118.8/X", 77)))
    assert answer["version"][0] == 2  # type: ignore[index]
    assert (answer["request_id"], answer["opcode"], answer["code"]) == (77, 1, 1)
    assert answer["handle"] == "88.118.8/X"
    assert answer["values"] == [(1, "URL", b"http://x.cn/")]


def test_tcp_resolution_from_rfc_bytes(enterprise: Node) -> None:
    answer = parse_response(tcp_ask(enterprise.address, resolution_request("88.118.8/X", 9)))
    assert (answer["request_id"], answer["code"]) == (9, 1)
    assert answer["values"] == [(1, "URL", b"http://x.cn/")]


def test_fast_path_answers_repeats_with_the_new_request_id(enterprise: Node) -> None:
    first = udp_ask(enterprise.address, resolution_request("88.118.8/X", 1))
    # The cache is filled after the first answer is sent: ask again until the fast path answers.
    deadline = time.monotonic() + 10
    request_id = 2
    while True:
        hits = enterprise.server.counters.fast_hits
        second = udp_ask(enterprise.address, resolution_request("88.118.8/X", request_id))
        if enterprise.server.counters.fast_hits == hits + 1 or time.monotonic() > deadline:
            break
        request_id += 1
        time.sleep(0.05)
    assert enterprise.server.counters.fast_hits == hits + 1
    assert second[8:12] == request_id.to_bytes(4, "big")
    # Everything but the request id and the expiration (stamped per answer, RFC 3651
    # envelope + message header: octets 36-39) is the first answer's bytes.
    assert first[:8] + first[12:36] + first[40:] == second[:8] + second[12:36] + second[40:]
    stamps = [int.from_bytes(a[36:40], "big") for a in (first, second)]
    assert 0 <= stamps[1] - stamps[0] <= 11


def test_type_filter_and_not_found(enterprise: Node) -> None:
    none = parse_response(
        udp_ask(enterprise.address, resolution_request("88.118.8/X", 3, types=("EMAIL",)))
    )
    assert none["code"] == 1
    assert none["values"] == []
    missing = parse_response(udp_ask(enterprise.address, resolution_request("88.118.8/NO", 4)))
    assert missing["code"] == 100


def test_outside_prefix_is_not_found_at_a_node_without_parent(enterprise: Node) -> None:
    answer = parse_response(udp_ask(enterprise.address, resolution_request("99.1/X", 5)))
    assert answer["code"] == 100
