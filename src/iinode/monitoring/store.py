"""The receiving side's event store: idempotent insert, node status, details on demand.

The reads behind the views (aggregates, latest events, node status) are
``EventQueries`` (``monitoring._event_queries``), which ``EventStore`` extends.

SQLite (WAL, ``synchronous=FULL``); ``":memory:"`` works for tests.  Events are
keyed by ``(origin, id)`` so a re-delivered event is counted as a duplicate and
changes nothing.  Each batch id is stored with the later of its arrival and its
``sent_at`` (a child whose clock runs ahead must not outlive the window);
``prune_batches`` forgets ids older than the replay window, which the node
runs every ``prune_interval`` (hourly).  A replay after that is refused by the
receiver's ``sent_at`` check instead, so the table stays bounded by the
batches of one window.  ``nodes`` keeps, per reporting origin, when it
was last heard from, its province and industry (from its heartbeats) and the
last clock skew measured on the child that delivered it.

Every use of the connection goes through one ``SqliteFile`` (its lock,
transactions and ``StorageError``): reports are stored in worker threads inside
``BEGIN IMMEDIATE`` transactions, and an unlocked statement from another thread
would run inside that transaction (and be rolled back with it, or read its
uncommitted rows).  The outbox may share the ``SqliteFile`` (one file, one
connection, one lock).  The replay check is made inside the storing
transaction, so two simultaneous reports with one batch id store it once and
refuse the other (``ReportReplayed``).

A node without a parent records its own events here too (``record_own``): they
have nowhere else to go, and its views must show them.

Details on demand: a summary names where its detail is held; this node asks
the child that delivered the summary (``request_detail``), the child picks the
request up when it next talks to this node (``detail_requests``) and answers
with the full event, which ``fill_detail`` stores in place of the summary.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from iinode.monitoring._event_queries import GROUPS, EventQueries, NodeStatus
from iinode.monitoring.errors import ReportReplayed
from iinode.monitoring.events import Event
from iinode.monitoring.outbox import Outbox
from iinode.monitoring.sqlite import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    origin TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity INTEGER NOT NULL,
    observed_at REAL NOT NULL,
    received_at REAL NOT NULL,
    province TEXT NOT NULL,
    industry TEXT NOT NULL,
    asset TEXT,
    asset_kind TEXT NOT NULL,
    via TEXT NOT NULL,
    detail TEXT,
    detail_at TEXT,
    PRIMARY KEY (origin, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_observed ON events (observed_at);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    child TEXT NOT NULL,
    received_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS detail_requests (
    origin TEXT NOT NULL,
    id TEXT NOT NULL,
    holder TEXT NOT NULL,
    requested_at REAL NOT NULL,
    PRIMARY KEY (origin, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (
    origin TEXT PRIMARY KEY,
    via TEXT NOT NULL,
    province TEXT NOT NULL DEFAULT '',
    industry TEXT NOT NULL DEFAULT '',
    last_seen REAL NOT NULL,
    last_observed REAL NOT NULL,
    clock_skew REAL
) WITHOUT ROWID;
"""

_INSERT_EVENT = "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
#: Event keys looked up per statement (two bound parameters each).
_PROBE_CHUNK = 400


@dataclass(frozen=True, slots=True)
class _Batch:
    """What ``EventStore.insert`` stores about a batch besides its events."""

    via: str
    batch_id: str
    received_at: float
    clock_skew: float | None
    sent_at: float | None


