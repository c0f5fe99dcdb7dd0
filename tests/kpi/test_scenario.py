"""A simulated "intelligent transformation": the before/after report shows its effect."""

from __future__ import annotations

from dataclasses import replace

import pytest

from iinode.kpi import (
    CostRates,
    Elements,
    PeriodGrid,
    TrackerSettings,
    batch_elements,
    compare,
    machine_total,
    metrics,
    total,
)
from iinode.telemetry.simulator import Factory

ENT = "88.118.8"
DAY_S = 86_400
RATES = CostRates(energy_per_kwh=0.8, labour_per_hour=30.0, maintenance_per_hour=120.0,
                  material_per_unit=1.5, scrap_per_unit=0.3)  # fmt: skip


def plant(factory: Factory) -> Elements:
    """The plant's elements over one simulated day, computed from its readings."""
    readings = [r for batch in factory.run(DAY_S, 20.0) for r in batch]
    start, end = readings[0].time_us - 20_000_000, readings[-1].time_us + 1
    grid = PeriodGrid()
    parts = []
    for m in factory.machines:
        samples = [(r.time_us, r.tag, r.value, r.quality.is_good) for r in readings
                   if r.equipment == m.spec.id]  # fmt: skip
        atoms = batch_elements(samples, grid, start, end, TrackerSettings())
        parts.append(machine_total(m.spec.id, atoms))
    return total(parts)


def test_transformation_shows_in_the_report() -> None:
    before = Factory.demo(ENT, 4, seed=21)
    after = Factory.demo(ENT, 4, seed=21)
    # less downtime (tools last twice as long, so fewer wear failures), fewer defects
    # (scrap rate 2% to 1.5%) and lower energy (-15% running, -50% idle power)
    after.specs = [
        replace(s, tool_life_min=2 * s.tool_life_min, scrap_rate=0.015,
                power_running_kw=0.85 * s.power_running_kw, power_idle_kw=0.5 * s.power_idle_kw)
        for s in before.specs
    ]  # fmt: skip
    after.__post_init__()
    b, a = plant(before), plant(after)
    assert a.failures < b.failures
    report = {c.metric: c for c in compare(metrics(b, RATES), metrics(a, RATES))}

    efficiency = report["good_units_per_hour"]
    assert efficiency.improved
    assert 2 < efficiency.change_pct < 25  # less downtime: more good parts per planned hour
    defects = report["defect_rate"]
    assert defects.improved
    # the scrap rate fell by a quarter; wear adds scrap, and worn tools are rarer after
    assert -60 < defects.change_pct < -15
    cost = report["operating_cost_per_good_unit"]
    assert cost.improved
    assert -30 < cost.change_pct < -2
    assert report["oee"].improved
    assert report["resource_utilisation"].improved
    assert report["development_cycle_s"].change_pct is None  # no projects recorded
    for change in report.values():
        assert (change.change_pct is None) == (change.statement.endswith("n/a"))
    assert pytest.approx(a.pq) == a.gq + a.sq + a.rq
