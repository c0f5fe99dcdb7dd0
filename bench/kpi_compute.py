"""ISO 22400 KPIs for many machines, beside DuckDB's raw scan of the same data, same run.

    .venv/bin/python bench/kpi_compute.py [--machines 1000] [--steps 2000] [--step-s 10]

Each machine reports ``state``, ``good_count``, ``scrap_count``, ``energy`` and
``cycle_time`` every ``--step-s`` seconds (five KPI readings per step), so the
run holds machines x steps x 5 readings, stored with ``ParquetStore.append_table``.
Reported, each as seconds and readings/s, and extrapolated linearly to 10^8
readings (the design target: OEE and friends over 10^8 readings in < 30 s):

  duckdb raw scan        one GROUP BY over every stored reading (count, sum): the engine's
                         floor for touching the data once
  duckdb ordered read    the KPI tags of every machine, sorted, fetched into Python
  kpi compute (batch)    the tracker over every machine's readings in memory, elements per
                         shift summed per plant, every KPI computed
  kpi compute (stream)   the same readings through ``KpiStream`` in arrival order
  store read + compute   ``machine_atoms`` (``ParquetStore.history`` per machine) for a
                         sample of ``--sample`` machines, scaled to all machines
  columnar: scan         ``ParquetStore.scan_tags``: the plant's KPI tags in one DuckDB scan
  columnar: plant KPIs   ``plant_atoms`` (the scan, ordering and the vectorised derivation of
                         every machine's elements), summed per shift, every KPI computed:
                         the batch path ``/kpi`` uses; checked equal to the tracker
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from iinode.kpi import (
    KPI_TAGS,
    KpiStream,
    PeriodGrid,
    PeriodKind,
    Sample,
    TrackerSettings,
    batch_elements,
    by_period,
    compute,
    total,
)
from iinode.telemetry.kpi_columnar import plant_atoms
from iinode.telemetry.kpi_window import KpiWindowSettings, machine_atoms
from iinode.telemetry.store import ParquetStore

T0 = 1_767_592_800_000_000  # 2026-01-05T06:00:00Z, a shift start
ENT = "88.118.8"


def machine_samples(index: int, steps: int, step_us: int) -> list[Sample]:
    """One machine's KPI readings, in feeding order (time, then tag)."""
    rng = random.Random(index)
    out: list[Sample] = []
    state, good, scrap, energy, left = "running", 0, 0, 0.0, rng.randrange(50, 400)
    for i in range(steps):
        t = T0 + i * step_us
        left -= 1
        if left <= 0:
            state = rng.choices(("running", "setup", "down", "waiting"), (6, 1, 1, 1))[0]
            left = rng.randrange(20, 400) if state == "running" else rng.randrange(5, 60)
        if state == "running":
            if rng.random() < 0.02:
                scrap += 1
            else:
                good += 1
        energy += (15.0 if state == "running" else 2.0) * step_us / 3.6e9
        cycle = 10.0 * rng.uniform(0.97, 1.05)
        out += [(t, "cycle_time", cycle, True), (t, "energy", round(energy, 4), True),
                (t, "good_count", good, True), (t, "scrap_count", scrap, True),
                (t, "state", state, True)]  # fmt: skip
    return out


def to_table(machine: str, samples: list[Sample]) -> pa.Table:
    n = len(samples)
    numbers = [None if isinstance(v, str) else float(v) for _, _, v, _ in samples]  # type: ignore[arg-type]
    return pa.table({
        "equipment": pa.array([machine] * n, pa.string()),
        "tag": pa.array([s[1] for s in samples], pa.string()),
        "time": pa.array([s[0] for s in samples], pa.int64()),
        "value": pa.array(numbers, pa.float64()),
        "text": pa.array([v if isinstance(v, str) else None for _, _, v, _ in samples],
                         pa.string()),
        "quality": pa.array([192] * n, pa.int16()),
    })  # fmt: skip


