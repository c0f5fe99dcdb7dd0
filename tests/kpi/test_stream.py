"""Live (streaming) and batch KPIs give the same numbers on the same readings."""

from __future__ import annotations

import random
from pathlib import Path

from iinode.kpi import PeriodKind, compute, total
from iinode.telemetry.kpi_columnar import plant_atoms
from iinode.telemetry.kpi_window import KpiWindowSettings, LiveKpis, machine_atoms
from iinode.telemetry.model import Reading
from iinode.telemetry.simulator import Factory
from iinode.telemetry.store import ParquetStore

ENT = "88.118.8"


def test_stream_equals_batch_from_the_store(tmp_path: Path) -> None:
    factory = Factory.demo(ENT, 2, seed=5)
    readings: list[Reading] = []
    for batch in factory.run(18 * 3600, 10.0):  # 06:00 to 24:00: two shifts and a part
        readings += batch
    store = ParquetStore(tmp_path)
    store.append(readings)

    settings = KpiWindowSettings()
    live = LiveKpis(settings, lateness_s=30.0)
    # arrival order: shuffled within 20 s, as a broker and several connectors deliver
    rng = random.Random(7)
    arrival = sorted(readings, key=lambda r: r.time_us + rng.randrange(20_000_000))
    for i in range(0, len(arrival), 500):
        live.observe(arrival[i : i + 500])
    grid = settings.grid
    end = readings[-1].time_us + 1
    live.stream.flush(end)

    first = grid.atom_start(readings[0].time_us)
    shifts = grid.periods(PeriodKind.SHIFT, first, end)
    assert len(shifts) == 3
    compared = 0
    for machine in factory.machines:
        for shift in shifts:
            streamed = live.stream.elements(machine.spec.id, shift.start_us, shift.end_us)
            batch = machine_atoms(store, machine.spec.id, shift.start_us, shift.end_us, settings)
            assert streamed == batch  # exactly: same elements, same issues
            columnar, left = plant_atoms(
                store,
                [machine.spec.id],
                shift.start_us,
                shift.end_us,
                grid,
                [settings.tracker(machine.spec.id)],
                10**7,
            )
            assert not left
            assert columnar[machine.spec.id] == streamed  # the columnar batch path too
            assert compute(total(batch.values())) == compute(total(streamed.values()))
            compared += len(batch)
        afternoon = machine_atoms(store, machine.spec.id, shifts[1].start_us, shifts[1].end_us,
                                  settings)  # fmt: skip
        (elements,) = afternoon.values()
        assert elements.complete, elements.issues
        assert elements.gq > 0
        assert elements.apt_us > 0
    assert compared >= 6
    assert live.stream.late == 0


def test_live_window_fills_as_data_arrives() -> None:
    factory = Factory.demo(ENT, 1, seed=2)
    live = LiveKpis(KpiWindowSettings(), lateness_s=0.0)
    grid = live.settings.grid
    shift = None
    good = []
    for batch in factory.run(3600, 10.0):
        live.observe(batch)
        now = batch[0].time_us
        shift = shift or grid.period_of(PeriodKind.SHIFT, now)
        good.append(live.stream.period([factory.machines[0].spec.id], shift, now + 1).gq)
    assert good[-1] > good[len(good) // 2] > 0
    assert good == sorted(good)  # counts only grow while the shift runs


def test_stream_forgets_atoms_past_its_retention() -> None:
    from iinode.kpi import KpiStream, PeriodGrid

    stream = KpiStream(PeriodGrid(), lateness_us=0, retain_us=2 * 86_400_000_000)
    t0, step, day = 1_767_592_800_000_000, 600_000_000, 86_400_000_000
    for i in range(144 * 60):  # 60 days, a sample every 10 minutes
        stream.add("88.118.8/M1", t0 + i * step, "state", "running")
        stream.add("88.118.8/M1", t0 + i * step, "good_count", i)
    atoms = stream.machines["88.118.8/M1"].tracker.atoms
    assert len(atoms) <= 64 + 3
    assert min(atoms) >= t0 + 60 * day - 3 * day - 64 * 8 * 3_600_000_000
    recent = stream.elements("88.118.8/M1", t0 + 58 * day, t0 + 59 * day)
    assert sum(e.gq for e in recent.values()) == 144
