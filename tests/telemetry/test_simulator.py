from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time

from iinode.telemetry.model import Equipment
from iinode.telemetry.simulator import (
    TAGS,
    Factory,
    MachineSpec,
    MachineState,
    Shift,
    ShiftCalendar,
)


def test_same_seed_same_readings_and_machines_are_independent() -> None:
    a = [r for batch in Factory.demo("88.1", 3, seed=7).run(3600, 10) for r in batch]
    b = [r for batch in Factory.demo("88.1", 3, seed=7).run(3600, 10) for r in batch]
    c = [r for batch in Factory.demo("88.1", 3, seed=8).run(3600, 10) for r in batch]
    assert a == b
    assert a != c
    two = [r for batch in Factory.demo("88.1", 2, seed=7).run(3600, 10) for r in batch]
    assert two == [r for r in a if r.equipment != "88.1/M003"]


def test_every_state_occurs_and_counts_grow() -> None:
    factory = Factory.demo("88.1", 2, seed=1)
    states: Counter[str] = Counter()
    for batch in factory.run(2 * 86400, 10):
        states.update(r.value for r in batch if r.tag == "state")  # type: ignore[misc]
    assert set(states) == {s.value for s in MachineState}
    for m in factory.machines:
        assert m.good > 1000
        assert 0 < m.scrap < m.good / 10
        assert m.failures >= 1
        assert m.energy_kwh > 100


def test_wear_drives_temperature_vibration_and_failure() -> None:
    spec = MachineSpec("88.1/M", tool_life_min=120, setup_every=10**9)
    factory = Factory("88.1", [spec], seed=3, calendar=ShiftCalendar())
    fresh: list[float] = []
    worn: list[float] = []
    temps: list[tuple[float, float]] = []
    for _ in factory.run(24 * 3600, 5):
        m = factory.machines[0]
        if m.state is MachineState.RUNNING:
            (fresh if m.wear < 0.2 else worn if m.wear > 0.6 else []).append(m.vibration)
            temps.append((m.wear, m.temperature))
    assert factory.machines[0].failures >= 3
    assert sum(worn) / len(worn) > 1.5 * sum(fresh) / len(fresh)
    hot = [t for w, t in temps if w > 0.6]
    cool = [t for w, t in temps if 0.1 < w < 0.2]
    assert sum(hot) / len(hot) > sum(cool) / len(cool) + 5


def test_shift_calendar() -> None:
    cal = ShiftCalendar.two_shifts()
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    assert cal.working(monday.replace(hour=6))
    assert cal.working(monday.replace(hour=21, minute=59))
    assert not cal.working(monday.replace(hour=22))
    assert not cal.working(datetime(2026, 1, 10, 10, tzinfo=UTC))  # Saturday
    night = ShiftCalendar((Shift(time(22), time(6), frozenset({4})),))  # Friday night
    assert night.working(datetime(2026, 1, 9, 23, tzinfo=UTC))
    assert night.working(datetime(2026, 1, 10, 5, tzinfo=UTC))
    assert not night.working(datetime(2026, 1, 11, 5, tzinfo=UTC))
    assert ShiftCalendar().working(monday)


def test_machines_idle_outside_shifts() -> None:
    factory = Factory.demo("88.1", 1, seed=2)
    factory.start = datetime(2026, 1, 10, 12, tzinfo=UTC)  # Saturday
    readings = factory.step(60)
    values = {r.tag: r.value for r in readings}
    assert values["state"] == "idle"
    assert values["power"] < 3


def test_equipment_records_match_readings() -> None:
    factory = Factory.demo("88.118.8", 2)
    eqs = factory.equipment("opcua", "opc.tcp://127.0.0.1:4840")
    assert all(isinstance(e, Equipment) and e.tags == TAGS for e in eqs)
    assert eqs[0].line == "88.118.8/LINE-1"
    readings = factory.step(10)
    assert {(r.equipment, r.tag) for r in readings} == {(e.id, t.name) for e in eqs for t in TAGS}
    assert all(t.data_type.accepts(r.value) for r in readings for t in TAGS if t.name == r.tag)
