"""ISO 22400 KPIs from stored and arriving telemetry: batch, live, and Prometheus gauges.

The KPI code itself is pure (:mod:`iinode.kpi`); this module connects it to
the telemetry store and the ingest pipeline.  It reads the tags the factory
simulator (and any machine modelled like it) publishes: ``state``, the
cumulative counters ``good_count``, ``scrap_count``, ``rework_count``,
``consumed_count`` and ``energy`` (kWh), and ``cycle_time`` (s).

* Batch: :func:`machine_atoms` reads one machine's KPI tags of a period (and
  the look-back before it) from the store and feeds them to a fresh tracker.
* Live: :class:`LiveKpis` is an ingest observer (``IngestWorker.observers``)
  feeding a :class:`~iinode.kpi.KpiStream`; shift windows fill as data arrives.
  Both use the same tracker, so a closed shift has the same elements either way.
* Gauges: :class:`KpiMetrics` publishes each machine's KPIs over the last
  ``window_s`` in base units (``_ratio`` for ratios, ``_seconds``, ``_joules``).
  It is a Prometheus collector that knows nothing of the node's metrics: the node's
  assembly (``iinode.assembly``) registers it in the node's registry and calls
  :func:`refresh_kpis` before each scrape.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import time as wall_time
from pathlib import Path

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from iinode.errors import IinodeError, ValueInvalid
from iinode.kpi import (
    KPI_TAGS,
    Elements,
    Kpis,
    KpiStream,
    Period,
    PeriodGrid,
    PeriodKind,
    Sample,
    TrackerSettings,
    batch_elements,
    compute,
    machine_total,
    sample_key,
    total,
)
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.model import Equipment, Reading, now_us
from iinode.telemetry.registry_handles import HandleRegistry
from iinode.telemetry.store import ParquetStore

log = logging.getLogger(__name__)

STATE = "state"
#: The most readings of one machine read back for one period (about 1 GB in Python).
MAX_READINGS = 5_000_000
#: The most readings of a plant's period read in one columnar scan (about 30 bytes each).
MAX_SCAN_READINGS = 150_000_000

#: Gauge name, ``Kpis`` field, help text; all in base units.
FAMILIES = (
    ("iinode_kpi_oee_ratio", "oee", "ISO 22400 OEE index (availability x effectiveness x QR)."),
    ("iinode_kpi_availability_ratio", "availability", "ISO 22400 availability (APT / PBT)."),
    ("iinode_kpi_effectiveness_ratio", "effectiveness",
     "ISO 22400 effectiveness (PRI x PQ / APT)."),
    ("iinode_kpi_quality_ratio", "quality_ratio", "ISO 22400 quality ratio (GQ / PQ)."),
    ("iinode_kpi_nee_ratio", "nee", "ISO 22400 NEE index (AUPT / PBT x effectiveness x QR)."),
    ("iinode_kpi_scrap_ratio", "scrap_ratio", "ISO 22400 scrap ratio (SQ / PQ)."),
    ("iinode_kpi_rework_ratio", "rework_ratio", "ISO 22400 rework ratio (RQ / PQ)."),
    ("iinode_kpi_setup_ratio", "setup_rate", "ISO 22400 setup rate (ASUT / AUPT)."),
    ("iinode_kpi_technical_efficiency_ratio", "technical_efficiency",
     "ISO 22400 technical efficiency (APT / (APT + ADET))."),
    ("iinode_kpi_throughput_rate_per_second", "throughput_rate",
     "ISO 22400 throughput rate (PQ / AOET), parts per second."),
    ("iinode_kpi_energy_per_good_unit_joules", "energy_per_good_kwh",
     "Energy per good unit (energy / GQ), joules."),
    ("iinode_kpi_mtbf_seconds", "mtbf_s", "Mean operating time between failures."),
    ("iinode_kpi_mttr_seconds", "mttr_s", "Mean time to restoration."),
    ("iinode_kpi_complete", "complete", "1 if the window's data was complete, else 0."),
)  # fmt: skip
_SCALE = {"energy_per_good_kwh": 3.6e6}  # kWh to joules


@dataclass(frozen=True, slots=True)
class KpiWindowSettings:
    """``window_s``: the period the gauges cover, ending now; ``cache_s``: how long a
    computation is reused; ``max_hold_s``: the longest a state sample holds;
    ``max_gap_s``: the longest a counter may be silent and still count;
    ``ideal_cycle_s``: PRI per equipment identifier (else the shortest cycle seen);
    ``tz`` and ``shift_starts``: the plant's shift calendar."""

    window_s: float = 3600.0
    cache_s: float = 15.0
    max_hold_s: float = 86400.0
    max_gap_s: float = 900.0
    ideal_cycle_s: Mapping[str, float] = field(default_factory=dict)
    tz: str = "UTC"
    shift_starts: tuple[wall_time, ...] = (wall_time(6), wall_time(14), wall_time(22))

    def __post_init__(self) -> None:
        for name in ("window_s", "max_hold_s", "max_gap_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueInvalid(f"{name} must be a positive number of seconds: {value!r}")
        if not (math.isfinite(self.cache_s) and self.cache_s >= 0):
            raise ValueInvalid(f"cache_s must not be negative: {self.cache_s!r}")
        for equipment, pri in self.ideal_cycle_s.items():
            if not (math.isfinite(pri) and pri > 0):
                raise ValueInvalid(f"ideal cycle time of {equipment} must be positive: {pri!r}")

    @property
    def grid(self) -> PeriodGrid:
        return PeriodGrid(self.tz, self.shift_starts)

    def tracker(self, equipment: str, item: Equipment | None = None) -> TrackerSettings:
        """A machine's tracker settings; its meters are the counters its record declares."""
        base = TrackerSettings()
        meters = base.meters
        if item is not None:
            meters = frozenset(t.name for t in item.tags) & frozenset(KPI_TAGS)
        return TrackerSettings(
            int(self.max_hold_s * 1e6),
            int(self.max_gap_s * 1e6),
            self.ideal_cycle_s.get(equipment),
            meters,
        )


def stored_samples(store: ParquetStore, equipment: str, start_us: int, end_us: int) -> list[Sample]:
    """One machine's KPI readings in ``[start_us, end_us)``, in feeding order (one query).

    ``ValueInvalid`` if there are more than :data:`MAX_READINGS` readings: a
    shorter period must be asked for, rather than KPIs over a truncated one.
    """
    rows = store.history(equipment, None, start_us, end_us, MAX_READINGS + 1)
    if len(rows) > MAX_READINGS:
        raise ValueInvalid(
            f"{equipment} has more than {MAX_READINGS:,} readings in the period; "
            "ask for a shorter one"
        )
    tags = frozenset(KPI_TAGS)
    out = [(r.time_us, r.tag, r.value, r.quality.is_good) for r in rows if r.tag in tags]
    out.sort(key=sample_key)  # the store orders by time and tag; equal ones by value too
    return out


def carried_samples(
    store: ParquetStore, equipment: str, start_us: int, tracker: TrackerSettings
) -> list[Sample]:
    """A period's carry-in: each KPI tag's last readings between ``tracker.lookback_us``
    and ``tracker.full_us`` before ``start_us`` (one small query), in feeding order.  A
    machine that publishes its state only when it changes has its state known from the
    period's start on (up to ``max_hold_us`` after that reading)."""
    low, high = start_us - tracker.lookback_us, start_us - tracker.full_us
    if low >= high:
        return []
    rows = store.last_before(equipment, KPI_TAGS, low, high)
    out = [(r.time_us, r.tag, r.value, r.quality.is_good) for r in rows]
    out.sort(key=sample_key)
    return out


def machine_atoms(
    store: ParquetStore,
    equipment: str,
    start_us: int,
    end_us: int,
    settings: KpiWindowSettings,
    item: Equipment | None = None,
) -> dict[int, Elements]:
    """Batch: one machine's elements per atom of ``[start_us, end_us)`` (blocking)."""
    tracker = settings.tracker(equipment, item)
    samples = carried_samples(store, equipment, start_us, tracker)
    samples += stored_samples(store, equipment, start_us - tracker.full_us, end_us)
    return batch_elements(samples, settings.grid, start_us, end_us, tracker)


def window_kpis(
    store: ParquetStore,
    equipment: str,
    end_us: int,
    settings: KpiWindowSettings,
    item: Equipment | None = None,
) -> Kpis | None:
    """One machine's KPIs over ``settings.window_s`` up to ``end_us`` (``None``: no data)."""
    start_us = end_us - int(settings.window_s * 1e6)
    atoms = machine_atoms(store, equipment, start_us, end_us, settings, item)
    return compute(machine_total(equipment, atoms)) if atoms else None


class LiveKpis:
    """Live shift windows: an ingest observer feeding a :class:`KpiStream`."""

    def __init__(
        self,
        settings: KpiWindowSettings | None = None,
        equipment: Callable[[str], Equipment | None] | None = None,
        *,
        lateness_s: float = 5.0,
        store: ParquetStore | None = None,
    ) -> None:
        self.settings = settings or KpiWindowSettings()
        #: Registered equipment, whose records say which meters a machine has.
        self.known: dict[str, Equipment] = {}
        #: Where a machine new to the stream gets its carry-in (set by :meth:`attach`).
        self.store: ParquetStore | None = store
        self._equipment = equipment or self.known.get
        s = self.settings
        self.stream = KpiStream(
            s.grid, lambda e: s.tracker(e, self._equipment(e)), lateness_us=int(lateness_s * 1e6)
        )

    def attach(self, workers: Iterable[IngestWorker]) -> None:
        """Observe the batches these ingest workers store (each worker once); the first
        worker's store gives each machine's carry-in (:meth:`carry_in`)."""
        for worker in workers:
            if self.store is None:
                self.store = worker.store
            if self.observe not in worker.observers:
                worker.observers.append(self.observe)

    def observe(self, readings: Iterable[Reading]) -> None:
        """Feed stored readings (only the KPI tags are used); a machine new to the stream
        first gets its carry-in from the store."""
        tags = frozenset(KPI_TAGS)
        batch = [r for r in readings if r.tag in tags]
        first: dict[str, int] = {}
        for r in batch:
            if r.equipment not in self.stream.machines:
                first[r.equipment] = min(r.time_us, first.get(r.equipment, r.time_us))
        for equipment, before_us in first.items():
            self.carry_in(equipment, before_us)
        for r in batch:
            self.stream.add(r.equipment, r.time_us, r.tag, r.value, r.quality.is_good)

    def carry_in(self, equipment: str, before_us: int) -> None:
        """Feed a machine's stored readings from the start of the atom (shift piece) of
        ``before_us`` up to it, with the same look-back and carry-in as the batch path,
        so a stream attached mid-shift knows the state a machine reported (only on change)
        long before, and the shift so far matches the batch."""
        store = self.store
        if store is None:
            return
        s = self.settings
        tracker = s.tracker(equipment, self._equipment(equipment))
        start = s.grid.atom_start(before_us)
        try:
            samples = carried_samples(store, equipment, start, tracker)
            samples += stored_samples(store, equipment, start - tracker.full_us, before_us)
        except IinodeError as exc:
            log.warning("KPI carry-in of %s failed, starting without it: %s", equipment, exc)
            return
        for t, tag, value, good in samples:
            self.stream.add(equipment, t, tag, value, good)


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
        self.clock = clock
        self._monotonic = monotonic
        self._computed_at: float | None = None
        self._lock = asyncio.Lock()
        self._opened: ParquetStore | None = None
        #: The last computation: ``{equipment: Kpis}``.
        self.snapshot: dict[str, Kpis] = {}

    def compute(self, store: ParquetStore, equipment: Iterable[str]) -> dict[str, Kpis]:
        """KPIs of every machine in ``equipment`` that has data in the window (blocking)."""
        from iinode.telemetry.kpi_columnar import plant_atoms

        end_us = self.clock()
        start_us = end_us - int(self.settings.window_s * 1e6)
        ids = list(equipment)
        s = self.settings
        atoms, left = plant_atoms(store, ids, start_us, end_us, s.grid,
                                  [s.tracker(e) for e in ids], MAX_SCAN_READINGS)  # fmt: skip
        for equipment_id in left:
            atoms[equipment_id] = machine_atoms(store, equipment_id, start_us, end_us, s)
        return {e: compute(machine_total(e, atoms[e])) for e in ids if atoms.get(e)}

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
                    family.add_metric([equipment_id], float(value) * _SCALE.get(attr, 1.0))
            yield family

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(name, doc, labels=["equipment"]) for name, _, doc in FAMILIES]


