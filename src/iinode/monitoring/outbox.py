"""A durable, bounded outbox of events waiting to go upstream.

SQLite in WAL mode with ``synchronous=FULL``: once ``enqueue`` returns, the
events survive a crash or ``kill -9`` of the process.  Each event is stored under
its key ``origin|id``; enqueueing the same event twice keeps one copy.  The
reader (``ReportSender``) peeks the oldest items, sends them, and only then
``ack``-s them, so delivery is at-least-once.

Disk use is bounded by ``max_events`` and ``max_bytes`` (payload bytes).  An
enqueue that would exceed either bound raises ``OutboxFull``, writes nothing and
raises the ``alarm`` flag; nothing already queued is ever dropped.  The alarm
clears once the backlog falls below ``resume_ratio`` of both bounds.

Events the parent refuses as malformed (the sender isolates them by bisection)
are moved, in one transaction, to the ``dead_letters`` table of the same file
with the parent's message (``dead_letter``); they no longer block the queue,
stay inspectable (``dead_letters``) and can be queued again (``requeue_dead``,
all of them or some by key), through ``/monitoring/dead-letters`` and
``iinode monitor dead-letters``.

All access goes through one ``SqliteFile`` (lock, transactions, errors as
``StorageError``): the sender acks from the event loop while reports are
stored and forwarded in worker threads.  The pending counts change under the
same lock as the rows they count.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from iinode.monitoring.errors import OutboxFull
from iinode.monitoring.events import Event
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.sqlite import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    key TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    path: Path | str
    max_events: int = 1_000_000
    max_bytes: int = 512 * 1024 * 1024
    resume_ratio: float = 0.9

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_bytes < 1:
            raise ValueError("outbox bounds must be positive")
        if not 0 < self.resume_ratio <= 1:
            raise ValueError("resume_ratio must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    key: str
    body: bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event the parent refused, with the parent's message."""

    key: str
    body: bytes
    reason: str
    at: float


