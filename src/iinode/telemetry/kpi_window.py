"""Per-machine ISO 22400 KPIs over a recent window of stored telemetry, as Prometheus gauges.

The KPIs (:mod:`iinode.kpi`) are computed from the tags the factory simulator
(and any machine modelled like it) publishes:

* ``state`` (``running``/``idle``/``setup``/``down``): the time model;
* ``good_count`` and ``scrap_count`` (cumulative): GQ, SQ, PQ = GQ + SQ;
* ``cycle_time`` (s): PRI, the shortest cycle reported in the window, unless
  the settings name an ideal cycle time for the machine;
* ``energy`` (cumulative kWh): energy per good unit.

Cumulative counters count their increase over the window; a counter that goes
down restarted from zero.  Only readings of good quality are used.  Equipment
with no ``state`` reading in the window has no KPIs.

:class:`KpiMetrics` is a collector: ``refresh`` (awaited before a scrape)
recomputes at most once per ``cache_s`` in a worker thread, ``collect`` only
reads the last result, so scrapes stay cheap.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from iinode.errors import IinodeError, ValueInvalid
from iinode.kpi import Kpis, Quantities, UnitState, WorkUnitPeriod, compute, state_durations
from iinode.kpi import time_model as to_time_model
from iinode.monitoring.metrics import NodeMetrics
from iinode.telemetry.model import Reading, now_us
from iinode.telemetry.registry_handles import HandleRegistry
from iinode.telemetry.store import ParquetStore

log = logging.getLogger(__name__)

STATE, GOOD, SCRAP, CYCLE, ENERGY = "state", "good_count", "scrap_count", "cycle_time", "energy"
#: The tags KPIs are computed from.
KPI_TAGS = (STATE, GOOD, SCRAP, CYCLE, ENERGY)

#: Gauge name, ``Kpis`` field, help text.
FAMILIES = (
    ("iinode_kpi_oee", "oee", "ISO 22400 OEE index (availability x effectiveness x quality)."),
    ("iinode_kpi_availability", "availability", "ISO 22400 availability (APT / PBT)."),
    ("iinode_kpi_effectiveness", "effectiveness", "ISO 22400 effectiveness (PRI x PQ / APT)."),
    ("iinode_kpi_quality", "quality_ratio", "ISO 22400 quality ratio (GQ / PQ)."),
    ("iinode_kpi_scrap_ratio", "scrap_ratio", "ISO 22400 scrap ratio (SQ / PQ)."),
    ("iinode_kpi_energy_per_good_kwh", "energy_per_good_kwh", "Energy per good unit (kWh)."),
)


@dataclass(frozen=True, slots=True)
class KpiWindowSettings:
    """``window_s``: the period the KPIs cover, ending now; ``cache_s``: how long a
    computation is reused; ``max_hold_s``: the longest a state sample holds;
    ``ideal_cycle_s``: PRI per equipment identifier (else the shortest cycle seen)."""

    window_s: float = 3600.0
    cache_s: float = 15.0
    max_hold_s: float = 300.0
    ideal_cycle_s: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("window_s", "max_hold_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueInvalid(f"{name} must be a positive number of seconds: {value!r}")
        if not (math.isfinite(self.cache_s) and self.cache_s >= 0):
            raise ValueInvalid(f"cache_s must not be negative: {self.cache_s!r}")
        for equipment, pri in self.ideal_cycle_s.items():
            if not (math.isfinite(pri) and pri > 0):
                raise ValueInvalid(f"ideal cycle time of {equipment} must be positive: {pri!r}")


def increase(values: Iterable[float]) -> float:
    """How much a cumulative counter grew; a drop means it restarted from zero."""
    total, last = 0.0, None
    for v in values:
        if last is not None:
            total += v - last if v >= last else v
        last = v
    return total


def _numbers(readings: Iterable[Reading]) -> list[float]:
    return [
        float(r.value)
        for r in readings
        if r.quality.is_good
        and isinstance(r.value, int | float)
        and not isinstance(r.value, bool)
        and math.isfinite(r.value)
    ]


def window_period(
    by_tag: Mapping[str, Sequence[Reading]],
    end_us: int,
    max_hold_s: float,
    ideal_cycle_s: float | None = None,
) -> WorkUnitPeriod | None:
    """The KPI inputs of one machine from its readings (each tag's in time order) up to ``end_us``.

    ``None`` if there is no usable ``state`` reading.
    """
    states = {s.value for s in UnitState}
    samples = [
        (r.time_us / 1e6, r.value)
        for r in by_tag.get(STATE, ())
        if r.quality.is_good and isinstance(r.value, str) and r.value in states
    ]
    if not samples:
        return None
    durations = state_durations(samples, end_us / 1e6, max_hold_s)
    good = round(increase(_numbers(by_tag.get(GOOD, ()))))
    scrap = round(increase(_numbers(by_tag.get(SCRAP, ()))))
    energy_values = _numbers(by_tag.get(ENERGY, ()))
    energy = increase(energy_values) if energy_values else None
    pri = ideal_cycle_s
    if pri is None:
        cycles = [c for c in _numbers(by_tag.get(CYCLE, ())) if c > 0]
        pri = min(cycles) if cycles else None
    return WorkUnitPeriod(to_time_model(durations), Quantities.of(good, scrap), pri, energy)


def window_kpis(
    store: ParquetStore, equipment: str, end_us: int, settings: KpiWindowSettings
) -> Kpis | None:
    """One machine's KPIs over ``settings.window_s`` up to ``end_us`` (``None``: no state)."""
    start_us = end_us - int(settings.window_s * 1e6)
    by_tag = {tag: store.history(equipment, tag, start_us, end_us) for tag in KPI_TAGS}
    period = window_period(
        by_tag, end_us, settings.max_hold_s, settings.ideal_cycle_s.get(equipment)
    )
    return None if period is None else compute(period)


class KpiMetrics(Collector):
    """The ``iinode_kpi_*`` gauges, labelled by equipment identifier."""

    def __init__(
        self,
        settings: KpiWindowSettings | None = None,
        *,
        clock: Callable[[], int] = now_us,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or KpiWindowSettings()
        self._clock = clock
        self._monotonic = monotonic
        self._computed_at: float | None = None
        self._lock = asyncio.Lock()
        self._opened: ParquetStore | None = None
        #: The last computation: ``{equipment: Kpis}``.
        self.snapshot: dict[str, Kpis] = {}

    def compute(self, store: ParquetStore, equipment: Iterable[str]) -> dict[str, Kpis]:
        """KPIs of every machine in ``equipment`` that reported a state (blocking)."""
        end_us = self._clock()
        out: dict[str, Kpis] = {}
        for equipment_id in equipment:
            kpis = window_kpis(store, equipment_id, end_us, self.settings)
            if kpis is not None:
                out[equipment_id] = kpis
        return out

    def stale(self) -> bool:
        at = self._computed_at
        return at is None or self._monotonic() - at >= self.settings.cache_s

    def _store(self, store: ParquetStore | Path) -> ParquetStore:
        if isinstance(store, ParquetStore):
            return store
        opened = self._opened
        if opened is None or opened.root != store:
            opened = self._opened = ParquetStore(store)
        return opened

    async def refresh(
        self,
        store: ParquetStore | Path,
        equipment: Callable[[], Awaitable[Iterable[str]]],
    ) -> None:
        """Recompute if the last result is older than ``cache_s``.

        ``store`` is the telemetry store (or its directory, opened once);
        ``equipment`` lists the identifiers to compute.  A store that fails is
        logged and the previous result kept.
        """
        async with self._lock:
            if not self.stale():
                return
            try:
                ids = list(await equipment())
                self.snapshot = await asyncio.to_thread(
                    lambda: self.compute(self._store(store), ids)
                )
            except IinodeError as exc:
                log.warning("KPI computation failed, keeping the previous values: %s", exc)
            self._computed_at = self._monotonic()

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        for name, attr, doc in FAMILIES:
            family = GaugeMetricFamily(name, doc, labels=["equipment"])
            for equipment_id in sorted(snapshot):
                value = getattr(snapshot[equipment_id], attr)
                if value is not None:
                    family.add_metric([equipment_id], value)
            yield family

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(name, doc, labels=["equipment"]) for name, _, doc in FAMILIES]


_installed: weakref.WeakKeyDictionary[CollectorRegistry, KpiMetrics] = weakref.WeakKeyDictionary()


def kpi_metrics(
    metrics: NodeMetrics,
    settings: KpiWindowSettings | None = None,
    *,
    clock: Callable[[], int] = now_us,
) -> KpiMetrics:
    """The node's KPI collector, registered in its metrics registry on first use
    (``settings`` and ``clock`` apply to that first use)."""
    collector = _installed.get(metrics.registry)
    if collector is None:
        collector = KpiMetrics(settings, clock=clock)
        metrics.registry.register(collector)
        _installed[metrics.registry] = collector
    return collector


async def refresh_kpis(
    metrics: NodeMetrics, registry: HandleRegistry, store: ParquetStore | Path
) -> KpiMetrics:
    """Before a scrape: the node's KPI gauges over the equipment in its registry with a
    ``state`` tag, read from ``store`` (the live store, or the telemetry directory)."""
    collector = kpi_metrics(metrics)

    async def machines() -> list[str]:
        return [e.id for e in await registry.list() if e.tag(STATE) is not None]

    await collector.refresh(store, machines)
    return collector


__all__ = [
    "FAMILIES",
    "KPI_TAGS",
    "KpiMetrics",
    "KpiWindowSettings",
    "increase",
    "kpi_metrics",
    "refresh_kpis",
    "window_kpis",
    "window_period",
]
