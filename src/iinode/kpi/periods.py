"""Shifts, days and weeks in a plant's local time, as UTC microsecond intervals (pure).

A :class:`PeriodGrid` cuts time at every shift start and every local midnight;
the pieces between two cuts (*atoms*) each lie in exactly one shift, one day
and one ISO week, so the elements of a shift, day or week are sums of atoms.
Shift starts are local wall-clock times in the grid's time zone: across a
daylight-saving change a shift is an hour shorter or longer, and its elements
hold what really happened in it (timestamps are UTC, never shifted).  A wall
time that does not exist on the day of the change (the spring gap) is read
with the offset before the change; one that happens twice, at its first
occurrence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iinode.errors import ValueInvalid

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def iso(micros: int) -> str:
    """A UTC instant as ISO 8601 text (issues and labels)."""
    return from_us(micros).isoformat().replace("+00:00", "Z")


class PeriodKind(enum.StrEnum):
    SHIFT = "shift"
    DAY = "day"
    WEEK = "week"


@dataclass(frozen=True, slots=True)
class Period:
    """One shift, day or week: ``[start_us, end_us)`` and a label (``2026-01-05/06:00``,
    ``2026-01-05``, ``2026-W02``)."""

    kind: PeriodKind
    label: str
    start_us: int
    end_us: int


@dataclass(frozen=True, slots=True)
class PeriodGrid:
    """Shift starts (local wall times, sorted) in time zone ``tz``."""

    tz: str = "UTC"
    shift_starts: tuple[time, ...] = (time(6), time(14), time(22))
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "zone", ZoneInfo(self.tz))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueInvalid(f"unknown time zone {self.tz!r}") from exc
        if not self.shift_starts:
            raise ValueInvalid("a period grid needs at least one shift start")
        starts = tuple(sorted(set(self.shift_starts)))
        if any(s.tzinfo is not None for s in starts):
            raise ValueInvalid("shift starts are local wall times, without a time zone")
        object.__setattr__(self, "shift_starts", starts)

    def _wall(self, day: date, wall: time) -> int:
        return to_us(datetime.combine(day, wall, tzinfo=self.zone))

    def _local_day(self, t_us: int) -> date:
        return from_us(t_us).astimezone(self.zone).date()

    def _cuts_around(self, t_us: int) -> list[int]:
        day = self._local_day(t_us)
        out: list[int] = []
        for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
            out.append(self._wall(d, time(0)))
            out.extend(self._wall(d, s) for s in self.shift_starts)
        return sorted(set(out))

    def next_cut(self, t_us: int) -> int:
        """The first cut (shift start or local midnight) after ``t_us``."""
        return min(c for c in self._cuts_around(t_us) if c > t_us)

    def atom_start(self, t_us: int) -> int:
        """The last cut at or before ``t_us``."""
        return max(c for c in self._cuts_around(t_us) if c <= t_us)

    def _shift_starts_around(self, t_us: int) -> list[tuple[int, date, time]]:
        day = self._local_day(t_us)
        return [
            (self._wall(d, s), d, s)
            for d in (day - timedelta(days=1), day, day + timedelta(days=1))
            for s in self.shift_starts
        ]

    def period_of(self, kind: PeriodKind, t_us: int) -> Period:
        """The shift, day or week containing ``t_us``."""
        if kind is PeriodKind.SHIFT:
            starts = sorted(self._shift_starts_around(t_us))
            i = max(i for i, (us, _, _) in enumerate(starts) if us <= t_us)
            start, d, s = starts[i]
            return Period(kind, f"{d.isoformat()}/{s.strftime('%H:%M')}", start, starts[i + 1][0])
        day = self._local_day(t_us)
        if kind is PeriodKind.DAY:
            first, last = day, day + timedelta(days=1)
            label = day.isoformat()
        else:
            first = day - timedelta(days=day.weekday())
            last = first + timedelta(days=7)
            year, week, _ = first.isocalendar()
            label = f"{year}-W{week:02d}"
        return Period(kind, label, self._wall(first, time(0)), self._wall(last, time(0)))

    def periods(self, kind: PeriodKind, start_us: int, end_us: int) -> list[Period]:
        """The shifts, days or weeks that overlap ``[start_us, end_us)``, in order."""
        out: list[Period] = []
        t = start_us
        while t < end_us:
            p = self.period_of(kind, t)
            out.append(p)
            t = p.end_us
        return out


__all__ = ["Period", "PeriodGrid", "PeriodKind", "from_us", "iso", "to_us"]
