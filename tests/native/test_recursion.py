"""Two recursive nodes pointing at each other: the recursion count ends the loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_handler import MAX_RECURSION
from iinode.resolution.native_server import NativeServer
from native.golden import parse_response, resolution_request, udp_ask
from native.nodes import Node, seed
from support import free_port


def recursive_node(root: Path, name: str, port: int, parent_port: int) -> Node:
    settings = NodeSettings(
        role=Role.RECURSIVE, data_dir=root / name, prefix=None, http_port=free_port(),
        handle_port=port, parent_url="http://127.0.0.1:1", parent_handle_port=parent_port,
    )  # fmt: skip
    settings.data_dir.mkdir(parents=True)
    seed(settings, {})
    server = NativeServer(settings, host="127.0.0.1", port=port)
    server.start()
    return Node(settings, server)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    a_port, b_port = free_port(), free_port()
    a = recursive_node(tmp_path, "a", a_port, b_port)
    b = recursive_node(tmp_path, "b", b_port, a_port)
    yield a, b
    a.server.stop()
    b.server.stop()


def test_a_recursion_loop_ends_with_recur_limit_exceeded(pair: tuple[Node, Node]) -> None:
    a, b = pair
    answer = parse_response(udp_ask(a.address, resolution_request("88.118.8/X", 5), timeout=10))
    assert answer["code"] == ResponseCode.RECUR_LIMIT_EXCEEDED
    # One request per level (recursion count 0 to the limit), then the refusal goes back.
    asked = a.server.counters.requests + b.server.counters.requests
    assert asked == MAX_RECURSION + 1, asked
