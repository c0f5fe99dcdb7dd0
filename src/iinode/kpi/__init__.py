"""ISO 22400-2 KPIs and the five transformation metrics (pure, stdlib only, no I/O).

* :mod:`iinode.kpi.time_model`: machine states and the time element each books to;
* :mod:`iinode.kpi.elements`: the additive time and quantity elements of a period;
* :mod:`iinode.kpi.indicators`: the KPIs computed from elements;
* :mod:`iinode.kpi.periods`: shifts, days and weeks in a plant's local time;
* :mod:`iinode.kpi.tracker`: one machine's readings to elements, with bad input marked;
* :mod:`iinode.kpi.stream`: live (streaming) and batch computation with the same tracker;
* :mod:`iinode.kpi.transform`: production efficiency, resource utilisation, development
  cycle, operating cost per good unit, defect rate, and the before/after report.

KPIs of a line, plant, day or week are computed from the summed elements, never
by averaging ratios.  A ratio whose denominator is zero is ``None``.
"""

from iinode.kpi.elements import Elements, total
from iinode.kpi.indicators import Kpis, compute
from iinode.kpi.periods import Period, PeriodGrid, PeriodKind
from iinode.kpi.stream import KpiStream, Sample, batch_elements, by_period, machine_total
from iinode.kpi.time_model import STATE_ELEMENT, TimeElement, UnitState
from iinode.kpi.tracker import (
    KPI_TAGS,
    MachineTracker,
    TrackerSettings,
    reading_key,
    sample_key,
)
from iinode.kpi.transform import (
    Change,
    CostRates,
    DevelopmentEvent,
    DevelopmentEventKind,
    TransformationMetrics,
    compare,
    development_cycles,
    mean_development_cycle_s,
    metrics,
)

__all__ = [
    "KPI_TAGS",
    "STATE_ELEMENT",
    "Change",
    "CostRates",
    "DevelopmentEvent",
    "DevelopmentEventKind",
    "Elements",
    "KpiStream",
    "Kpis",
    "MachineTracker",
    "Period",
    "PeriodGrid",
    "PeriodKind",
    "Sample",
    "TimeElement",
    "TrackerSettings",
    "TransformationMetrics",
    "UnitState",
    "batch_elements",
    "by_period",
    "compare",
    "compute",
    "development_cycles",
    "machine_total",
    "mean_development_cycle_s",
    "metrics",
    "reading_key",
    "sample_key",
    "total",
]
