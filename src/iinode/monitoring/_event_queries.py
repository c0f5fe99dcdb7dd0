"""Queries over the monitoring event store: the reads behind the per-level views.

``EventQueries`` is the read side of ``EventStore`` (``monitoring.store``, which
writes): single events, the latest ones, counts grouped by one column, counts
per time bucket, the reporting nodes' status and notice states.  Every
statement runs under the ``SqliteFile``'s lock, never inside another thread's
transaction; a query of several statements holds the lock for a consistent view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from iinode.monitoring.events import Event, EventKind, Severity
from iinode.monitoring.sqlite import SqliteFile

#: Columns an aggregate may be grouped by.
GROUPS = ("province", "industry", "severity", "kind", "asset_kind", "origin")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    origin: str
    via: str
    province: str
    industry: str
    last_seen: float
    last_observed: float
    clock_skew: float | None
    stale: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "via": self.via,
            "province": self.province,
            "industry": self.industry,
            "last_seen": self.last_seen,
            "last_observed": self.last_observed,
            "clock_skew": self.clock_skew,
            "stale": self.stale,
        }


class EventQueries:
    """The reads of the ``events`` and ``nodes`` tables of one ``SqliteFile``."""

    #: The file, set by the store that writes it.
    db: SqliteFile

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Rows of one statement, run under the lock (never inside another's transaction)."""
        return self.db.rows(sql, args)

    def count(self) -> int:
        return int(self._all("SELECT COUNT(*) FROM events")[0][0])

    def keys(self) -> set[tuple[str, str]]:
        return {(str(o), str(i)) for o, i in self._all("SELECT origin, id FROM events")}

    def get(self, origin: str, event_id: str) -> Event | None:
        rows = self._all(
            "SELECT origin, id, kind, severity, observed_at, province, industry, asset,"
            " asset_kind, detail, detail_at FROM events WHERE origin = ? AND id = ?",
            (origin, event_id),
        )
        if not rows:
            return None
        row = rows[0]
        return Event.from_json(
            {
                k: v
                for k, v in zip(
                    (
                        "id",
                        "origin",
                        "kind",
                        "severity",
                        "observed_at",
                        "province",
                        "industry",
                        "asset",
                        "asset_kind",
                        "detail",
                        "detail_at",
                    ),
                    (
                        row[1],
                        row[0],
                        row[2],
                        Severity(row[3]).label,
                        row[4],
                        row[5],
                        row[6],
                        row[7],
                        row[8],
                        None if row[9] is None else orjson.loads(row[9]),
                        row[10],
                    ),
                    strict=True,
                )
                if v is not None
            }
        )

    def recent(
        self, limit: int = 50, *, kind: EventKind | None = None, origin: str | None = None
    ) -> list[Event]:
        """The latest events by ``observed_at`` (as stored: summaries stay summaries)."""
        where, args = _filters(None, None, kind)
        if origin is not None:
            where += (" AND" if where else " WHERE") + " origin = ?"
            args = (*args, origin)
        with self.db.lock:  # one consistent snapshot of the listed events
            rows = self._all(
                f"SELECT origin, id FROM events{where} ORDER BY observed_at DESC LIMIT ?",
                (*args, limit),
            )
            return [e for o, i in rows if (e := self.get(o, i)) is not None]

    def counts(
        self,
        by: str,
        *,
        since: float | None = None,
        until: float | None = None,
        kind: EventKind | None = None,
    ) -> dict[str, int]:
        """Event counts grouped by one of ``GROUPS``, over ``observed_at`` in [since, until)."""
        if by not in GROUPS:
            raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPS)}")
        where, args = _filters(since, until, kind)
        rows = self._all(f"SELECT {by}, COUNT(*) FROM events{where} GROUP BY {by}", args)
        if by == "severity":
            return {Severity(k).label: int(n) for k, n in rows}
        return {str(k): int(n) for k, n in rows}

    def trend(
        self, bucket: float, *, since: float | None = None, kind: EventKind | None = None
    ) -> list[tuple[float, int]]:
        """Counts per ``bucket`` seconds of ``observed_at``, oldest first."""
        if bucket <= 0:
            raise ValueError("bucket must be positive")
        where, args = _filters(since, None, kind)
        rows = self._all(
            f"SELECT CAST(observed_at / ? AS INTEGER) AS b, COUNT(*) FROM events{where}"
            " GROUP BY b ORDER BY b",
            (bucket, *args),
        )
        return [(b * bucket, int(n)) for b, n in rows]

    def nodes(self, *, now: float, stale_after: float) -> list[NodeStatus]:
        rows = self._all(
            "SELECT origin, via, province, industry, last_seen, last_observed, clock_skew"
            " FROM nodes ORDER BY origin"
        )
        return [
            NodeStatus(o, v, p, i, ls, lo, sk, now - ls > stale_after)
            for o, v, p, i, ls, lo, sk in rows
        ]

    def notice_states(self, notice_id: str) -> dict[str, tuple[str, float, list[str]]]:
        """Latest notice status per origin: ``{origin: (state, observed_at, assets)}``."""
        rows = self._all(
            "SELECT origin, detail, observed_at FROM events WHERE kind = ?"
            " AND json_extract(detail, '$.notice') = ? ORDER BY observed_at",
            (EventKind.NOTICE_STATUS.value, notice_id),
        )
        out: dict[str, tuple[str, float, list[str]]] = {}
        for origin, detail, observed in rows:
            body = orjson.loads(detail)
            out[origin] = (str(body.get("state")), float(observed), list(body.get("assets", [])))
        return out


def _filters(
    since: float | None, until: float | None, kind: EventKind | None
) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    args: list[Any] = []
    if since is not None:
        clauses.append("observed_at >= ?")
        args.append(since)
    if until is not None:
        clauses.append("observed_at < ?")
        args.append(until)
    if kind is not None:
        clauses.append("kind = ?")
        args.append(kind.value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


__all__ = ["GROUPS", "EventQueries", "NodeStatus"]
