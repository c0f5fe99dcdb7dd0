"""The monitoring stores shared by the event loop and worker threads at once.

The sender acks from the event loop while reports are stored (and forwarded
into the outbox) in worker threads, notices are answered and dead letters
requeued from the API: every path hammers one SQLite connection together.
Without one lock around each statement and transaction this fails with
"cannot start a transaction within a transaction" and the outbox's pending
count drifts from its rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from iinode.errors import StorageError
from iinode.identifiers import Prefix
from iinode.monitoring.events import Event, EventKind, Severity
from iinode.monitoring.notices import NoticeBoard, NoticeState
from iinode.monitoring.outbox import Outbox, OutboxSettings
from iinode.monitoring.sqlite import SqliteFile
from iinode.monitoring.store import EventStore

CHILD = Prefix("88.7.1")
THREADS = 4
ROUNDS = 150


def _event(n: int, i: int) -> Event:
    return Event(f"e{n}-{i}", CHILD, EventKind.SECURITY, Severity.LOW, 1_700_000_000.0 + i)


def _rows(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        count, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox"
        ).fetchone()
    return int(count), int(size)


@pytest.mark.parametrize("shared", [True, False], ids=["one-connection", "two-connections"])
async def test_loop_and_threads_hammering_the_outbox_and_store(
    tmp_path: Path, shared: bool
) -> None:
    path = tmp_path / "events.sqlite3"
    db = SqliteFile(path) if shared else None
    box = Outbox(OutboxSettings(path), db=db)
    store = EventStore(db if db is not None else path)
    board = NoticeBoard(tmp_path / "notices.sqlite3")
    failures: list[BaseException] = []
    done = threading.Event()

    def own(n: int) -> None:  # the node's own events, from a thread
        try:
            for i in range(ROUNDS):
                box.enqueue([_event(n, i), _event(n, i + 10_000)])
                board.set_state(f"N{n}", NoticeState.ACKNOWLEDGED, float(i))
        except BaseException as exc:
            failures.append(exc)

    def received(n: int) -> None:  # reports from a child, stored and forwarded in one go
        try:
            for i in range(ROUNDS):
                events = [_event(100 + n, i)]
                store.insert(
                    events, via=CHILD.text, batch_id=f"b{n}-{i}", received_at=1.0,
                    forward=box, upward=[(f"{e.origin.text}|{e.id}", e.encode()) for e in events],
                )  # fmt: skip
                if i % 25 == 0:
                    box.requeue_dead()
        except BaseException as exc:
            failures.append(exc)

    async def sender() -> int:  # the event loop drains, acks and now and then dead-letters
        sent = 0
        while not done.is_set() or box.pending:
            items = box.peek(7)
            if len(items) > 3 and sent % 5 == 0:
                box.dead_letter(items[:1], "refused", 1.0)
                items = items[1:]
            box.ack(items)
            sent += 1
            await asyncio.sleep(0)
        return sent

    drain = asyncio.create_task(sender())
    work = [asyncio.to_thread(own, n) for n in range(THREADS)]
    work += [asyncio.to_thread(received, n) for n in range(THREADS)]
    await asyncio.gather(*work)
    done.set()
    await asyncio.wait_for(drain, 60)
    while box.dead_count():  # what was dead-lettered goes round again until sent
        box.requeue_dead()
        box.ack(box.peek(1000))

    assert failures == []
    assert (box.pending, box.pending_bytes) == _rows(path) == (0, 0)
    assert store.count() == THREADS * ROUNDS
    assert store.batch_count() == THREADS * ROUNDS
    assert board.state("N0") == (NoticeState.ACKNOWLEDGED, float(ROUNDS - 1), [])
    board.close()
    box.close()
    store.close()


def test_pending_counts_follow_the_rows_under_concurrent_enqueue(tmp_path: Path) -> None:
    box = Outbox(OutboxSettings(tmp_path / "o.db", max_events=THREADS * ROUNDS))
    barrier = threading.Barrier(THREADS)

    def fill(n: int) -> None:
        barrier.wait()
        for i in range(ROUNDS):
            box.enqueue_raw([(f"88|{n}-{i}", b"0123456789")])

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box.pending == THREADS * ROUNDS
    assert (box.pending, box.pending_bytes) == _rows(tmp_path / "o.db")
    box.close()


class Undo(Exception):
    pass


def _insert(db: SqliteFile, *keys: str, durable: bool = True, fail: bool = False) -> None:
    with db.transaction(durable=durable) as conn:
        if not durable:
            assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        for key in keys:
            conn.execute("INSERT INTO t VALUES (?)", (key,))
        if fail:
            raise Undo


def test_transactions_nest_roll_back_and_convert_errors(tmp_path: Path) -> None:
    db = SqliteFile(tmp_path / "t.db", schema="CREATE TABLE t (k TEXT PRIMARY KEY);")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES ('a')")
        with pytest.raises(Undo):
            _insert(db, "b", fail=True)  # a savepoint: undoes b only
    assert db.rows("SELECT k FROM t") == [("a",)]
    with pytest.raises(StorageError, match="UNIQUE"):
        _insert(db, "c", "a")
    assert db.rows("SELECT k FROM t") == [("a",)]  # 'c' rolled back with it
    with pytest.raises(StorageError, match="no such table"):
        db.rows("SELECT * FROM missing")
    # a relaxed commit restores the file's synchronous setting, even when it fails
    with pytest.raises(StorageError):
        _insert(db, "a", durable=False)
    assert db.row("PRAGMA synchronous") == (2,)  # FULL
    _insert(db, "d", durable=False)
    assert db.rows("SELECT k FROM t ORDER BY k") == [("a",), ("d",)]
    db.close()
