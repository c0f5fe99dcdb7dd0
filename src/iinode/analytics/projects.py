"""Product development projects: identifiers with recorded milestone events (SQLite).

A project is an identifier (a handle such as ``88.118.8/PRJ-7``, or any short
name) with events ``project_start``, ``design_freeze``, ``first_prototype`` and
``first_good_lot``, each at a time.  The development cycle of a project is the
time from its first ``project_start`` to its first ``first_good_lot`` after it
(:func:`iinode.kpi.development_cycles`); the KPI API feeds the recorded events
to the *product development cycle* metric.  Stored in ``projects.sqlite3`` in
the node's data dir.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

from iinode.errors import ValueInvalid
from iinode.kpi import DevelopmentEvent, DevelopmentEventKind, development_cycles
from iinode.kpi.periods import iso
from iinode.storage.wal import switch_to_wal

_PROJECT = re.compile(r"[A-Za-z0-9._:/\-]{1,128}\Z")


def project_id(text: object) -> str:
    if not isinstance(text, str) or not _PROJECT.match(text):
        raise ValueInvalid("a project identifier is 1-128 of [A-Za-z0-9._:/-]")
    return text


def event_kind(text: object) -> DevelopmentEventKind:
    try:
        return DevelopmentEventKind(str(text))
    except ValueError:
        kinds = ", ".join(k.value for k in DevelopmentEventKind)
        raise ValueInvalid(f"an event kind is one of {kinds}") from None


class ProjectStore:
    """Development events in one SQLite file (thread-safe)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        switch_to_wal(self._db, 5.0)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (project TEXT NOT NULL, kind TEXT NOT NULL, "
            "time_us INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '', "
            "PRIMARY KEY (project, kind, time_us))"
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def add(self, project: str, kind: DevelopmentEventKind | str, time_us: int,
            note: str = "") -> DevelopmentEvent:  # fmt: skip
        """Record one event (the same event twice is stored once)."""
        event = DevelopmentEvent(project_id(project), event_kind(kind), int(time_us))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO events (project, kind, time_us, note) VALUES (?, ?, ?, ?)",
                (event.project, event.kind.value, event.time_us, note[:500]),
            )
        return event

    def remove(self, project: str, kind: str, time_us: int) -> bool:
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM events WHERE project = ? AND kind = ? AND time_us = ?",
                (project, kind, time_us),
            )
        return cur.rowcount > 0

    def events(self, project: str | None = None) -> list[DevelopmentEvent]:
        sql = "SELECT project, kind, time_us FROM events"
        params: tuple[Any, ...] = ()
        if project is not None:
            sql += " WHERE project = ?"
            params = (project,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY project, time_us, kind", params).fetchall()
        return [DevelopmentEvent(p, DevelopmentEventKind(k), t) for p, k, t in rows]

    def summary(self, project: str | None = None) -> list[dict[str, Any]]:
        """Each project with its events and its development cycle (seconds, or ``None``)."""
        events = self.events(project)
        cycles = development_cycles(events)
        out: dict[str, dict[str, Any]] = {}
        for e in events:
            p = out.setdefault(e.project, {"project": e.project, "events": []})
            p["events"].append({"kind": e.kind.value, "time": iso(e.time_us)})
        for name, p in out.items():
            cycle = cycles.get(name)
            p["development_cycle_s"] = None if cycle is None else cycle[1] / 1e6
            p["first_good_lot"] = None if cycle is None else iso(cycle[0])
        return list(out.values())


__all__ = ["ProjectStore", "event_kind", "project_id"]
