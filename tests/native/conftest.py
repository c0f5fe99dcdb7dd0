"""Fixtures: native servers on 127.0.0.1 (one node, or a three-level hierarchy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iinode.node.settings import Role
from native.nodes import Hierarchy, Node, delegation, start_node, url


@pytest.fixture
def enterprise(tmp_path: Path) -> Iterator[Node]:
    node = start_node(
        tmp_path, Role.ENTERPRISE, "88.118.8", {"88.118.8/X": [url(1, "http://x.cn/")]}
    )
    yield node
    node.server.stop()


@pytest.fixture
def hierarchy(tmp_path: Path) -> Iterator[Hierarchy]:
    ent = start_node(
        tmp_path, Role.ENTERPRISE, "88.118.8", {"88.118.8/PRESS-01": [url(1, "http://f.cn/p1")]}
    )
    sec = start_node(tmp_path, Role.SECONDARY, "88.118", {"0.NA/88.118.8": delegation(ent.port)})
    top = start_node(tmp_path, Role.TOP, "88", {"0.NA/88.118": delegation(sec.port)})
    yield Hierarchy(top, sec, ent)
    for node in (top, sec, ent):
        node.server.stop()
