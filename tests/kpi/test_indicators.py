"""ISO 22400-2 KPIs on hand-computed worked examples, and their edge cases."""

from __future__ import annotations

import pytest

from iinode.kpi import Elements, compute, total
from iinode.kpi import indicators as k

H = 3_600_000_000  # one hour in µs

#: One 8-hour shift: 6 h running, 0.5 h setup, 1 h down (two failures), 0.5 h waiting;
#: 900 good, 60 scrap, 40 rework (PQ 1000) at a planned 18 s per part; 500 kWh, 450 while
#: running; 1100 parts' worth of material.
SHIFT = Elements(
    apt_us=6 * H, asut_us=H // 2, adet_us=H, adot_us=H // 2, pdot_us=H,
    gq=900, sq=60, rq=40, cm=1100, energy_kwh=500.0, energy_running_kwh=450.0,
    ideal_s=18.0 * 1000, failures=2, ttr_us=H,
)  # fmt: skip


def test_derived_elements() -> None:
    assert SHIFT.pq == 1000
    assert SHIFT.pbt_us == 8 * H  # APT + ASUT + ADET + ADOT
    assert SHIFT.pot_us == 9 * H  # PBT + PDOT
    assert SHIFT.aupt_us == 6.5 * H
    assert SHIFT.aubt_us == 7.5 * H
    assert SHIFT.aoet_us == 8 * H
    assert SHIFT.complete


@pytest.mark.parametrize(
    ("kpi", "expected"),
    [
        (k.availability, 6 / 8),
        (k.effectiveness, 18_000 / 21_600),
        (k.quality_ratio, 0.9),
        (k.oee_index, 0.75 * (18_000 / 21_600) * 0.9),  # 0.5625
        (k.utilisation_efficiency, 6 / 7.5),
        (k.nee_index, 6.5 / 8 * (18_000 / 21_600) * 0.9),  # 0.609375
        (k.throughput_rate, 1000 / 28_800),
        (k.production_process_ratio, 6 / 8),
        (k.scrap_ratio, 0.06),
        (k.rework_ratio, 0.04),
        (k.first_pass_yield, 0.9),
        (k.allocation_ratio, 7.5 / 8),
        (k.allocation_efficiency, 7.5 / 8),
        (k.equipment_load_ratio, 18_000 / 28_800),  # PQ / (PBT / PRI)
        (k.setup_rate, 0.5 / 6.5),
        (k.technical_efficiency, 6 / 7),
        (k.finished_goods_ratio, 900 / 1100),
        (k.energy_per_good_unit, 500 / 900),
        (k.mtbf_s, 6.5 * 3600 / 2),
        (k.mttr_s, 1800.0),
    ],
)
def test_worked_example(kpi: object, expected: float) -> None:
    assert callable(kpi)
    assert kpi(SHIFT) == pytest.approx(expected, rel=1e-12)


def test_compute_gathers_every_kpi() -> None:
    kpis = compute(SHIFT)
    assert kpis.oee == pytest.approx(0.5625)
    assert kpis.nee == pytest.approx(0.609375)
    assert kpis.complete
    assert kpis.issues == ()
    assert kpis.to_json()["mttr_s"] == pytest.approx(1800.0)


def test_zero_planned_time() -> None:
    kpis = compute(Elements(pdot_us=H))  # only planned maintenance
    assert kpis.availability is None
    assert kpis.oee is None
    assert kpis.nee is None
    assert kpis.throughput_rate is None
    assert kpis.technical_efficiency is None
    assert kpis.setup_rate is None
    assert kpis.mtbf_s is None
    assert kpis.mttr_s is None


def test_no_production() -> None:
    kpis = compute(Elements(apt_us=H, adet_us=H, energy_kwh=3.0, energy_running_kwh=2.0))
    assert kpis.availability == 0.5
    assert kpis.effectiveness == 0.0  # ran an hour, made nothing
    assert kpis.quality_ratio is None
    assert kpis.oee is None
    assert kpis.scrap_ratio is None
    assert kpis.energy_per_good_kwh is None
    assert kpis.throughput_rate == 0.0


def test_all_scrap() -> None:
    kpis = compute(Elements(apt_us=H, sq=100, ideal_s=3000.0, energy_kwh=10.0))
    assert kpis.quality_ratio == 0.0
    assert kpis.oee == 0.0
    assert kpis.first_pass_yield == 0.0
    assert kpis.scrap_ratio == 1.0
    assert kpis.energy_per_good_kwh is None  # no good unit to divide by
    assert kpis.effectiveness == pytest.approx(3000 / 3600)


def test_unknown_inputs_give_none() -> None:
    e = Elements(apt_us=H, gq=10, ideal_s=None, energy_kwh=None)
    kpis = compute(e)
    assert kpis.effectiveness is None
    assert kpis.oee is None
    assert kpis.equipment_load_ratio is None
    assert kpis.energy_per_good_kwh is None
    assert kpis.finished_goods_ratio is None
    assert kpis.quality_ratio == 1.0


def test_aggregation_sums_elements_and_never_averages_ratios() -> None:
    # machine A: 1 h planned, all running; machine B: 3 h planned, 1 h running
    a = Elements(apt_us=H, gq=100, ideal_s=1800.0, energy_kwh=1.0, energy_running_kwh=1.0)
    b = Elements(apt_us=H, adet_us=2 * H, gq=50, sq=50, ideal_s=3600.0, energy_kwh=2.0,
                 energy_running_kwh=1.0, failures=1, ttr_us=2 * H)  # fmt: skip
    line = total([a, b])
    assert k.availability(line) == pytest.approx(2 / 4)  # not (1 + 1/3) / 2
    assert k.effectiveness(line) == pytest.approx(5400 / 7200)
    assert k.quality_ratio(line) == pytest.approx(150 / 200)
    assert k.mttr_s(line) == 7200.0
    assert line.energy_kwh == 3.0
    assert total([a, b]) == total([b, a])
    # an unmetered machine makes the sum's energy unknown, not smaller
    assert total([a, Elements(apt_us=H)]).energy_kwh is None
    assert total([]) == Elements()


def test_issues_make_the_sum_incomplete() -> None:
    bad = Elements(apt_us=H, issues=("good_count: dropped from 5 to 1",))
    assert not compute(total([SHIFT, bad])).complete
    assert compute(total([SHIFT, bad])).issues == bad.issues
    assert not Elements(unknown_us=1).complete
