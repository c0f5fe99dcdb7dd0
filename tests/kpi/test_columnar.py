"""The columnar batch path gives exactly the tracker's elements, on clean and messy data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from iinode.errors import ValueInvalid
from iinode.kpi import PeriodKind, UnitState
from iinode.telemetry.kpi_columnar import plant_atoms
from iinode.telemetry.kpi_window import KpiWindowSettings, machine_atoms, scope_elements
from iinode.telemetry.model import Equipment, EquipmentKind, Reading, Tag
from iinode.telemetry.simulator import TAGS, Factory
from iinode.telemetry.store import ParquetStore

ENT = "88.118.8"
T0 = 1_767_592_800_000_000  # 2026-01-05T06:00:00Z
S = 1_000_000


def messy(machine: str, seed: int, steps: int = 1500) -> list[Reading]:
    """Readings every 10 s with resets, 2^16 rollovers, duplicates, gaps and silences."""
    rng = random.Random(seed)
    out: list[Reading] = []
    good, scrap, rework, consumed, energy = rng.randrange(65_000, 65_536), 0, 0, 0, 0.0
    state = "running"
    for i in range(steps):
        t = T0 - 600 * S + i * 10 * S + rng.choice((0, 0, 0, 1))
        if rng.random() < 0.01:
            continue  # a missed step
        if 400 <= i < 500 and seed % 2:
            continue  # a silence longer than max_hold and max_gap
        if rng.random() < 0.03:
            state = rng.choice([s.value for s in UnitState])
        if state == "running":
            good = (good + rng.choice((0, 1, 1, 2))) % 65_536
            scrap += rng.random() < 0.05
            rework += rng.random() < 0.02
            consumed += 1
        if rng.random() < 0.003:
            good = 3  # a reset
        energy += rng.uniform(0.01, 0.05) if state == "running" else 0.002
        if rng.random() < 0.002:
            energy = 0.5  # a meter replaced
        batch = [
            Reading(machine, "state", t, state),
            Reading(machine, "good_count", t, good),
            Reading(machine, "scrap_count", t, scrap),
            Reading(machine, "rework_count", t, rework),
            Reading(machine, "consumed_count", t, consumed),
            Reading(machine, "energy", t, round(energy, 4)),
            Reading(machine, "cycle_time", t, round(rng.uniform(9.5, 11), 3)),
        ]
        if rng.random() < 0.2:
            batch.append(batch[rng.randrange(len(batch))])  # an identical duplicate
        out += batch
    rng.shuffle(out)
    return out


def _item(machine: str, tags: tuple[Tag, ...] = TAGS) -> Equipment:
    return Equipment(id=machine, kind=EquipmentKind.MACHINE, tags=tags)


def test_columnar_equals_tracker_on_messy_data(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    items = [_item(f"{ENT}/M{i:02d}") for i in range(6)]
    for i, item in enumerate(items):
        readings = messy(item.id, i)
        store.append(readings[: len(readings) // 2])
        store.append(readings[len(readings) // 2 :])  # two files, out of time order
    settings = KpiWindowSettings(max_hold_s=300)
    grid = settings.grid
    start, end = T0, T0 + 4 * 3600 * S
    trackers = [settings.tracker(e.id, e) for e in items]
    atoms, fallback = plant_atoms(store, [e.id for e in items], start, end, grid, trackers, 10**7)
    assert fallback == []
    issues = 0
    for item in items:
        expected = machine_atoms(store, item.id, start, end, settings, item)
        got = atoms[item.id]
        assert got == expected
        assert [e.to_json() for e in got.values()] == [e.to_json() for e in expected.values()]
        issues += sum(len(e.issues) for e in got.values())
    assert issues > 10  # resets, gaps and unknown time were all marked
    text = " ".join(i for e in atoms[items[1].id].values() for i in e.issues)
    assert "a reset" in text
    assert "no state known" in text
    assert "no earlier reading" in text


def test_columnar_equals_tracker_on_the_simulator(tmp_path: Path) -> None:
    factory = Factory.demo(ENT, 3, seed=4)
    store = ParquetStore(tmp_path)
    store.append([r for batch in factory.run(20 * 3600, 20.0) for r in batch])
    settings = KpiWindowSettings()
    items = factory.equipment()
    start, end = T0 + 3600 * S, T0 + 19 * 3600 * S
    atoms, fallback = plant_atoms(
        store,
        [e.id for e in items],
        start,
        end,
        settings.grid,
        [settings.tracker(e.id, e) for e in items],
        10**7,
    )
    assert fallback == []
    for item in items:
        expected = machine_atoms(store, item.id, start, end, settings, item)
        assert atoms[item.id] == expected
        assert sum(e.gq for e in expected.values()) > 0


def test_machines_the_fast_path_does_not_model_go_to_the_tracker(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    a, b, c = (f"{ENT}/M{i}" for i in range(3))
    store.append([
        Reading(a, "state", T0, "running"), Reading(a, "good_count", T0, 1),
        Reading(a, "good_count", T0 + 10 * S, 5),
        Reading(b, "state", T0, "running"), Reading(b, "good_count", T0 + 10 * S, 5),
        Reading(b, "good_count", T0 + 10 * S, 6),  # conflicting readings
        Reading(c, "state", T0, "dancing"),  # an unknown state
    ])  # fmt: skip
    settings = KpiWindowSettings()
    items = [_item(x) for x in (a, b, c)]
    atoms, fallback = plant_atoms(store, [e.id for e in items], T0, T0 + 60 * S, settings.grid,
                                  [settings.tracker(e.id, e) for e in items], 10**7)  # fmt: skip
    assert fallback == [b, c]
    assert sum(e.gq for e in atoms[a].values()) == 4
    # the scope computation uses both paths and agrees with the tracker everywhere
    rows = scope_elements(store, items, T0, T0 + 60 * S, settings, PeriodKind.SHIFT)
    ((_, e),) = rows
    assert e.gq == 4 + 1  # b: 5 -> 6 counted once after the conflict
    assert any("conflicting" in i for i in e.issues)
    assert any("dancing" in i for i in e.issues)


def test_an_empty_store_gives_no_atoms(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    settings = KpiWindowSettings()
    item = _item(f"{ENT}/M0")
    atoms, fallback = plant_atoms(store, [item.id], T0, T0 + S, settings.grid,
                                  [settings.tracker(item.id, item)], 10**7)  # fmt: skip
    assert atoms == {item.id: {}}
    assert fallback == []


@pytest.mark.parametrize("seed", [11, 12])
def test_columnar_per_shift_sums_equal_the_tracker(tmp_path: Path, seed: int) -> None:
    store = ParquetStore(tmp_path)
    item = _item(f"{ENT}/M{seed}")
    store.append(messy(item.id, seed, 3000))
    settings = KpiWindowSettings(max_hold_s=60, max_gap_s=120)
    start, end = T0 + 1800 * S, T0 + 8 * 3600 * S
    atoms, _ = plant_atoms(store, [item.id], start, end, settings.grid,
                           [settings.tracker(item.id, item)], 10**7)  # fmt: skip
    assert atoms[item.id] == machine_atoms(store, item.id, start, end, settings, item)


def test_a_scan_covers_one_prefix_and_at_most_eight_tags(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    with pytest.raises(ValueInvalid):
        store.scan_tags([f"{ENT}/M1", "88.200/M1"], ["state"], T0, T0 + S, 10)
    with pytest.raises(ValueInvalid):
        store.scan_tags([f"{ENT}/M1"], [f"t{i}" for i in range(9)], T0, T0 + S, 10)
    store.append([Reading(f"{ENT}/M1", "state", T0 + i, "running") for i in range(5)])
    assert store.scan_tags([f"{ENT}/M1"], ["state"], T0, T0 + S, 5).num_rows == 5
    with pytest.raises(ValueInvalid):
        store.scan_tags([f"{ENT}/M1"], ["state"], T0, T0 + S, 4)