class Outbox:
    """Durable FIFO of encoded events (see the module docstring)."""

    def __init__(
        self,
        settings: OutboxSettings,
        metrics: NodeMetrics | None = None,
        *,
        db: SqliteFile | None = None,
    ) -> None:
        """``db``: an open ``SqliteFile`` of ``settings.path`` to share (the event store's)."""
        self.settings = settings
        self._metrics = metrics
        if db is None:
            db = SqliteFile(settings.path, schema=_SCHEMA, pragmas=("journal_size_limit=67108864",))
            self._own_db = True
        else:
            with db.transaction() as conn:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            self._own_db = False
        self.db = db
        self.path = db.path
        self._pending = 0
        self._pending_bytes = 0
        self._recount()
        self.alarm = False
        if metrics is not None:
            metrics.add_callback(
                "iinode_monitoring_outbox_pending",
                "Events waiting in the outbox.",
                lambda: self._pending,
            )
            metrics.add_callback(
                "iinode_monitoring_outbox_pending_bytes",
                "Payload bytes waiting in the outbox.",
                lambda: self._pending_bytes,
            )
            metrics.add_callback(
                "iinode_monitoring_outbox_alarm",
                "1 while the outbox is full.",
                lambda: 1.0 if self.alarm else 0.0,
            )
            metrics.add_callback(
                "iinode_monitoring_dead_letters_pending",
                "Events the parent refused, held in the dead-letter table (alarm when > 0).",
                self.dead_count,
            )

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def enqueue(self, events: Iterable[Event]) -> int:
        """Durably add events; returns how many were new.  Raises ``OutboxFull``."""
        return self.enqueue_raw([(f"{e.origin.text}|{e.id}", e.encode()) for e in events])

    def reserve(self, count: int, size: int) -> None:
        """Raise ``OutboxFull`` (and the alarm) unless ``count`` events of ``size`` bytes fit.

        A caller that then writes rows through another connection holds ``db.lock``
        from here until it has called ``added``.
        """
        s = self.settings
        with self.db.lock:
            if self._pending + count > s.max_events or self._pending_bytes + size > s.max_bytes:
                # Another process serving this node may have sent (and acked) events since.
                self._recount()
            if self._pending + count <= s.max_events and self._pending_bytes + size <= s.max_bytes:
                return
            self.alarm = True
            pending, pending_bytes = self._pending, self._pending_bytes
        if self._metrics is not None:
            self._metrics.outbox_full.inc()
        raise OutboxFull(
            f"outbox full: {pending} events / {pending_bytes} bytes pending, "
            f"bounds {s.max_events} events / {s.max_bytes} bytes; "
            f"refusing {count} more",
            pending=pending,
            pending_bytes=pending_bytes,
        )

    def added(self, offered: int, added: int, size: int) -> None:
        """Account for rows another connection to this file committed into the outbox.

        ``offered`` rows of ``size`` bytes were inserted with ``INSERT OR IGNORE``
        and ``added`` of them were new (the event store's one-transaction path).
        """
        with self.db.lock:
            if added == offered:
                self._pending += added
                self._pending_bytes += size
            else:
                self._recount()
        if self._metrics is not None:
            self._metrics.events_enqueued.inc(added)

    def enqueue_raw(self, items: Sequence[tuple[str, bytes]]) -> int:
        """Durably add already-encoded ``(key, body)`` pairs in one transaction."""
        if not items:
            return 0
        size = sum(len(body) for _, body in items)
        with self.db.lock:
            self.reserve(len(items), size)
            with self.db.transaction() as db:
                cur = db.executemany(
                    "INSERT OR IGNORE INTO outbox (key, body) VALUES (?, ?)", items
                )
                added = cur.rowcount
            self.added(len(items), added, size)
        return added

    def peek(self, limit: int) -> list[OutboxItem]:
        """The oldest ``limit`` items, without removing them."""
        rows = self.db.rows("SELECT seq, key, body FROM outbox ORDER BY seq LIMIT ?", (limit,))
        return [OutboxItem(int(seq), key, bytes(body)) for seq, key, body in rows]

    def ack(self, items: Sequence[OutboxItem]) -> None:
        """Remove items that the parent has acknowledged.

        The deletion is committed without its own fsync (``durable=False``:
        ``synchronous=NORMAL`` for this one transaction, under the lock): if power
        fails before the next synced commit, the items come back and are sent
        again, which the parent deduplicates.  A crash of the process alone loses
        nothing either way (WAL).
        """
        if not items:
            return
        s = self.settings
        with self.db.lock:
            with self.db.transaction(durable=False) as db:
                if items[-1].seq - items[0].seq + 1 == len(items):
                    cur = db.execute(
                        "DELETE FROM outbox WHERE seq BETWEEN ? AND ?",
                        (items[0].seq, items[-1].seq),
                    )
                else:
                    cur = db.executemany(
                        "DELETE FROM outbox WHERE seq = ?", [(i.seq,) for i in items]
                    )
                removed = cur.rowcount
            if removed == len(items):
                self._pending -= removed
                self._pending_bytes -= sum(len(i.body) for i in items)
            else:
                self._recount()
            if (
                self.alarm
                and self._pending <= s.max_events * s.resume_ratio
                and self._pending_bytes <= s.max_bytes * s.resume_ratio
            ):
                self.alarm = False

    def dead_letter(self, items: Sequence[OutboxItem], reason: str, at: float) -> None:
        """Move ``items`` from the queue to the dead-letter table, in one transaction."""
        if not items:
            return
        with self.db.lock:
            with self.db.transaction() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO dead_letters (key, body, reason, at)"
                    " VALUES (?, ?, ?, ?)",
                    [(i.key, i.body, reason, at) for i in items],
                )
                db.executemany("DELETE FROM outbox WHERE seq = ?", [(i.seq,) for i in items])
            self._recount()

    def dead_count(self) -> int:
        return int(self.db.row("SELECT COUNT(*) FROM dead_letters")[0])

    def dead_letters(self) -> list[DeadLetter]:
        rows = self.db.rows("SELECT key, body, reason, at FROM dead_letters ORDER BY at, key")
        return [DeadLetter(k, bytes(b), r, float(a)) for k, b, r, a in rows]

    def requeue_dead(self, keys: Collection[str] | None = None) -> int:
        """Queue dead letters again (after the parent was fixed); returns how many were new.

        ``keys`` picks dead letters by key (``origin|id``) or by event id alone;
        ``None`` takes all.  A key that matches no dead letter raises ``KeyError``
        and nothing changes; so does a full outbox (``OutboxFull``).  Moving back
        is one transaction.
        """
        with self.db.lock:
            dead = self.dead_letters()
            if keys is not None:
                dead = self._pick(dead, keys)
            if not dead:
                return 0
            items = [(d.key, d.body) for d in dead]
            size = sum(len(body) for _, body in items)
            self.reserve(len(items), size)
            with self.db.transaction() as db:
                cur = db.executemany(
                    "INSERT OR IGNORE INTO outbox (key, body) VALUES (?, ?)", items
                )
                added = cur.rowcount
                db.executemany("DELETE FROM dead_letters WHERE key = ?", [(d.key,) for d in dead])
            self.added(len(items), added, size)
        return added

    @staticmethod
    def _pick(dead: list[DeadLetter], keys: Collection[str]) -> list[DeadLetter]:
        wanted = set(keys)
        picked = [d for d in dead if d.key in wanted or d.key.partition("|")[2] in wanted]
        found = {d.key for d in picked} | {d.key.partition("|")[2] for d in picked}
        missing = sorted(wanted - found)
        if missing:
            raise KeyError(f"no dead letter {', '.join(missing)}")
        return picked

    def _recount(self) -> None:
        with self.db.lock:
            count, size = self.db.row("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox")
            self._pending, self._pending_bytes = int(count), int(size)

    def close(self) -> None:
        if self._own_db:
            self.db.close()
