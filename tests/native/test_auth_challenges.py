"""The table of open challenges (``node.challenges``): taken once, expiring, bounded, shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from iinode.node.challenges import (
    ChallengeTable,
    MemoryChallengeTable,
    SQLiteChallengeTable,
    challenge_table_for,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(kind: str, tmp_path: Path, clock: Clock, **limits: int) -> ChallengeTable:
    if kind == "memory":
        return MemoryChallengeTable(clock=clock, **limits)
    return SQLiteChallengeTable(tmp_path / "challenges.sqlite3", clock=clock, **limits)


KINDS = ["memory", "sqlite"]


@pytest.mark.parametrize("kind", KINDS)
async def test_taken_once_and_expiring(kind: str, tmp_path: Path) -> None:
    clock = Clock()
    table = make(kind, tmp_path, clock)
    first = await table.put(b"one", 60.0, source="10.0.0.1")
    second = await table.put(b"two", 60.0, source="10.0.0.1")
    assert 0 < first < 2**31
    assert 0 < second < 2**31
    assert first != second
    assert await table.take(first) == b"one"
    assert await table.take(first) is None  # an answer cannot be replayed
    clock.now += 61
    assert await table.take(second) is None  # expired
    assert await table.take(12345) is None
    assert len(table) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_bounded_per_source_and_overall(kind: str, tmp_path: Path) -> None:
    clock = Clock()
    table = make(kind, tmp_path, clock, max_entries=10, max_per_source=3)
    ids = []
    for n in range(5):
        clock.now += 1
        ids.append(await table.put(bytes([n]), 60.0, source="10.0.0.1"))
    other = await table.put(b"other", 60.0, source="10.0.0.2")
    # One flooding source keeps only its newest three; another source keeps its own.
    assert [await table.take(i) for i in ids] == [None, None, b"\x02", b"\x03", b"\x04"]
    assert await table.take(other) == b"other"
    for n in range(15):
        clock.now += 1
        await table.put(b"x", 60.0, source=f"10.1.0.{n}")
    assert len(table) == 10


@pytest.mark.parametrize("kind", KINDS)
async def test_a_given_id_replaces_what_it_named(kind: str, tmp_path: Path) -> None:
    """A request in a session is challenged under the session's id, as Handle.Net does."""
    table = make(kind, tmp_path, Clock())
    assert await table.put(b"first", 60.0, challenge_id=77) == 77
    assert await table.put(b"second", 60.0, challenge_id=77) == 77
    assert await table.take(77) == b"second"


async def test_two_tables_on_one_file_are_one_table(tmp_path: Path) -> None:
    """What two worker processes of a node see."""
    one = challenge_table_for(tmp_path, shared=True)
    two = challenge_table_for(tmp_path, shared=True)
    assert isinstance(one, SQLiteChallengeTable)
    key = await one.put(b"request", 60.0)
    assert await two.take(key) == b"request"
    assert await one.take(key) is None
    assert isinstance(challenge_table_for(tmp_path, shared=False), MemoryChallengeTable)
