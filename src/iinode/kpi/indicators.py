"""ISO 22400-2 KPIs of one work unit over one period (pure).

* Availability = APT / PBT
* Effectiveness = PRI x PQ / APT (PRI: planned runtime per item, the ideal cycle time)
* Quality ratio = GQ / PQ
* OEE index = Availability x Effectiveness x Quality ratio
* Scrap ratio = SQ / PQ, energy per good unit = energy / GQ

A zero denominator (no planned time, nothing produced) or a missing input
gives ``None``; invalid inputs raise ``ValueInvalid``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from iinode.errors import ValueInvalid
from iinode.kpi.time_model import TimeModel


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueInvalid(f"{name} must be an integer, not {type(value).__name__}")
    if value < 0:
        raise ValueInvalid(f"{name} must not be negative: {value}")
    return value


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


@dataclass(frozen=True, slots=True)
class Quantities:
    """Produced (PQ), good (GQ) and scrap (SQ) quantities; rework is PQ - GQ - SQ."""

    produced: int
    good: int
    scrap: int = 0

    def __post_init__(self) -> None:
        _count("produced quantity", self.produced)
        _count("good quantity", self.good)
        _count("scrap quantity", self.scrap)
        if self.good + self.scrap > self.produced:
            raise ValueInvalid(
                f"good ({self.good}) and scrap ({self.scrap}) quantities exceed "
                f"the produced quantity ({self.produced})"
            )

    @classmethod
    def of(cls, good: int, scrap: int) -> Quantities:
        """Quantities with no rework: PQ = GQ + SQ."""
        return cls(_count("good quantity", good) + _count("scrap quantity", scrap), good, scrap)


@dataclass(frozen=True, slots=True)
class WorkUnitPeriod:
    """What the KPIs of one work unit over one period are computed from."""

    time: TimeModel
    quantities: Quantities
    planned_runtime_per_item_s: float | None = None  # PRI
    energy_kwh: float | None = None

    def __post_init__(self) -> None:
        pri = self.planned_runtime_per_item_s
        if pri is not None and (isinstance(pri, bool) or not math.isfinite(pri) or pri <= 0):
            raise ValueInvalid(f"planned runtime per item must be positive seconds: {pri!r}")
        e = self.energy_kwh
        if e is not None and (isinstance(e, bool) or not math.isfinite(e) or e < 0):
            raise ValueInvalid(f"energy must be a finite, non-negative kWh: {e!r}")


@dataclass(frozen=True, slots=True)
class Kpis:
    availability: float | None
    effectiveness: float | None
    quality_ratio: float | None
    oee: float | None
    scrap_ratio: float | None
    energy_per_good_kwh: float | None


def availability(time: TimeModel) -> float | None:
    """APT / PBT."""
    return _ratio(time.production_s, time.planned_busy_s)


def effectiveness(time: TimeModel, produced: int, pri_s: float | None) -> float | None:
    """PRI x PQ / APT."""
    return None if pri_s is None else _ratio(pri_s * produced, time.production_s)


def quality_ratio(quantities: Quantities) -> float | None:
    """GQ / PQ."""
    return _ratio(quantities.good, quantities.produced)


def scrap_ratio(quantities: Quantities) -> float | None:
    """SQ / PQ."""
    return _ratio(quantities.scrap, quantities.produced)


def energy_per_good_unit(energy_kwh: float | None, good: int) -> float | None:
    """Energy / GQ, in kWh per good unit."""
    return None if energy_kwh is None else _ratio(energy_kwh, good)


def oee_index(a: float | None, e: float | None, q: float | None) -> float | None:
    """Availability x Effectiveness x Quality ratio (``None`` if any is)."""
    return None if a is None or e is None or q is None else a * e * q


def compute(period: WorkUnitPeriod) -> Kpis:
    """Every KPI of one work unit over one period."""
    q = period.quantities
    a = availability(period.time)
    e = effectiveness(period.time, q.produced, period.planned_runtime_per_item_s)
    qr = quality_ratio(q)
    return Kpis(
        a,
        e,
        qr,
        oee_index(a, e, qr),
        scrap_ratio(q),
        energy_per_good_unit(period.energy_kwh, q.good),
    )


__all__ = [
    "Kpis",
    "Quantities",
    "WorkUnitPeriod",
    "availability",
    "compute",
    "effectiveness",
    "energy_per_good_unit",
    "oee_index",
    "quality_ratio",
    "scrap_ratio",
]
