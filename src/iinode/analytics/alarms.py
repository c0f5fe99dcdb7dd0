"""Alarms: threshold and rate-of-change rules on tags and KPIs, alarm states and history.

A :class:`Rule` watches one value of the equipment it names (an equipment
handle, or an enterprise prefix for all its equipment): a tag's readings
(``source="tag"``), a KPI of the current shift (``source="kpi"``, a field of
:class:`~iinode.kpi.Kpis` such as ``oee``), or a model's output
(``source="model"``, e.g. the failure probability of
:mod:`iinode.analytics.maintenance`).  Kinds:

* ``high``: the condition holds when the value is above ``limit`` and ends when
  it is at or below ``limit - deadband``;
* ``low``: below ``limit``, ends at or above ``limit + deadband``;
* ``rate``: the change per second between consecutive readings, in absolute
  value, above ``limit``; ends at or below ``limit - deadband``.

The deadband is the hysteresis that keeps a value hovering at the limit from
raising an alarm at every reading.  An alarm's states: ``active`` (raised, not
acknowledged), ``acknowledged`` (someone took it; still in alarm), ``cleared``
(the condition ended; an unacknowledged alarm that cleared stays visible in the
list as ``cleared`` until acknowledged, as ISA-18.2 has it).  Every transition
is a row of the history (SQLite, ``alarms.sqlite3`` in the node's data dir)
and is handed to ``notify`` (the node raises a monitoring event of the
operational ``health`` kind for it).
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iinode.errors import ValueInvalid
from iinode.kpi import Kpis
from iinode.storage.wal import switch_to_wal
from iinode.telemetry.model import Reading

log = logging.getLogger(__name__)

_RULE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}\Z")
SEVERITIES = ("info", "low", "medium", "high", "critical")


class RuleKind(enum.StrEnum):
    HIGH = "high"
    LOW = "low"
    RATE = "rate"


class RuleSource(enum.StrEnum):
    TAG = "tag"
    KPI = "kpi"
    MODEL = "model"


class AlarmState(enum.StrEnum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class Rule:
    """One alarm rule; validates on construction."""

    id: str
    equipment: str  # an equipment handle, or a prefix (all equipment under it)
    source: RuleSource
    name: str  # the tag, the KPI field or the model output
    kind: RuleKind
    limit: float
    deadband: float = 0.0
    severity: str = "medium"
    message: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _RULE_ID.match(self.id):
            raise ValueInvalid(f"rule id {self.id!r} must be 1-64 of [A-Za-z0-9._:-]")
        if not isinstance(self.equipment, str) or not self.equipment:
            raise ValueInvalid("a rule names an equipment handle or a prefix")
        if not isinstance(self.name, str) or not self.name:
            raise ValueInvalid("a rule names the tag, KPI or model output it watches")
        try:
            object.__setattr__(self, "source", RuleSource(self.source))
            object.__setattr__(self, "kind", RuleKind(self.kind))
        except ValueError as exc:
            raise ValueInvalid(str(exc)) from None
        for attr in ("limit", "deadband"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueInvalid(f"{attr} must be a number")
            if not math.isfinite(value):
                raise ValueInvalid(f"{attr} must be finite")
        if self.deadband < 0:
            raise ValueInvalid("deadband must not be negative")
        if self.source is RuleSource.KPI and self.name not in Kpis.__dataclass_fields__:
            raise ValueInvalid(f"unknown KPI {self.name!r}")
        if not isinstance(self.message, str) or len(self.message) > 500:
            raise ValueInvalid("message is text of at most 500 characters")
        if self.severity not in SEVERITIES:
            raise ValueInvalid(f"severity is one of {', '.join(SEVERITIES)}")

    def covers(self, equipment: str) -> bool:
        return equipment == self.equipment or equipment.startswith(self.equipment + "/")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Rule:
        if not isinstance(data, dict):
            raise ValueInvalid("a rule is a JSON object")
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ValueInvalid(f"unknown rule fields: {', '.join(sorted(extra))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueInvalid(f"rule: {exc}") from None

    def entered(self, value: float) -> bool:
        """Whether ``value`` (a rate for ``rate`` rules) starts the condition."""
        if self.kind is RuleKind.LOW:
            return value < self.limit
        return (abs(value) if self.kind is RuleKind.RATE else value) > self.limit

    def left(self, value: float) -> bool:
        """Whether ``value`` ends the condition (past the deadband)."""
        if self.kind is RuleKind.LOW:
            return value >= self.limit + self.deadband
        return (abs(value) if self.kind is RuleKind.RATE else value) <= self.limit - self.deadband


@dataclass(slots=True)
class Alarm:
    id: str
    rule: str
    equipment: str
    state: AlarmState
    severity: str
    raised_us: int
    value: float
    message: str = ""
    acknowledged_by: str | None = None
    acknowledged_us: int | None = None
    cleared_us: int | None = None
    in_alarm: bool = True

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out


@dataclass(frozen=True, slots=True)
class Transition:
    """One history row: an alarm raised, acknowledged or cleared."""

    alarm: Alarm
    event: str  # raised, acknowledged, cleared
    time_us: int
    value: float | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alarms (
    id TEXT PRIMARY KEY, rule TEXT NOT NULL, equipment TEXT NOT NULL, body TEXT NOT NULL,
    open INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alarms_open ON alarms (open);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alarm TEXT NOT NULL, rule TEXT NOT NULL,
    equipment TEXT NOT NULL, event TEXT NOT NULL, time_us INTEGER NOT NULL, value REAL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_equipment ON history (equipment, time_us);
"""


