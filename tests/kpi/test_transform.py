"""The five transformation metrics, worked by hand, and the before/after report."""

from __future__ import annotations

import pytest

from iinode.errors import ValueInvalid
from iinode.kpi import (
    CostRates,
    DevelopmentEvent,
    DevelopmentEventKind,
    Elements,
    compare,
    development_cycles,
    mean_development_cycle_s,
    metrics,
)
from iinode.kpi.transform import Better, change, operating_cost

H = 3_600_000_000
DAY = 24 * H

#: 8 h planned busy (6 running, 1 down after 2 failures, 1 setup) and 1 h maintenance;
#: 800 good, 100 scrap, 100 rework; 400 kWh, 300 of it while running.
PERIOD = Elements(
    apt_us=6 * H, asut_us=H, adet_us=H, pdot_us=H, gq=800, sq=100, rq=100,
    energy_kwh=400.0, energy_running_kwh=300.0, ideal_s=1000 * 18.0, failures=2, ttr_us=H,
)  # fmt: skip
RATES = CostRates(
    energy_per_kwh=0.5, labour_per_hour=40.0, maintenance_per_hour=100.0,
    maintenance_per_failure=50.0, material_per_unit=2.0, scrap_per_unit=0.5, rework_per_unit=1.0,
)  # fmt: skip


def test_worked_metrics() -> None:
    m = metrics(PERIOD, RATES, development_cycle_s=90 * 86_400.0)
    assert m.good_units_per_hour == pytest.approx(800 / 8)
    assert m.oee == pytest.approx(6 / 8 * 18_000 / 21_600 * 0.8)
    assert m.equipment_utilisation == pytest.approx(6 / 9)  # APT / POT
    assert m.material_yield == pytest.approx(0.8)  # GQ / PQ without a material counter
    assert m.energy_yield == pytest.approx(0.75)
    assert m.resource_utilisation == pytest.approx((6 / 9 * 0.8 * 0.75) ** (1 / 3))
    # 200 energy + 320 labour + 100 + 100 maintenance + 2000 material + 50 scrap + 100 rework
    assert operating_cost(PERIOD, RATES) == pytest.approx(2870.0)
    assert m.operating_cost_per_good_unit == pytest.approx(2870 / 800)
    assert m.defect_rate == pytest.approx(0.2)
    assert m.development_cycle_s == 90 * 86_400.0
    assert metrics(Elements(apt_us=H, gq=9, sq=1, cm=20)).material_yield == pytest.approx(9 / 20)


def test_unmetered_energy_with_a_price_has_no_cost() -> None:
    e = Elements(apt_us=H, gq=10, energy_kwh=None)
    assert metrics(e, RATES).operating_cost_per_good_unit is None
    assert metrics(e, CostRates(labour_per_hour=10)).operating_cost_per_good_unit == 1.0
    assert metrics(e).energy_yield is None
    assert metrics(e).resource_utilisation is None


def test_empty_period() -> None:
    m = metrics(Elements())
    assert m.good_units_per_hour is None
    assert m.defect_rate is None
    assert m.operating_cost_per_good_unit is None


@pytest.mark.parametrize("bad", [{"energy_per_kwh": -1}, {"labour_per_hour": float("nan")},
                                 {"scrap_per_unit": True}])  # fmt: skip
def test_cost_rates_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueInvalid):
        CostRates(**bad)


def test_development_cycle_from_events() -> None:
    ev = DevelopmentEvent
    events = [
        ev("P1", DevelopmentEventKind.PROJECT_START, 0),
        ev("P1", DevelopmentEventKind.DESIGN_FREEZE, 30 * DAY),
        ev("P1", DevelopmentEventKind.FIRST_GOOD_LOT, 100 * DAY),
        ev("P1", DevelopmentEventKind.FIRST_GOOD_LOT, 120 * DAY),  # a later lot: not first
        ev("P2", DevelopmentEventKind.PROJECT_START, 10 * DAY),
        ev("P2", DevelopmentEventKind.FIRST_GOOD_LOT, 70 * DAY),
        ev("P3", DevelopmentEventKind.PROJECT_START, 50 * DAY),  # not finished
        ev("P4", DevelopmentEventKind.FIRST_GOOD_LOT, 5 * DAY),  # no recorded start
    ]
    assert development_cycles(events) == {"P1": (100 * DAY, 100 * DAY), "P2": (70 * DAY, 60 * DAY)}
    assert mean_development_cycle_s(events, 0, 200 * DAY) == pytest.approx(80 * 86_400)
    assert mean_development_cycle_s(events, 0, 80 * DAY) == pytest.approx(60 * 86_400)
    assert mean_development_cycle_s(events, 200 * DAY, 300 * DAY) is None
    with pytest.raises(ValueInvalid):
        DevelopmentEvent("", DevelopmentEventKind.PROJECT_START, 0)
    with pytest.raises(ValueError, match="first_bad_lot"):
        DevelopmentEvent("P5", "first_bad_lot", 0)  # type: ignore[arg-type]


def test_before_after_report_sign_convention() -> None:
    before = metrics(PERIOD, RATES, development_cycle_s=100.0)
    better = Elements(
        apt_us=7 * H, asut_us=H // 2, adet_us=H // 2, pdot_us=H, gq=950, sq=40, rq=10,
        energy_kwh=380.0, energy_running_kwh=330.0, ideal_s=1000 * 18.0, failures=1, ttr_us=H // 2,
    )  # fmt: skip
    after = metrics(better, RATES, development_cycle_s=72.0)
    report = {c.metric: c for c in compare(before, after)}
    pe = report["good_units_per_hour"]
    assert pe.change_pct == pytest.approx((950 - 800) / 800 * 100)
    assert pe.statement == "production efficiency +18.8%"
    assert pe.improved is True
    assert pe.better is Better.HIGHER
    dr = report["defect_rate"]
    assert dr.change_pct == pytest.approx((0.05 - 0.2) / 0.2 * 100)
    assert dr.statement == "defect rate \u221275.0%"
    assert dr.improved is True  # lower is better
    dc = report["development_cycle_s"]
    assert dc.statement == "development cycle \u221228.0%"
    assert dc.improved is True
    assert report["operating_cost_per_good_unit"].improved is True
    assert report["resource_utilisation"].improved is True
    # worse: a lower-is-better metric that went up
    worse = change("defect_rate", "defect rate", Better.LOWER, 0.1, 0.12)
    assert worse.improved is False
    assert worse.statement == "defect rate +20.0%"
    assert change("x", "x", Better.HIGHER, 0.0, 5.0).change_pct is None
    assert change("x", "x", Better.HIGHER, None, 5.0).statement == "x n/a"
    assert change("x", "x", Better.HIGHER, 2.0, 2.0).improved is None
