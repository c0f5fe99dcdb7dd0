"""ISO 22400-2 key performance indicators of one work unit over one period (pure, no I/O).

:mod:`iinode.kpi.time_model` turns state samples into the standard's time
elements (planned busy, actual production, setup and down time);
:mod:`iinode.kpi.indicators` computes availability, effectiveness, quality
ratio and OEE index from them and from the produced, good and scrap quantities.
A ratio whose denominator is zero is ``None``, never an error.
"""

from iinode.kpi.indicators import (
    Kpis,
    Quantities,
    WorkUnitPeriod,
    availability,
    compute,
    effectiveness,
    energy_per_good_unit,
    oee_index,
    quality_ratio,
    scrap_ratio,
)
from iinode.kpi.time_model import TimeModel, UnitState, state_durations, time_model

__all__ = [
    "Kpis",
    "Quantities",
    "TimeModel",
    "UnitState",
    "WorkUnitPeriod",
    "availability",
    "compute",
    "effectiveness",
    "energy_per_good_unit",
    "oee_index",
    "quality_ratio",
    "scrap_ratio",
    "state_durations",
    "time_model",
]
