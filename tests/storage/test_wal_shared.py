"""Processes sharing a SQLite file all open it in WAL mode, and close it in turn so the
last one removes the WAL."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import sqlite3
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from iinode.storage.sqlite import SQLiteStore
from iinode.storage.wal import closing_in_turn, switch_to_wal

ROUNDS = 30
PROCESSES = 6


def at_once(ctx: Any, target: Callable[..., None], path: Path, *more: object) -> None:
    """Run ``target(path, go, *more)`` in ``PROCESSES`` processes that all wait for ``go``,
    set once every one has started; each must exit 0."""
    go = ctx.Event()
    procs = [ctx.Process(target=target, args=(path, go, *more)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    time.sleep(0.1)
    go.set()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0


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
        at_once(ctx, _close_raw_in_turn, path)
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


def _open_new_file(path: Path, go: Event, errors: mp.Queue[str]) -> None:
    go.wait()
    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        switch_to_wal(db, 10)
        db.executescript(
            "CREATE TABLE IF NOT EXISTS t (x); CREATE INDEX IF NOT EXISTS tx ON t (x);"
        )
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        errors.put("" if mode == "wal" else f"journal mode {mode}")
    except sqlite3.Error as exc:
        errors.put(str(exc))
    finally:
        db.close()


def test_processes_opening_a_new_file_at_once_all_switch_it_to_wal(tmp_path: Path) -> None:
    # A plain "PRAGMA journal_mode=WAL" fails "database is locked" in about one round of
    # fifteen here: SQLite refuses the losing switch at once instead of waiting.
    ctx = mp.get_context("fork")
    failed = []
    for n in range(ROUNDS):
        path = tmp_path / f"o{n}.sqlite3"
        errors: mp.Queue[str] = ctx.Queue()
        at_once(ctx, _open_new_file, path, errors)
        answers = [errors.get(timeout=30) for _ in range(PROCESSES)]
        failed += [(n, a) for a in answers if a]
    assert failed == []
