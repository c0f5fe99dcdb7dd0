"""One machine's readings to elements: a worked shift, and bad input marked, never hidden."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from iinode.errors import ValueInvalid
from iinode.kpi import (
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
from iinode.kpi.periods import to_us

S = 1_000_000
T0 = to_us(datetime(2026, 1, 5, 6, 0, tzinfo=UTC))  # a shift start
GRID = PeriodGrid()
HOLD = TrackerSettings(max_hold_us=3600 * S)


def at(seconds: float) -> int:
    return T0 + int(seconds * S)


def shift() -> list[Sample]:
    """40 min: 10 running, 5 setup, 10 running, 10 down, 5 running, then idle."""
    out: list[Sample] = []
    plan = [(0, "running"), (600, "setup"), (900, "running"), (1500, "down"), (2100, "running"),
            (2400, "idle")]  # fmt: skip
    out += [(at(t), "state", s, True) for t, s in plan]
    counts = [(-60, 100, 3, 50.0), (0, 100, 3, 50.0), (600, 118, 4, 52.5), (1500, 138, 4, 55.5),
              (2100, 138, 4, 55.8), (2400, 150, 5, 56.0)]  # fmt: skip
    for t, good, scrap, energy in counts:
        out += [(at(t), "good_count", good, True), (at(t), "scrap_count", scrap, True),
                (at(t), "energy", energy, True)]  # fmt: skip
    out += [(at(10), "cycle_time", 31.0, True), (at(950), "cycle_time", 30.0, True)]
    out.append((at(960), "cycle_time", 1.0, False))  # bad quality: not used
    return out


def one(samples: list[Sample], end_s: float = 2400, settings: TrackerSettings = HOLD) -> object:
    return total(batch_elements(samples, GRID, T0, at(end_s), settings).values())


def test_worked_shift() -> None:
    e = one(shift(), 2460)
    assert e.apt_us == (600 + 600 + 300) * S
    assert e.asut_us == 300 * S
    assert e.adet_us == 600 * S
    assert e.ttr_us == 600 * S
    assert e.failures == 1
    assert (e.adot_us, e.pdot_us, e.unknown_us) == (0, 0, 0)
    assert (e.gq, e.sq, e.rq, e.pq) == (50, 2, 0, 52)
    assert e.energy_kwh == pytest.approx(6.0)
    # each increase goes to the state just before its reading: 0.3 kWh came while down
    assert e.energy_running_kwh == pytest.approx(5.7)
    assert e.ideal_s == pytest.approx(30.0 * 52)  # PRI: the shortest good cycle
    assert e.complete, e.issues
    k = compute(e)
    assert k.availability == pytest.approx(1500 / 2400)
    assert k.effectiveness == pytest.approx(1560 / 1500)
    assert k.quality_ratio == pytest.approx(50 / 52)
    assert k.mtbf_s == pytest.approx(1800.0)
    assert k.mttr_s == pytest.approx(600.0)


def test_planned_runtime_from_settings() -> None:
    pri = TrackerSettings(max_hold_us=3600 * S, pri_s=25.0)
    assert one(shift(), 2460, pri).ideal_s == pytest.approx(25.0 * 52)


def test_states_hold_at_most_max_hold() -> None:
    e = one([(at(0), "state", "running", True), (at(1000), "state", "idle", True)], 1000,
            TrackerSettings(max_hold_us=300 * S))  # fmt: skip
    assert e.apt_us == 300 * S
    assert e.unknown_us == 700 * S
    assert not e.complete
    assert any("no state known from 2026-01-05T06:05:00Z" in i for i in e.issues)


def test_time_before_the_first_state_is_unknown() -> None:
    e = one([(at(120), "state", "running", True)], 600)
    assert e.unknown_us == 120 * S
    assert e.apt_us == 480 * S


@pytest.mark.parametrize("bad", [("warp-drive", True), ("running", False), (7, True)])
def test_bad_or_invalid_state_is_unknown_time(bad: tuple[object, bool]) -> None:
    value, good = bad
    samples = [(at(0), "state", "running", True), (at(100), "state", value, good),
               (at(400), "state", "running", True)]  # fmt: skip
    e = one(samples, 600)
    assert e.apt_us == 300 * S
    assert e.unknown_us == 300 * S
    assert not e.complete


def counter(*points: tuple[float, object]) -> list[Sample]:
    base = [(at(0), "state", "running", True), (at(-60), "good_count", points[0][1], True)]
    return base + [(at(t), "good_count", v, True) for t, v in points]


def test_counter_reset_is_counted_from_zero_and_marked() -> None:
    e = one(counter((0, 100), (60, 120), (120, 5), (180, 9)), 600)
    assert e.gq == 20 + 5 + 4
    assert not e.complete
    assert any("good_count: dropped from 120 to 5" in i for i in e.issues)


@pytest.mark.parametrize("modulus", [1 << 16, 1 << 32, 1 << 64])
def test_counter_rollover_is_exact(modulus: int) -> None:
    e = one(counter((0, modulus - 6), (60, modulus - 1), (120, 4)), 600)
    assert e.gq == 5 + 5
    assert e.complete, e.issues


def test_float_counter_drop_is_a_reset_not_a_rollover() -> None:
    samples = [(at(0), "state", "running", True), (at(0), "energy", 65530.0, True),
               (at(60), "energy", 2.0, True)]  # fmt: skip
    e = one(samples, 600)
    assert e.energy_kwh == 2.0
    assert not e.complete


def test_identical_duplicates_are_dropped_conflicts_marked() -> None:
    e = one(counter((0, 0), (60, 10), (60, 10), (120, 20)), 600)
    assert e.gq == 20
    assert e.complete
    e = one(counter((0, 0), (60, 10), (60, 12), (120, 20)), 600)
    assert e.gq == 20
    assert any("conflicting readings" in i for i in e.issues)


def test_first_counter_reading_without_history() -> None:
    assert one(counter((0, 0), (60, 10)), 600).complete  # a counter starting at zero
    e = one([(at(0), "state", "running", True), (at(60), "good_count", 500, True),
             (at(120), "good_count", 510, True)], 600)  # fmt: skip
    assert e.gq == 10
    assert not e.complete
    assert any("its increase up to 500 is not counted" in i for i in e.issues)


def test_counter_gap_longer_than_max_gap() -> None:
    gap = TrackerSettings(max_hold_us=3600 * S, max_gap_us=600 * S)
    e = one(counter((0, 0), (60, 10), (1000, 90)), 1200, gap)
    assert e.gq == 10
    assert not e.complete


def test_invalid_counter_values_are_marked() -> None:
    e = one(counter((0, 0), (60, -5), (120, "many"), (180, 7)), 600)
    assert e.gq == 7
    assert sum("invalid reading" in i for i in e.issues) == 2


def test_counts_book_to_the_atom_of_their_reading() -> None:
    late = T0 + 8 * 3600 * S  # the next shift starts
    samples = [(T0 - 60 * S, "state", "running", True), (late - 60 * S, "good_count", 0, True),
               (late + 60 * S, "good_count", 10, True)]  # fmt: skip
    atoms = batch_elements(samples, GRID, T0, late + 3600 * S, HOLD)
    shifts = by_period(atoms, GRID, PeriodKind.SHIFT)
    assert [p.label for p in shifts] == ["2026-01-05/06:00", "2026-01-05/14:00"]
    first, second = shifts.values()
    assert first.gq == 0
    assert second.gq == 10
    assert first.apt_us == 3540 * S  # the sample before the period held into it
    assert second.apt_us == 0
    assert second.unknown_us > 0


def test_clock_change_across_a_shift_boundary() -> None:
    """Night shift 22:00-06:00 local over the spring change in Berlin is 7 h, not 8."""
    grid = PeriodGrid("Europe/Berlin", (time(6), time(14), time(22)))
    start = to_us(datetime(2026, 3, 28, 21, 0, tzinfo=UTC))  # 22:00 CET
    end = to_us(datetime(2026, 3, 29, 4, 0, tzinfo=UTC))  # 06:00 CEST
    night = grid.period_of(PeriodKind.SHIFT, start + S)
    assert (night.label, night.start_us, night.end_us) == ("2026-03-28/22:00", start, end)
    day = grid.period_of(PeriodKind.DAY, end)
    assert day.end_us - day.start_us == 23 * 3600 * S
    samples: list[Sample] = []
    for i in range(0, 9 * 3600, 60):  # running, a sample a minute, 20:00 to 05:00 UTC
        t = start - 3600 * S + i * S
        samples += [(t, "state", "running", True), (t, "good_count", i // 60, True)]
    atoms = batch_elements(samples, grid, start - 3600 * S, end + 3600 * S, TrackerSettings())
    shifts = by_period(atoms, grid, PeriodKind.SHIFT)
    got = {p.label: e for p, e in shifts.items()}
    assert got["2026-03-28/22:00"].apt_us == 7 * 3600 * S
    assert got["2026-03-28/22:00"].gq == 7 * 60
    assert got["2026-03-28/14:00"].apt_us == 3600 * S
    # a device clock set back ten minutes: its readings arrive late to the stream
    stream = KpiStream(grid, lateness_us=5 * S)
    for t, tag, value, good in samples:
        step_back = 600 * S if start + 3600 * S <= t < start + 3700 * S else 0
        stream.add("88.118.8/M1", t - step_back, tag, value, good)
    stream.flush(end + 3600 * S)
    streamed = total(stream.elements("88.118.8/M1", start, end).values())
    assert stream.late > 0
    assert not streamed.complete
    assert any("arrived too late" in i for i in streamed.issues)


def test_grid_and_settings_validation() -> None:
    with pytest.raises(ValueInvalid):
        PeriodGrid("Mars/Olympus")
    with pytest.raises(ValueInvalid):
        PeriodGrid(shift_starts=())
    with pytest.raises(ValueInvalid):
        TrackerSettings(max_hold_us=0)
    with pytest.raises(ValueInvalid):
        TrackerSettings(pri_s=-1.0)
    weeks = GRID.periods(PeriodKind.WEEK, T0, T0 + 8 * 86_400 * S)
    assert [w.label for w in weeks] == ["2026-W02", "2026-W03"]
