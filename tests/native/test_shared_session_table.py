"""The shared session table: bounded against peers nobody authenticated, private on disk,
and consistent between the worker processes (each ``SQLiteSessionTable`` here is one)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from iinode.identifiers import IndexedHandle
from iinode.node.challenges import MemoryChallengeTable, SQLiteChallengeTable, challenge_table_for
from iinode.resolution.native_sessions import (
    MAX_UNBOUND_PER_SOURCE,
    OPENING_SOURCE,
    REPLAY_WINDOW,
    SessionTable,
)
from iinode.resolution.shared_sessions import SESSIONS_FILE, SQLiteSessionTable

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")
NOW = 1_000.0


def _used_rows(table: SQLiteSessionTable) -> int:
    return int(table.db.execute("SELECT count(*) FROM used").fetchone()[0])


def test_an_unbound_session_records_no_counters_and_binding_refuses_earlier_ones(
    tmp_path: Path,
) -> None:
    one = SQLiteSessionTable(tmp_path / SESSIONS_FILE)
    two = SQLiteSessionTable(tmp_path / SESSIONS_FILE)
    session = one.open(None, NOW, handle_net=True, source="192.0.2.1")
    for n in range(1, 2001):
        assert one.first_use(session, n)
    assert _used_rows(one) == 0  # nobody authenticated: nothing grows
    assert one.bind(session, ADMIN)
    # Counter 2000 (say, the challenged request) was seen in the other process's
    # unbound phase; once bound it is refused everywhere.
    other = two.get(session.session_id, NOW)
    assert other is not None
    assert other.identity == ADMIN
    assert not two.first_use(other, 1500)
    assert not two.first_use(other, 2000)
    assert two.first_use(other, 2001)
    assert not one.first_use(session, 2001)  # used through the other process
    one.shutdown()
    two.shutdown()


def test_a_bound_session_keeps_a_sliding_window_of_counters(tmp_path: Path) -> None:
    table = SQLiteSessionTable(tmp_path / SESSIONS_FILE)
    other = SQLiteSessionTable(tmp_path / SESSIONS_FILE)
    session = table.open(ADMIN, NOW)
    for n in range(1, 3 * REPLAY_WINDOW):
        assert table.first_use(session, n)
    assert _used_rows(table) <= REPLAY_WINDOW
    seen = other.get(session.session_id, NOW)
    assert seen is not None
    assert not other.first_use(seen, 5)  # below the window: refused though its row is gone
    assert not other.first_use(seen, 3 * REPLAY_WINDOW - 1)
    table.shutdown()
    other.shutdown()


def test_opening_does_not_scan_the_counters(tmp_path: Path) -> None:
    table = SQLiteSessionTable(tmp_path / SESSIONS_FILE)
    table.open(ADMIN, NOW)
    plan = " ".join(
        str(row)
        for row in table.db.execute(
            "EXPLAIN QUERY PLAN DELETE FROM used WHERE session IN "
            "(SELECT id FROM sessions WHERE expires <= ?)",
            (NOW,),
        )
    )
    assert "SCAN used" not in plan
    assert "sessions_expires" in plan
    table.shutdown()


@pytest.mark.parametrize("shared", [False, True])
def test_unbound_sessions_are_capped_per_source_and_evicted_before_bound_ones(
    tmp_path: Path, shared: bool
) -> None:
    table: SessionTable = (
        SQLiteSessionTable(tmp_path / SESSIONS_FILE, max_sessions=30)
        if shared
        else SessionTable(max_sessions=30)
    )
    admins = [table.open(ADMIN, NOW, 60) for _ in range(5)]  # expire first
    flood = [table.open(None, NOW, 3600 + n, source="198.51.100.7") for n in range(40)]
    assert len(table) == 5 + MAX_UNBOUND_PER_SOURCE
    assert table.get(flood[0].session_id, NOW) is None  # the source's oldest went
    assert table.get(flood[-1].session_id, NOW) is not None
    # An IPv6 attacker counts per /64.
    token = OPENING_SOURCE.set("2001:db8::1")
    try:
        for n in range(40):
            table.open(None, NOW, 3600, source=f"2001:db8::{n + 1:x}")
    finally:
        OPENING_SOURCE.reset(token)
    assert len(table) == 30
    # Many sources together: the table is full, but no admin session was evicted.
    for n in range(40):
        table.open(None, NOW, 3600, source=f"203.0.113.{n}")
    assert len(table) == 30
    assert all(table.get(s.session_id, NOW) is not None for s in admins)
    # Only bound sessions left: then the earliest-expiring bound one goes.
    bound = [table.open(ADMIN, NOW, 7200) for _ in range(26)]
    assert len(table) == 30
    assert all(table.get(s.session_id, NOW) is not None for s in bound)
    assert sum(table.get(s.session_id, NOW) is not None for s in admins) == 4
    table.shutdown()


def test_the_source_of_a_dh_opening_comes_from_the_context(tmp_path: Path) -> None:
    table = SQLiteSessionTable(tmp_path / SESSIONS_FILE)
    token = OPENING_SOURCE.set("2001:db8:0:1::5")
    try:
        session = table.open(None, NOW)
    finally:
        OPENING_SOURCE.reset(token)
    assert session.source == "2001:db8:0:1::/64"
    table.shutdown()


def test_ending_a_session_in_one_worker_ends_it_in_all(tmp_path: Path) -> None:
    one = SQLiteSessionTable(tmp_path / SESSIONS_FILE)
    two = SQLiteSessionTable(tmp_path / SESSIONS_FILE)
    session = one.open(ADMIN, NOW)
    cached = two.get(session.session_id, NOW)
    assert cached is not None
    assert two.first_use(cached, 1)
    assert one.close(session.session_id)
    assert two.get(session.session_id, NOW) is None  # not served from its memory
    assert not two.first_use(cached, 1)  # and the counter stays used
    assert not two.first_use(cached, 2)
    # The closed row stays until the session would have expired, then goes.
    rows = one.db.execute("SELECT count(*) FROM used").fetchone()[0]
    assert rows == 1
    one.open(ADMIN, session.expires + 1)
    assert one.db.execute("SELECT count(*) FROM used").fetchone()[0] == 0
    one.shutdown()
    two.shutdown()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_session_and_challenge_files_are_private_and_closed(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        challenges = challenge_table_for(data, shared=True)
        assert isinstance(challenges, SQLiteChallengeTable)
        assert _mode(data) == 0o700
        table = SQLiteSessionTable(data / SESSIONS_FILE)
        table.open(ADMIN, NOW)
        await challenges.put(b"payload", 60)
    finally:
        os.umask(old)
    files = sorted(p.name for p in data.iterdir())
    assert f"{SESSIONS_FILE}-wal" in files
    for name in files:
        assert _mode(data / name) == 0o600, name
    table.shutdown()
    assert not (data / f"{SESSIONS_FILE}-wal").exists()  # closed: nothing left behind


def test_an_older_session_file_is_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / SESSIONS_FILE
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, expires REAL)")
    db.execute("INSERT INTO sessions VALUES (1, 5000)")
    db.commit()
    db.close()
    table = SQLiteSessionTable(path)
    assert len(table) == 0
    assert table.open(ADMIN, NOW).session_id
    table.shutdown()


@pytest.mark.parametrize("shared", [False, True])
async def test_open_challenges_are_bounded_in_bytes_and_per_ipv6_64(
    tmp_path: Path, shared: bool
) -> None:
    table = (
        SQLiteChallengeTable(tmp_path / "c.sqlite3", max_bytes=10_000, max_per_source=4)
        if shared
        else MemoryChallengeTable(max_bytes=10_000, max_per_source=4)
    )
    ids = [await table.put(b"x" * 3000, 60 + n, source=f"192.0.2.{n}") for n in range(5)]
    assert len(table) == 3  # 9,000 octets at most fit
    assert await table.take(ids[0]) is None
    assert await table.take(ids[-1]) == b"x" * 3000
    for n in range(10):
        await table.put(b"y", 100 + n, source=f"2001:db8:0:7::{n + 1:x}")
    assert len(table) == 2 + 4  # one /64: four open challenges


@pytest.mark.parametrize("shared", [False, True])
def test_counters_of_an_unbound_session_strictly_increase_and_nothing_grows(
    tmp_path: Path, shared: bool
) -> None:
    one: SessionTable = SQLiteSessionTable(tmp_path / SESSIONS_FILE) if shared else SessionTable()
    two = SQLiteSessionTable(tmp_path / SESSIONS_FILE) if shared else one
    session = one.open(None, NOW, handle_net=True, source="192.0.2.1")
    for n in range(1, 3 * REPLAY_WINDOW):
        assert one.first_use(session, n)
    assert not session.seen  # no memory per counter either
    other = two.get(session.session_id, NOW)
    assert other is not None
    assert not two.first_use(other, 3 * REPLAY_WINDOW - 1)  # a replay, in either process
    assert not two.first_use(other, 5)
    assert one.bind(session, ADMIN)
    assert not one.first_use(session, 3 * REPLAY_WINDOW - 2)
    assert one.first_use(session, 3 * REPLAY_WINDOW + 1)
    one.shutdown()
    two.shutdown()
