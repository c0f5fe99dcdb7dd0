"""Processes sharing a SQLite file close it in turn, so the last one removes the WAL."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import sqlite3
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from iinode.storage.sqlite import SQLiteStore
from iinode.storage.wal import closing_in_turn

ROUNDS = 30
PROCESSES = 6


def _close_raw_in_turn(path: Path, go: Event) -> None:
    db = sqlite3.connect(path)
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    go.wait()
    with closing_in_turn(path):
        db.close()


def test_connections_closing_in_turn_leave_no_wal(tmp_path: Path) -> None:
    # Closing at once without the turn leaves the WAL in about one round of seven here:
    # each closing process still sees another's shared lock and skips the checkpoint.
    ctx = mp.get_context("fork")
    left = []
    for n in range(ROUNDS):
        path = tmp_path / f"r{n}.sqlite3"
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE t (x)")
        db.close()
        go = ctx.Event()
        procs = [ctx.Process(target=_close_raw_in_turn, args=(path, go)) for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        time.sleep(0.1)
        go.set()
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        if path.with_name(path.name + "-wal").exists():
            left.append(n)
    assert left == []


def _open_write_close(path: Path, go: Event) -> None:
    async def run() -> None:
        store = SQLiteStore(path)
        await store.bulk_put([(f"88.1/{path.stem}-{mp.current_process().pid}", "88.1", b"x")])
        go.wait()
        await store.close()

    asyncio.run(run())


def test_stores_closing_together_leave_no_wal(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    left = []
    for n in range(4):
        path = tmp_path / f"r{n}" / "handles.sqlite3"
        go = ctx.Event()
        procs = [ctx.Process(target=_open_write_close, args=(path, go)) for _ in range(4)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + 30
        while not path.with_name(path.name + "-wal").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        go.set()
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        if path.with_name(path.name + "-wal").exists():
            left.append(n)
    assert left == []


def test_a_held_turn_makes_the_next_closer_wait_then_give_up(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    with closing_in_turn(db) as first:
        assert first
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:
            assert pool.apply_async(_try_turn, (db, 0.2)).get(timeout=60) is False
    with ctx.Pool(1) as pool:
        assert pool.apply_async(_try_turn, (db, 0.2)).get(timeout=60) is True


def test_a_missing_directory_is_no_turn_and_no_error(tmp_path: Path) -> None:
    with closing_in_turn(tmp_path / "gone" / "x.sqlite3") as held:
        assert held is False


def _try_turn(db: Path, timeout: float) -> bool:
    with closing_in_turn(db, timeout=timeout) as held:
        return held
