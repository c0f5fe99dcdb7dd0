"""HandleService asks a parent's key through the learner it is given (node/ imports
nothing from resolution/); a recursive node asks nothing."""

from __future__ import annotations

from pathlib import Path

from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import MemoryStore

KEY = b"\x00\x01parent-key"


class Learner:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, address: tuple[str, int]) -> bytes:
        self.asked.append(address)
        return KEY


def settings(tmp_path: Path, role: Role) -> NodeSettings:
    return NodeSettings(
        role=role,
        data_dir=tmp_path,
        prefix=None if role is Role.RECURSIVE else "88.118.8",
        parent_url="http://127.0.0.1:27160",
        parent_handle_port=27161,
    )


async def test_the_given_learner_asks_the_parent(tmp_path: Path) -> None:
    learner = Learner()
    service = HandleService(settings(tmp_path, Role.ENTERPRISE), MemoryStore(), learn_key=learner)
    site = await service.parent_site()
    assert learner.asked == [("127.0.0.1", 27161)]
    assert site.servers[0].public_key == KEY
    await service.parent_site()  # kept for its TTL: asked once
    assert len(learner.asked) == 1


async def test_a_recursive_node_asks_no_key(tmp_path: Path) -> None:
    learner = Learner()
    service = HandleService(settings(tmp_path, Role.RECURSIVE), MemoryStore(), learn_key=learner)
    site = await service.parent_site()
    assert learner.asked == []
    assert not site.servers[0].public_key
