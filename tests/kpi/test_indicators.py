"""ISO 22400-2 KPIs: hand-computed examples, validation, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iinode.errors import ValueInvalid
from iinode.kpi import (
    Quantities,
    TimeModel,
    WorkUnitPeriod,
    availability,
    compute,
    effectiveness,
    oee_index,
    quality_ratio,
)


def test_hand_computed_shift() -> None:
    # 8 h planned busy: 6.5 h producing, 0.5 h setup, 1 h down; ideal cycle 30 s;
    # 700 parts made, 665 good, 35 scrap; 98 kWh drawn.
    time = TimeModel(8 * 3600, 6.5 * 3600, 0.5 * 3600, 3600)
    period = WorkUnitPeriod(time, Quantities(700, 665, 35), 30.0, 98.0)
    k = compute(period)
    assert k.availability == pytest.approx(6.5 / 8)  # 0.8125
    assert k.effectiveness == pytest.approx(30 * 700 / 23400)  # 0.897435...
    assert k.quality_ratio == pytest.approx(0.95)
    assert k.oee == pytest.approx(0.8125 * (21000 / 23400) * 0.95)  # 0.69270...
    assert k.oee == pytest.approx(0.692708, abs=1e-6)
    assert k.scrap_ratio == pytest.approx(0.05)
    assert k.energy_per_good_kwh == pytest.approx(98 / 665)


def test_rework_counts_in_produced_but_not_good_or_scrap() -> None:
    k = compute(WorkUnitPeriod(TimeModel(100, 100), Quantities(10, 7, 1), 10.0))
    assert (k.quality_ratio, k.scrap_ratio, k.effectiveness) == (0.7, 0.1, 1.0)
    assert Quantities.of(7, 3) == Quantities(10, 7, 3)


def test_zero_denominators_give_none() -> None:
    idle = compute(WorkUnitPeriod(TimeModel(0, 0), Quantities(0, 0), 30.0, 1.5))
    assert idle.availability is None
    assert idle.effectiveness is None
    assert idle.quality_ratio is None
    assert idle.oee is None
    assert idle.scrap_ratio is None
    assert idle.energy_per_good_kwh is None
    down = compute(WorkUnitPeriod(TimeModel(3600, 0, 0, 3600), Quantities(0, 0), 30.0))
    assert down.availability == 0.0
    assert down.effectiveness is None
    assert down.oee is None
    no_pri = compute(WorkUnitPeriod(TimeModel(10, 10), Quantities(1, 1)))
    assert no_pri.effectiveness is None
    assert no_pri.oee is None
    assert no_pri.availability == 1.0
    assert oee_index(0.5, None, 1.0) is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: TimeModel(-1, 0),
        lambda: TimeModel(10, -0.5),
        lambda: TimeModel(10, 5, 4, 2),  # 11 s of parts in 10 s
        lambda: TimeModel(math.nan, 0),
        lambda: TimeModel(math.inf, 1),
        lambda: TimeModel("10", 1),  # type: ignore[arg-type]
        lambda: Quantities(5, 6),  # GQ > PQ
        lambda: Quantities(5, 3, 3),  # GQ + SQ > PQ
        lambda: Quantities(-1, 0),
        lambda: Quantities(1.5, 1),  # type: ignore[arg-type]
        lambda: Quantities.of(-2, 1),
        lambda: WorkUnitPeriod(TimeModel(1, 1), Quantities(1, 1), 0.0),
        lambda: WorkUnitPeriod(TimeModel(1, 1), Quantities(1, 1), -3.0),
        lambda: WorkUnitPeriod(TimeModel(1, 1), Quantities(1, 1), 1.0, -1.0),
        lambda: WorkUnitPeriod(TimeModel(1, 1), Quantities(1, 1), 1.0, math.nan),
    ],
)
def test_invalid_inputs_are_refused(build: object) -> None:
    with pytest.raises(ValueInvalid):
        build()  # type: ignore[operator]


seconds = st.floats(0, 1e6, allow_nan=False)


@st.composite
def consistent_periods(draw: st.DrawFn) -> WorkUnitPeriod:
    """A period whose parts took at least their ideal time: PRI x PQ <= APT."""
    production = draw(seconds)
    setup, down, spare = draw(seconds), draw(seconds), draw(seconds)
    pri = draw(st.floats(0.1, 600))
    produced = draw(st.integers(0, int(production // pri)))
    good = draw(st.integers(0, produced))
    scrap = draw(st.integers(0, produced - good))
    time = TimeModel(production + setup + down + spare, production, setup, down)
    return WorkUnitPeriod(time, Quantities(produced, good, scrap), pri, draw(seconds))


@given(consistent_periods())
def test_ratios_lie_in_the_unit_interval_and_oee_is_their_product(period: WorkUnitPeriod) -> None:
    k = compute(period)
    for ratio in (k.availability, k.effectiveness, k.quality_ratio, k.oee, k.scrap_ratio):
        assert ratio is None or 0.0 <= ratio <= 1.0 + 1e-9
    q = period.quantities
    assert k.availability == availability(period.time)
    pri = period.planned_runtime_per_item_s
    assert k.effectiveness == effectiveness(period.time, q.produced, pri)
    assert k.quality_ratio == quality_ratio(q)
    if None in (k.availability, k.effectiveness, k.quality_ratio):
        assert k.oee is None
    else:
        assert k.oee == pytest.approx(k.availability * k.effectiveness * k.quality_ratio)  # type: ignore[operator]
    if k.quality_ratio is not None and k.scrap_ratio is not None:
        assert k.quality_ratio + k.scrap_ratio <= 1.0 + 1e-9