class AlarmStore:
    """Rules, open alarms and the history in one SQLite file (thread-safe)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        switch_to_wal(self._db, 5.0)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        # Under the lock: closing while another thread is inside a statement crashes SQLite.
        with self._lock:
            self._db.close()

    def rules(self) -> list[Rule]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM rules ORDER BY id").fetchall()
        return [Rule.from_json(json.loads(body)) for (body,) in rows]

    def put_rule(self, rule: Rule) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO rules (id, body) VALUES (?, ?)",
                (rule.id, json.dumps(rule.to_json())),
            )

    def delete_rule(self, rule_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM rules WHERE id = ?", (rule_id,)).rowcount > 0

    def open_alarms(self) -> list[Alarm]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM alarms WHERE open = 1 ORDER BY id").fetchall()
        return [_alarm(body) for (body,) in rows]

    def save(self, alarm: Alarm, transition: Transition | None) -> None:
        """Store an alarm's state (open until cleared and acknowledged) and its transition."""
        is_open = alarm.state is not AlarmState.CLEARED or alarm.acknowledged_us is None
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO alarms (id, rule, equipment, body, open) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (alarm.id, alarm.rule, alarm.equipment, json.dumps(alarm.to_json()),
                     int(is_open)),
                )  # fmt: skip
                if transition is not None:
                    self._db.execute(
                        "INSERT INTO history (alarm, rule, equipment, event, time_us, value, "
                        "detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (alarm.id, alarm.rule, alarm.equipment, transition.event,
                         transition.time_us, transition.value, json.dumps(alarm.to_json())),
                    )  # fmt: skip
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def history(self, equipment: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Transitions, newest first (``equipment``: a handle or a prefix)."""
        sql = "SELECT seq, alarm, rule, equipment, event, time_us, value FROM history"
        params: list[Any] = []
        if equipment:
            sql += " WHERE equipment = ? OR equipment LIKE ? ESCAPE '\\'"
            like = equipment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params += [equipment, like + "/%"]
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        keys = ("seq", "alarm", "rule", "equipment", "event", "time_us", "value")
        return [dict(zip(keys, row, strict=True)) for row in rows]


def _alarm(body: str) -> Alarm:
    data = json.loads(body)
    data["state"] = AlarmState(data["state"])
    return Alarm(**data)


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class _Watch:
    last: tuple[int, float] | None = None  # for rate rules: the previous reading


@dataclass(slots=True)
class AlarmEngine:
    """Evaluates the rules on readings and KPIs; keeps alarm states; tells ``notify``."""

    store: AlarmStore
    notify: Callable[[Transition], None] | None = None
    clock: Callable[[], int] = _now_us
    #: The current shift's KPIs of a machine (for ``kpi`` rules), e.g. from the live stream.
    kpis: Callable[[str, int], Kpis | None] | None = None
    #: KPI rules are evaluated at most this often (of reading time) per machine.
    kpi_every_us: int = 60_000_000
    _rules: list[Rule] = field(default_factory=list)
    _open: dict[tuple[str, str], Alarm] = field(default_factory=dict)
    _watch: dict[tuple[str, str], _Watch] = field(default_factory=dict)
    _kpi_checked: dict[str, int] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        with self._lock:
            self._rules = self.store.rules()
            self._open = {(a.rule, a.equipment): a for a in self.store.open_alarms() if a.in_alarm}

    # -- rules -----------------------------------------------------------------------

    def rules(self) -> list[Rule]:
        return list(self._rules)

    def put_rule(self, rule: Rule) -> None:
        self.store.put_rule(rule)
        with self._lock:
            self._watch = {k: w for k, w in self._watch.items() if k[0] != rule.id}
            self._rules = self.store.rules()

    def delete_rule(self, rule_id: str) -> bool:
        gone = self.store.delete_rule(rule_id)
        with self._lock:
            self._rules = self.store.rules()
        return gone

    # -- evaluation --------------------------------------------------------------------

    def observe(self, readings: Iterable[Reading]) -> None:
        """Evaluate ``tag`` rules on stored readings (an ingest observer), then the ``kpi``
        rules of the machines seen (at most every ``kpi_every_us``)."""
        tag_rules = [r for r in self._rules if r.source is RuleSource.TAG]
        kpi_rules = [r for r in self._rules if r.source is RuleSource.KPI]
        if not tag_rules and not kpi_rules:
            return
        newest: dict[str, int] = {}
        for reading in readings:
            if kpi_rules and reading.time_us > newest.get(reading.equipment, -1):
                newest[reading.equipment] = reading.time_us
            value = reading.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not reading.quality.is_good:
                continue
            for rule in tag_rules:
                if rule.name == reading.tag and rule.covers(reading.equipment):
                    self.evaluate(rule, reading.equipment, reading.time_us, float(value))
        if kpi_rules and self.kpis is not None:
            for equipment, t in newest.items():
                last = self._kpi_checked.get(equipment)
                if last is not None and t - last < self.kpi_every_us:
                    continue
                self._kpi_checked[equipment] = t
                self.check_kpis(equipment, t)

    def check_kpis(self, equipment: str, time_us: int) -> None:
        """Evaluate the ``kpi`` rules covering ``equipment`` on its current KPIs."""
        if self.kpis is None:
            return
        rules = [r for r in self._rules if r.source is RuleSource.KPI and r.covers(equipment)]
        if not rules:
            return
        kpis = self.kpis(equipment, time_us)
        if kpis is None:
            return
        for rule in rules:
            value = getattr(kpis, rule.name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.evaluate(rule, equipment, time_us, float(value))

    def evaluate(self, rule: Rule, equipment: str, time_us: int, value: float) -> None:
        """One value of what ``rule`` watches."""
        with self._lock:
            measured = value
            if rule.kind is RuleKind.RATE:
                watch = self._watch.setdefault((rule.id, equipment), _Watch())
                last, watch.last = watch.last, (time_us, value)
                if last is None or time_us <= last[0]:
                    return
                measured = (value - last[1]) / ((time_us - last[0]) / 1e6)
            key = (rule.id, equipment)
            alarm = self._open.get(key)
            if alarm is None:
                if rule.entered(measured):
                    self._raise(rule, equipment, time_us, measured)
            elif rule.left(measured):
                self._clear(alarm, time_us, measured)

    def _raise(self, rule: Rule, equipment: str, time_us: int, value: float) -> None:
        alarm = Alarm(
            f"{rule.id}-{time_us}-{uuid.uuid4().hex[:8]}", rule.id, equipment, AlarmState.ACTIVE,
            rule.severity, time_us, value,
            rule.message or f"{rule.name} {rule.kind.value} {rule.limit:g} ({value:g})",
        )  # fmt: skip
        self._open[(rule.id, equipment)] = alarm
        self._record(alarm, "raised", time_us, value)

    def refresh_rules(self) -> None:
        """Re-read the rules (another process of the node may have changed them)."""
        rules = self.store.rules()
        with self._lock:
            self._rules = rules

    def _clear(self, alarm: Alarm, time_us: int, value: float) -> None:
        stored = next((a for a in self.store.open_alarms() if a.id == alarm.id), None)
        if stored is not None and alarm.acknowledged_us is None:  # acknowledged elsewhere
            alarm.acknowledged_by, alarm.acknowledged_us = (
                stored.acknowledged_by, stored.acknowledged_us)  # fmt: skip
        alarm.in_alarm = False
        alarm.state = AlarmState.CLEARED
        alarm.cleared_us = time_us
        del self._open[(alarm.rule, alarm.equipment)]
        self._record(alarm, "cleared", time_us, value)

    def acknowledge(self, alarm_id: str, by: str) -> Alarm | None:
        """Acknowledge an open alarm; ``None`` if there is no such open alarm."""
        with self._lock:
            found = [a for a in self._open.values() if a.id == alarm_id]
            found = found or [a for a in self.store.open_alarms() if a.id == alarm_id]
            if not found:
                return None
            alarm = found[0]
            if alarm.acknowledged_us is not None:
                return alarm
            now = self.clock()
            alarm.acknowledged_by, alarm.acknowledged_us = by, now
            if alarm.in_alarm:
                alarm.state = AlarmState.ACKNOWLEDGED
            self._record(alarm, "acknowledged", now, None)
            return alarm

    def _record(self, alarm: Alarm, event: str, time_us: int, value: float | None) -> None:
        transition = Transition(Alarm(**asdict(alarm)), event, time_us, value)
        self.store.save(alarm, transition)
        if self.notify is not None:
            try:
                self.notify(transition)
            except Exception:  # a notification must never stop alarm handling
                log.exception("alarm notification failed")

    def alarms(self) -> list[Alarm]:
        """Open alarms: in alarm, or cleared but not yet acknowledged."""
        with self._lock:
            return sorted(self.store.open_alarms(), key=lambda a: (a.raised_us, a.id))


__all__ = [
    "SEVERITIES",
    "Alarm",
    "AlarmEngine",
    "AlarmState",
    "AlarmStore",
    "Rule",
    "RuleKind",
    "RuleSource",
    "Transition",
]
