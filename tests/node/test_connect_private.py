"""Processes opening one new shared SQLite file at once all get a WAL connection."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from iinode.node.challenges import connect_private

ROUNDS = 200
PROCESSES = 3


def _open_each(directory: Path, start: Barrier, failures: Queue[str]) -> None:
    """Open a new file with the other processes, round after round; report failures."""
    for n in range(ROUNDS):
        start.wait(30)
        try:
            db = connect_private(directory / f"{n}.sqlite3", timeout=5.0)
        except sqlite3.Error as exc:
            failures.put(f"round {n}: {exc}")
            continue
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
        if mode != "wal":
            failures.put(f"round {n}: journal mode {mode}")
        db.close()
    failures.put("done")


def test_processes_opening_a_new_file_together_all_switch_it_to_wal(tmp_path: Path) -> None:
    # Without retrying the switch, a few rounds in 200 gave one process "database is
    # locked" at once (SQLite does not wait for the lock a journal-mode switch needs).
    ctx = mp.get_context("fork")
    start = ctx.Barrier(PROCESSES)
    failures: Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(target=_open_each, args=(tmp_path, start, failures), daemon=True)
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    said = []
    while said.count("done") < PROCESSES:
        said.append(failures.get(timeout=60))
    for p in procs:
        p.join(10)
    assert [s for s in said if s != "done"] == []
