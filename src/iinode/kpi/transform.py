"""The five transformation metrics and the before/after report (pure).

Smart-factory programmes report five figures; here each has an explicit
definition over the ISO 22400-2 elements (:mod:`iinode.kpi.elements`):

1. **Production efficiency**: good units per hour of planned busy time,
   GQ / PBT (and the OEE index beside it).
2. **Comprehensive resource utilisation**: the geometric mean of
   equipment utilisation APT / POT, material yield GQ / CM (CM taken as PQ,
   one part's worth of material per produced part, when no ``consumed_count``
   counter exists) and energy yield, the share of energy drawn while producing
   (energy while ``running`` / all energy).  Each factor is a ratio in [0, 1];
   the geometric mean keeps the composite one too.
3. **Product development cycle**: for each development project, the time from
   its ``project_start`` event to its first ``first_good_lot`` event; a period's
   figure is the mean over the projects whose first good lot falls in it.
4. **Operating cost per good unit**: (energy + labour + maintenance + material
   + scrap + rework cost) / GQ with the rates of :class:`CostRates` as inputs:
   energy per kWh, labour per hour of planned busy time (the crew is staffed
   while the unit is planned busy), maintenance per hour down after a failure
   and per failure, material per produced part (scrapped parts used material
   too), disposal per scrapped part and cost per reworked part.
5. **Defect rate**: (PQ - GQ) / PQ.

The before/after report (:func:`compare`) states each change the way the
industry reports it: the relative change (after - before) / before in percent,
with its sign, e.g. ``production efficiency +32.0%`` and ``defect rate -24.0%``.
Whether a change is an improvement depends on the metric's direction: higher is
better for production efficiency, OEE and resource utilisation; lower is better
for the development cycle, the operating cost and the defect rate.  So a
negative figure for cost or defects is an improvement, as in the published
results.  A change from a zero or unknown value is ``None``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from iinode.errors import ValueInvalid
from iinode.kpi.elements import US, Elements
from iinode.kpi.indicators import oee_index


@dataclass(frozen=True, slots=True)
class CostRates:
    """Cost rates, in one currency."""

    energy_per_kwh: float = 0.0
    labour_per_hour: float = 0.0
    maintenance_per_hour: float = 0.0
    maintenance_per_failure: float = 0.0
    material_per_unit: float = 0.0
    scrap_per_unit: float = 0.0
    rework_per_unit: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueInvalid(f"{name} must be a number")
            if not (math.isfinite(value) and value >= 0):
                raise ValueInvalid(f"{name} must be a finite, non-negative rate: {value!r}")


class DevelopmentEventKind(enum.StrEnum):
    PROJECT_START = "project_start"
    DESIGN_FREEZE = "design_freeze"
    FIRST_PROTOTYPE = "first_prototype"
    FIRST_GOOD_LOT = "first_good_lot"


@dataclass(frozen=True, slots=True)
class DevelopmentEvent:
    """One recorded milestone of a product development project."""

    project: str
    kind: DevelopmentEventKind
    time_us: int

    def __post_init__(self) -> None:
        if not isinstance(self.project, str) or not self.project:
            raise ValueInvalid("a development event needs a project identifier")
        object.__setattr__(self, "kind", DevelopmentEventKind(self.kind))


def development_cycles(events: Iterable[DevelopmentEvent]) -> dict[str, tuple[int, int]]:
    """``{project: (first good lot time, cycle µs)}`` for projects with both a start and a
    first good lot after it (the earliest of each)."""
    starts: dict[str, int] = {}
    lots: dict[str, list[int]] = {}
    for ev in events:
        if ev.kind is DevelopmentEventKind.PROJECT_START:
            starts[ev.project] = min(ev.time_us, starts.get(ev.project, ev.time_us))
        elif ev.kind is DevelopmentEventKind.FIRST_GOOD_LOT:
            lots.setdefault(ev.project, []).append(ev.time_us)
    out: dict[str, tuple[int, int]] = {}
    for project, start in starts.items():
        after = [t for t in lots.get(project, ()) if t >= start]
        if after:
            first = min(after)
            out[project] = (first, first - start)
    return out


def mean_development_cycle_s(
    events: Iterable[DevelopmentEvent], start_us: int, end_us: int
) -> float | None:
    """Mean cycle (s) of the projects whose first good lot is in ``[start_us, end_us)``."""
    cycles = [c for lot, c in development_cycles(events).values() if start_us <= lot < end_us]
    return sum(cycles) / len(cycles) / US if cycles else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def operating_cost(e: Elements, rates: CostRates) -> float | None:
    """Total operating cost of ``e`` (``None`` if energy is priced but not metered)."""
    energy = 0.0
    if rates.energy_per_kwh:
        if e.energy_kwh is None:
            return None
        energy = e.energy_kwh * rates.energy_per_kwh
    hours = 3600 * US
    return (
        energy
        + rates.labour_per_hour * e.pbt_us / hours
        + rates.maintenance_per_hour * e.ttr_us / hours
        + rates.maintenance_per_failure * e.failures
        + rates.material_per_unit * e.pq
        + rates.scrap_per_unit * e.sq
        + rates.rework_per_unit * e.rq
    )


@dataclass(frozen=True, slots=True)
class TransformationMetrics:
    good_units_per_hour: float | None
    oee: float | None
    equipment_utilisation: float | None
    material_yield: float | None
    energy_yield: float | None
    resource_utilisation: float | None
    development_cycle_s: float | None
    operating_cost_per_good_unit: float | None
    defect_rate: float | None
    complete: bool
    issues: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["issues"] = list(self.issues)
        return out


def metrics(
    e: Elements, rates: CostRates | None = None, development_cycle_s: float | None = None
) -> TransformationMetrics:
    """The five metrics (and their parts) of ``e``."""
    utilisation = _ratio(e.apt_us, e.pot_us)
    material = _ratio(e.gq, e.cm if e.cm is not None else e.pq)
    energy = _ratio(e.energy_running_kwh, e.energy_kwh)
    parts = (utilisation, material, energy)
    composite = None
    if all(p is not None for p in parts):
        composite = math.prod(p for p in parts if p is not None) ** (1 / 3)
    return TransformationMetrics(
        _ratio(e.gq, e.pbt_us / (3600 * US)),
        oee_index(e),
        utilisation,
        material,
        energy,
        composite,
        development_cycle_s,
        _ratio(operating_cost(e, rates or CostRates()), e.gq),
        _ratio(e.pq - e.gq, e.pq),
        e.complete,
        e.issues,
    )


class Better(enum.StrEnum):
    HIGHER = "higher"
    LOWER = "lower"


#: The report's metrics: field, how the industry names it, which direction is better.
REPORTED: tuple[tuple[str, str, Better], ...] = (
    ("good_units_per_hour", "production efficiency", Better.HIGHER),
    ("oee", "OEE", Better.HIGHER),
    ("resource_utilisation", "resource utilisation", Better.HIGHER),
    ("equipment_utilisation", "equipment utilisation", Better.HIGHER),
    ("material_yield", "material yield", Better.HIGHER),
    ("energy_yield", "energy yield", Better.HIGHER),
    ("development_cycle_s", "development cycle", Better.LOWER),
    ("operating_cost_per_good_unit", "operating cost", Better.LOWER),
    ("defect_rate", "defect rate", Better.LOWER),
)


@dataclass(frozen=True, slots=True)
class Change:
    metric: str
    label: str
    before: float | None
    after: float | None
    change_pct: float | None  # (after - before) / before x 100
    better: Better
    improved: bool | None
    statement: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def change(metric: str, label: str, better: Better, before: float | None,
           after: float | None) -> Change:  # fmt: skip
    """One line of the report."""
    if before is None or after is None or before == 0:
        return Change(metric, label, before, after, None, better, None, f"{label} n/a")
    pct = (after - before) / before * 100
    improved = None if pct == 0 else (pct > 0) == (better is Better.HIGHER)
    sign = "+" if pct >= 0 else "\u2212"
    return Change(metric, label, before, after, pct, better, improved,
                  f"{label} {sign}{abs(pct):.1f}%")  # fmt: skip


def compare(before: TransformationMetrics, after: TransformationMetrics) -> list[Change]:
    """The before/after report: one :class:`Change` per reported metric."""
    return [
        change(name, label, better, getattr(before, name), getattr(after, name))
        for name, label, better in REPORTED
    ]


__all__ = [
    "REPORTED",
    "Better",
    "Change",
    "CostRates",
    "DevelopmentEvent",
    "DevelopmentEventKind",
    "TransformationMetrics",
    "change",
    "compare",
    "development_cycles",
    "mean_development_cycle_s",
    "metrics",
    "operating_cost",
]
