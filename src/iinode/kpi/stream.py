"""KPI elements computed live as readings arrive, and for any period in one pass (pure).

:class:`KpiStream` keeps one :class:`~iinode.kpi.tracker.MachineTracker` per
machine.  Readings may arrive out of order: each machine's readings wait in a
small buffer until ``lateness_us`` has passed (by the newest reading time seen
from that machine) and are then fed in order.  A reading older than what was
already fed is *late*: it is not used and its atom says so (the stored reading
still counts when the period is recomputed from the store).

:func:`batch_elements` is the batch path: the same tracker, fed a period's
readings (and those ``lookback_us`` before it) in order.  For a period made of
whole atoms, the stream and the batch give equal :class:`Elements`.

:func:`by_period` sums atoms into shifts, days or weeks, and
:func:`iinode.kpi.elements.total` sums machines into lines and plants.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from iinode.kpi.elements import Elements, total
from iinode.kpi.periods import Period, PeriodGrid, PeriodKind
from iinode.kpi.tracker import MachineTracker, TrackerSettings, Value, reading_key, sample_key

#: A reading as the KPI code sees it: time (µs), tag, value, good quality.
Sample = tuple[int, str, Value, bool]


def batch_elements(
    samples: Iterable[Sample],
    grid: PeriodGrid,
    start_us: int,
    end_us: int,
    settings: TrackerSettings | None = None,
) -> dict[int, Elements]:
    """Elements per atom of ``[start_us, end_us)`` from one machine's samples (any order;
    those before ``start_us - settings.lookback_us`` or from ``end_us`` on are ignored)."""
    tracker = MachineTracker(grid, settings, origin_us=start_us, cuts=(start_us, end_us))
    low = start_us - tracker.settings.lookback_us
    ordered = sorted((s for s in samples if low <= s[0] < end_us), key=sample_key)
    for t, tag, value, good in ordered:
        tracker.feed(t, tag, value, good)
    return tracker.elements(start_us, end_us)


def machine_total(equipment: str, atoms: Mapping[int, Elements]) -> Elements:
    """One machine's elements over a period; no atoms at all is an issue, not zeros."""
    if not atoms:
        return Elements(energy_kwh=0.0, energy_running_kwh=0.0,
                        issues=(f"no readings from {equipment} in the period",))  # fmt: skip
    return total(atoms[start] for start in sorted(atoms))


def by_period(
    atoms: Mapping[int, Elements], grid: PeriodGrid, kind: PeriodKind
) -> dict[Period, Elements]:
    """The sum of the atoms of each shift, day or week, in time order."""
    groups: dict[Period, list[Elements]] = {}
    for start in sorted(atoms):
        groups.setdefault(grid.period_of(kind, start), []).append(atoms[start])
    return {p: total(parts) for p, parts in groups.items()}


#: Past atoms are forgotten (beyond ``retain_us``) once a machine has more than this many.
_KEEP_ATOMS = 64


@dataclass(slots=True)
class _Machine:
    tracker: MachineTracker
    pending: list[tuple[tuple[int, str, int, float, str], int, Sample]] = field(
        default_factory=list
    )
    newest_us: int | None = None
    released_us: int | None = None  # every reading before this was fed
    seq: int = 0


class KpiStream:
    """Live elements of many machines.  ``settings_for(equipment)`` gives a machine's
    tracker settings; ``retain_us`` is how long past atoms are kept."""

    def __init__(
        self,
        grid: PeriodGrid,
        settings_for: Callable[[str], TrackerSettings] | None = None,
        *,
        lateness_us: int = 5_000_000,
        retain_us: int = 8 * 86_400_000_000,
    ) -> None:
        self.grid = grid
        self.settings_for = settings_for or (lambda _equipment: TrackerSettings())
        self.lateness_us = lateness_us
        self.retain_us = retain_us
        self.machines: dict[str, _Machine] = {}
        self.late = 0

    def add(self, equipment: str, time_us: int, tag: str, value: Value, good: bool = True) -> None:
        """One reading, in any order; fed once ``lateness_us`` has passed."""
        m = self.machines.get(equipment)
        if m is None:
            m = self.machines[equipment] = _Machine(
                MachineTracker(self.grid, self.settings_for(equipment))
            )
        if m.released_us is not None and time_us < m.released_us:
            self.late += 1
            m.tracker.late(time_us, tag)
            return
        m.seq += 1
        heapq.heappush(
            m.pending, (reading_key(time_us, tag, value), m.seq, (time_us, tag, value, good))
        )
        if m.newest_us is None or time_us > m.newest_us:
            m.newest_us = time_us
            self._release(m, time_us - self.lateness_us)

    def _release(self, m: _Machine, before_us: int) -> None:
        retain_us = self.retain_us
        pending = m.pending
        while pending and pending[0][0][0] < before_us:
            t, tag, value, good = heapq.heappop(pending)[2]
            m.tracker.feed(t, tag, value, good)
        if m.released_us is None or before_us > m.released_us:
            m.released_us = before_us
        if len(m.tracker.atoms) > _KEEP_ATOMS and m.newest_us is not None:
            m.tracker.forget_before(m.newest_us - retain_us)

    def flush(self, until_us: int) -> None:
        """Feed every waiting reading before ``until_us`` (a window closes)."""
        for m in self.machines.values():
            self._release(m, until_us)

    def elements(self, equipment: str, start_us: int, end_us: int) -> dict[int, Elements]:
        """Elements per atom of ``[start_us, end_us)`` from what was fed so far."""
        m = self.machines.get(equipment)
        return {} if m is None else m.tracker.elements(start_us, end_us)

    def period(self, equipment: Iterable[str], period: Period, now_us: int) -> Elements:
        """The elements of ``equipment`` (summed, in identifier order) over ``period``,
        the state held up to ``now_us`` if the period is still running."""
        end = min(period.end_us, now_us)
        return total(
            machine_total(e, self.elements(e, period.start_us, end)) for e in sorted(equipment)
        )


__all__ = ["KpiStream", "Sample", "batch_elements", "by_period", "machine_total"]