#: CPU seconds of this process in the last ``timed`` call (DuckDB's threads included).
cpu_s = [0.0]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds and result of ``fn()``; its CPU seconds go to ``cpu_s``."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    cpu_s[0] = time.process_time() - cpu
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--step-s", type=float, default=10.0)
    parser.add_argument("--sample", type=int, default=20, help="machines read via the store")
    parser.add_argument(
        "--columnar-only",
        action="store_true",
        help="only the raw scan and the columnar rows (no per-reading Python)",
    )
    args = parser.parse_args()
    step_us = int(args.step_s * 1e6)
    machines = [f"{ENT}/M{i:05d}" for i in range(args.machines)]
    root = Path(tempfile.mkdtemp(prefix="iinode-kpi-bench-"))
    try:
        gen_s, data = timed(lambda: {m: machine_samples(i, args.steps, step_us)
                                     for i, m in enumerate(machines)})  # fmt: skip
        readings = sum(len(s) for s in data.values())
        store = ParquetStore(root)
        table = pa.concat_tables([to_table(m, data[m]) for m in machines])
        write_s, _ = timed(lambda: store.append_table(table))
        end = T0 + args.steps * step_us
        grid, tracker = PeriodGrid(), TrackerSettings()
        print(f"{args.machines} machines x {args.steps} steps x 5 tags = {readings:,} readings "
              f"({(end - T0) / 3.6e9:.1f} h); generated in {gen_s:.1f} s, stored in "
              f"{write_s:.1f} s")  # fmt: skip

        files = [str(p) for p in store.files()]
        db = duckdb.connect()
        scan = f"read_parquet({files!r})"
        print(f"  {'':<24} {'wall':>8}    {'CPU':>8}    {'M readings/CPU s':>16}  "
              "10^8 readings (CPU)")  # fmt: skip

        def report(name: str, seconds: float, cpu: float | None = None) -> None:
            cpu = cpu_s[0] if cpu is None else cpu
            rate = readings / cpu
            print(f"  {name:<24} {seconds:8.2f} s  {cpu:8.2f} s  {rate / 1e6:16.3f}  "
                  f"{1e8 / rate:8.1f} s")  # fmt: skip

        raw_s, counted = timed(lambda: db.execute(
            f"SELECT count(*), sum(value), count(text) FROM {scan}").fetchall())  # fmt: skip
        assert counted[0][0] == readings
        report("duckdb raw scan", raw_s)
        if args.columnar_only:
            columnar_rows(args, store, machines, data, grid, tracker, end, readings, report)
            return
        ordered_s, fetched = timed(lambda: db.execute(
            f"SELECT equipment, epoch_us(time), tag, value, text FROM {scan} "
            "ORDER BY equipment, time, tag").fetchall())  # fmt: skip
        assert len(fetched) == readings
        del fetched
        report("duckdb ordered read", ordered_s)

        def batch() -> Any:
            per_shift: dict[str, list[Any]] = {}
            for m in machines:
                atoms = batch_elements(data[m], grid, T0, end, tracker)
                for period, e in by_period(atoms, grid, PeriodKind.SHIFT).items():
                    per_shift.setdefault(period.label, []).append(e)
            return {label: compute(total(parts)) for label, parts in per_shift.items()}

        batch_s, plant = timed(batch)
        report("kpi compute (batch)", batch_s)
        first = next(iter(plant.values()))
        print(f"    plant, first shift: OEE {first.oee:.3f}, availability "
              f"{first.availability:.3f}, quality {first.quality_ratio:.3f}")  # fmt: skip

        def stream() -> Any:
            s = KpiStream(grid, lateness_us=0)
            feeds = [iter(data[m]) for m in machines]
            for _ in range(args.steps):  # one step of every machine at a time
                for m, it in zip(machines, feeds, strict=True):
                    for _ in range(5):
                        t, tag, value, good = next(it)
                        s.add(m, t, tag, value, good)
            s.flush(end)
            return s

        stream_s, streamed = timed(stream)
        report("kpi compute (stream)", stream_s)
        m0 = machines[0]
        assert streamed.elements(m0, T0, end) == batch_elements(data[m0], grid, T0, end, tracker)

        kpis = columnar_rows(args, store, machines, data, grid, tracker, end, readings, report)
        assert kpis == plant, "the columnar path differs from the tracker"
        settings = KpiWindowSettings()

        sample = machines[: max(1, min(args.sample, len(machines)))]
        store_s, _ = timed(lambda: [machine_atoms(store, m, T0, end, settings) for m in sample])
        scale = len(machines) / len(sample)
        report("store read + compute*", store_s * scale, cpu_s[0] * scale)
        print(f"    * {len(sample)} machines measured ({store_s:.2f} s wall), scaled to "
              f"{len(machines)}")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


def columnar_rows(args: Any, store: ParquetStore, machines: list[str], data: dict[str, Any],
                  grid: PeriodGrid, tracker: TrackerSettings, end: int, readings: int,
                  report: Callable[..., None]) -> Any:  # fmt: skip
    """The columnar scan and the columnar plant KPIs; every 50th machine checked against
    the tracker.  Returns the plant's KPIs per shift."""
    settings = KpiWindowSettings()
    trackers = [settings.tracker(m) for m in machines]
    scan_s, scanned = timed(lambda: store.scan_tags(
        machines, KPI_TAGS, T0 - trackers[0].lookback_us, end, 10**9))  # fmt: skip
    assert scanned.num_rows == readings
    del scanned
    report("columnar: scan", scan_s)

    def columnar() -> Any:
        atoms, left = plant_atoms(store, machines, T0, end, grid, trackers, 10**9)
        assert not left
        per_shift: dict[str, list[Any]] = {}
        for m in machines:
            for period, e in by_period(atoms[m], grid, PeriodKind.SHIFT).items():
                per_shift.setdefault(period.label, []).append(e)
        kpis = {label: compute(total(parts)) for label, parts in per_shift.items()}
        return kpis, atoms

    columnar_s, (kpis, atoms) = timed(columnar)
    report("columnar: plant KPIs", columnar_s)
    for m in machines[:: max(1, len(machines) // 50)]:
        assert atoms[m] == batch_elements(data[m], grid, T0, end, tracker)
    first = next(iter(kpis.values()))
    print(f"    plant, first shift (columnar): OEE {first.oee:.3f}; every 50th machine equal "
          "to the tracker's elements")  # fmt: skip
    return kpis


if __name__ == "__main__":
    main()