async def refresh_kpis(
    collector: KpiMetrics, registry: HandleRegistry, store: ParquetStore | Path
) -> KpiMetrics:
    """Before a scrape: ``collector``'s KPI gauges over the equipment in ``registry`` with a
    ``state`` tag, read from ``store`` (the live store, or the telemetry directory)."""

    async def machines() -> list[str]:
        return [e.id for e in await registry.list() if e.tag(STATE) is not None]

    await collector.refresh(store, machines)
    return collector


__all__ = [
    "FAMILIES",
    "KpiMetrics",
    "KpiWindowSettings",
    "LiveKpis",
    "carried_samples",
    "machine_atoms",
    "refresh_kpis",
    "scope_elements",
    "stored_samples",
    "window_kpis",
]


def scope_elements(
    store: ParquetStore,
    items: Sequence[Equipment],
    start_us: int,
    end_us: int,
    settings: KpiWindowSettings,
    kind: PeriodKind | None = None,
) -> list[tuple[Period, Elements]]:
    """Batch: the summed elements of ``items`` (a machine, line or plant) over
    ``[start_us, end_us)``, per shift, day or week (``kind``) or as one period.

    All machines are read in one columnar scan (:mod:`iinode.telemetry.kpi_columnar`;
    machines it does not model go to the tracker); a period sums its machines'
    elements in identifier order (a machine with no readings in it marks it incomplete)."""
    from iinode.telemetry.kpi_columnar import plant_atoms  # numpy only when used

    grid = settings.grid
    if kind is None:
        periods = [Period(PeriodKind.SHIFT, "total", start_us, end_us)]
    else:
        periods = [
            replace(p, start_us=max(p.start_us, start_us), end_us=min(p.end_us, end_us))
            for p in grid.periods(kind, start_us, end_us)
        ]
    ordered = sorted(items, key=lambda e: e.id)
    per_machine, left = plant_atoms(
        store,
        [e.id for e in ordered],
        start_us,
        end_us,
        grid,
        [settings.tracker(e.id, e) for e in ordered],
        MAX_SCAN_READINGS,
    )
    for e in ordered:
        if e.id in left:  # readings the columnar path does not model: the tracker itself
            per_machine[e.id] = machine_atoms(store, e.id, start_us, end_us, settings, e)
    per_machine = {e.id: per_machine[e.id] for e in ordered}
    out: list[tuple[Period, Elements]] = []
    for p in periods:
        parts = [
            machine_total(equipment, {s: a for s, a in atoms.items() if p.start_us <= s < p.end_us})
            for equipment, atoms in per_machine.items()
        ]
        out.append((p, total(parts)))
    return out