class EventStore(EventQueries):
    """Events received from children, with the queries behind the per-level views
    (``EventQueries``, ``monitoring._event_queries``)."""

    def __init__(self, path: Path | str | SqliteFile = ":memory:") -> None:
        """``path``: a file (``":memory:"`` for tests) or an open ``SqliteFile`` to share."""
        if isinstance(path, SqliteFile):
            self.db = path
            with self.db.transaction() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
        else:
            self.db = SqliteFile(path, schema=_SCHEMA)
        self.path = self.db.path
        #: The lock of every use of the connection (the ``SqliteFile``'s).
        self._lock = self.db.lock

    def close(self) -> None:
        self.db.close()

    # -- writes ---------------------------------------------------------------------------

    def seen_batch(self, batch_id: str) -> bool:
        return self.db.row("SELECT 1 FROM batches WHERE batch_id = ?", (batch_id,)) is not None

    def new_events(self, events: Sequence[Event]) -> list[Event]:
        """The events whose key is not stored yet (first occurrence within ``events``)."""
        if not events:
            return []
        keys = list(dict.fromkeys(e.key for e in events))
        known: set[tuple[str, str]] = set()
        with self._lock:  # no transaction of this connection between the chunks
            for at in range(0, len(keys), _PROBE_CHUNK):
                chunk = keys[at : at + _PROBE_CHUNK]
                pairs = ", ".join(["(?, ?)"] * len(chunk))
                rows = self.db.rows(
                    f"SELECT origin, id FROM events WHERE (origin, id) IN (VALUES {pairs})",
                    [part for key in chunk for part in key],
                )
                known.update((str(o), str(i)) for o, i in rows)
        out: list[Event] = []
        for e in events:
            if e.key not in known:
                known.add(e.key)
                out.append(e)
        return out

    def insert(
        self,
        events: Sequence[Event],
        *,
        via: str,
        batch_id: str,
        received_at: float,
        clock_skew: float | None = None,
        sent_at: float | None = None,
        forward: Outbox | None = None,
        upward: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int]:
        """Store a batch atomically; returns ``(accepted, duplicates)``.

        With ``forward``, ``upward[i]`` (an outbox ``(key, body)``) is enqueued
        for every event ``events[i]`` that is new here.  If the outbox lives in
        this store's file, the events, the outbox rows and the batch id commit
        in one transaction (one fsync); otherwise the outbox is written first,
        so a crash in between re-forwards rather than loses.  ``OutboxFull``
        leaves both unchanged.  A batch id stored before raises ``ReportReplayed``
        (checked under the lock and again inside the transaction).
        """
        batch = _Batch(via, batch_id, received_at, clock_skew, sent_at)
        with self._lock:
            if self.seen_batch(batch_id):
                raise ReportReplayed(f"batch {batch_id} was already received")
            return self._insert_locked(events, batch, forward, upward)

    def _insert_locked(
        self,
        events: Sequence[Event],
        batch: _Batch,
        forward: Outbox | None,
        upward: Sequence[tuple[str, bytes]],
    ) -> tuple[int, int]:
        if forward is not None and (forward.path is None or forward.path != self.path):
            fresh = {e.key for e in self.new_events(events)}
            seen: set[tuple[str, str]] = set()
            first: list[tuple[str, bytes]] = []
            for e, item in zip(events, upward, strict=True):
                if e.key in fresh and e.key not in seen:
                    seen.add(e.key)
                    first.append(item)
            forward.enqueue_raw(first)
            forward = None
        rows = [_row(e, batch.received_at, batch.via) for e in events]
        latest: dict[str, list[Any]] = {}
        for e in events:
            entry = latest.setdefault(e.origin.text, [e.observed_at, "", ""])
            entry[0] = max(entry[0], e.observed_at)
            if e.province or e.industry:
                entry[1], entry[2] = e.province, e.industry
        added = size = 0
        items: Sequence[tuple[str, bytes]] = ()
        # The outbox's counts change with its rows: its lock (maybe this one) is held too.
        with self.db.lock, forward.db.lock if forward is not None else self.db.lock:
            with self.db.transaction() as db:
                accepted, added, size, items = self._insert_rows(
                    db, rows, latest, batch, forward, upward
                )
            if forward is not None:
                forward.added(len(items), added, size)
        return accepted, len(rows) - accepted

    def _insert_rows(
        self,
        db: sqlite3.Connection,
        rows: list[tuple[Any, ...]],
        latest: dict[str, list[Any]],
        batch: _Batch,
        forward: Outbox | None,
        upward: Sequence[tuple[str, bytes]],
    ) -> tuple[int, int, int, Sequence[tuple[str, bytes]]]:
        """The statements of ``_insert_locked``, inside its transaction."""
        added = size = 0
        items: Sequence[tuple[str, bytes]] = ()
        received_at, sent_at = batch.received_at, batch.sent_at
        kept_from = received_at if sent_at is None else max(received_at, sent_at)
        try:
            db.execute(
                "INSERT INTO batches VALUES (?, ?, ?)", (batch.batch_id, batch.via, kept_from)
            )
        except sqlite3.IntegrityError:  # stored by another connection to the file
            raise ReportReplayed(f"batch {batch.batch_id} was already received") from None
        if forward is None:
            accepted = db.executemany(_INSERT_EVENT, rows).rowcount
        else:
            accepted, items = self._insert_forwarding(db, rows, upward)
            size = sum(len(body) for _, body in items)
            forward.reserve(len(items), size)
            cur = db.executemany("INSERT OR IGNORE INTO outbox (key, body) VALUES (?, ?)", items)
            added = cur.rowcount
        db.executemany(
            "INSERT INTO nodes (origin, via, province, industry, last_seen, last_observed,"
            " clock_skew) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET"
            " via = excluded.via, last_seen = excluded.last_seen,"
            " last_observed = MAX(last_observed, excluded.last_observed),"
            " province = CASE WHEN excluded.province != '' THEN excluded.province"
            " ELSE province END,"
            " industry = CASE WHEN excluded.industry != '' THEN excluded.industry"
            " ELSE industry END,"
            " clock_skew = excluded.clock_skew",
            [
                (origin, batch.via, prov, ind, received_at, observed, batch.clock_skew)
                for origin, (observed, prov, ind) in latest.items()
            ],
        )
        return accepted, added, size, items

    @staticmethod
    def _insert_forwarding(
        db: sqlite3.Connection, rows: list[tuple[Any, ...]], upward: Sequence[tuple[str, bytes]]
    ) -> tuple[int, Sequence[tuple[str, bytes]]]:
        """Insert event rows (inside the caller's transaction); the upward items of new ones."""
        if len(upward) != len(rows):
            raise ValueError("one upward item per event is needed")
        db.execute("SAVEPOINT bulk")
        accepted = db.executemany(_INSERT_EVENT, rows).rowcount
        if accepted == len(rows):  # the usual case: nothing seen before
            db.execute("RELEASE bulk")
            return accepted, upward
        db.execute("ROLLBACK TO bulk")
        db.execute("RELEASE bulk")
        items = []
        for row, item in zip(rows, upward, strict=True):
            if db.execute(_INSERT_EVENT, row).rowcount:
                items.append(item)
        return len(items), items

    def record_own(self, events: Sequence[Event], *, node: str, received_at: float) -> int:
        """Store this node's own events (a node without a parent); returns how many were new.

        They are held here in full (``via`` is the node itself), count in this
        node's views, and change no reporting-node status.
        """
        if not events:
            return 0
        with self.db.transaction() as db:
            return int(
                db.executemany(_INSERT_EVENT, [_row(e, received_at, node) for e in events]).rowcount
            )

    # -- details on demand ----------------------------------------------------------------

    def holder(self, origin: str, event_id: str) -> tuple[bool, str] | None:
        """``(has_detail, via)`` of a stored event (``via``: the child it came from)."""
        rows = self._all(
            "SELECT detail IS NOT NULL, via FROM events WHERE origin = ? AND id = ?",
            (origin, event_id),
        )
        return None if not rows else (bool(rows[0][0]), str(rows[0][1]))

    def request_detail(self, origin: str, event_id: str, holder: str, at: float) -> None:
        """Ask ``holder`` (a child) for the detail of a summary stored here."""
        self.db.run(
            "INSERT OR IGNORE INTO detail_requests VALUES (?, ?, ?, ?)",
            (origin, event_id, holder, at),
        )

    def detail_requests(self, holder: str, limit: int = 100) -> list[tuple[str, str]]:
        """Keys of the details this node waits for from ``holder``, oldest first."""
        rows = self._all(
            "SELECT origin, id FROM detail_requests WHERE holder = ? ORDER BY requested_at LIMIT ?",
            (holder, limit),
        )
        return [(str(o), str(i)) for o, i in rows]

    def fill_detail(self, event: Event, holder: str) -> bool:
        """Store the detail ``holder`` sent for a requested summary; False if not asked for.

        The event must be the one summarised (same kind, severity and time).
        """
        if event.detail is None:
            return False
        origin, event_id = event.key
        with self.db.transaction() as db:
            asked = db.execute(
                "SELECT 1 FROM detail_requests WHERE origin = ? AND id = ? AND holder = ?",
                (origin, event_id, holder),
            ).fetchone()
            cur = db.execute(
                "UPDATE events SET detail = ?, detail_at = NULL WHERE origin = ? AND id = ?"
                " AND detail IS NULL AND via = ? AND kind = ? AND severity = ?"
                " AND observed_at = ?",
                (
                    orjson.dumps(event.detail).decode(), origin, event_id, holder,
                    event.kind.value, int(event.severity), event.observed_at,
                ),
            ) if asked else None  # fmt: skip
            filled = cur is not None and cur.rowcount == 1
            if filled:
                db.execute(
                    "DELETE FROM detail_requests WHERE origin = ? AND id = ?",
                    (origin, event_id),
                )
        return filled

    def prune_batches(self, older_than: float) -> int:
        """Forget batch ids kept from before ``older_than``; returns how many."""
        return self.db.run("DELETE FROM batches WHERE received_at < ?", (older_than,))

    def prune_detail_requests(self, older_than: float) -> int:
        """Drop detail requests no child answered since ``older_than``."""
        return self.db.run("DELETE FROM detail_requests WHERE requested_at < ?", (older_than,))

    def batch_count(self) -> int:
        return int(self._all("SELECT COUNT(*) FROM batches")[0][0])

    # -- reads ----------------------------------------------------------------------------


def _row(e: Event, received_at: float, via: str) -> tuple[Any, ...]:
    """The ``events`` table row of ``e``."""
    return (
        e.origin.text,
        e.id,
        e.kind.value,
        int(e.severity),
        e.observed_at,
        received_at,
        e.province,
        e.industry,
        None if e.asset is None else str(e.asset),
        e.asset_kind,
        via,
        None if e.detail is None else orjson.dumps(e.detail).decode(),
        None if e.detail_at is None else e.detail_at.text,
    )


__all__ = ["GROUPS", "EventStore", "NodeStatus"]
