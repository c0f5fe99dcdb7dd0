"""Carry-in: a state reported only when it changes is known from a period's start, and
quantity made in unknown state time never inflates effectiveness (stream and batch)."""

from __future__ import annotations

from pathlib import Path

from iinode.kpi import Elements, KpiStream, Period, PeriodKind, compute, machine_total
from iinode.kpi.indicators import effectiveness, equipment_load_ratio, oee_index
from iinode.telemetry.kpi_columnar import plant_atoms
from iinode.telemetry.kpi_window import KpiWindowSettings, LiveKpis, machine_atoms
from iinode.telemetry.model import Equipment, EquipmentKind, Reading
from iinode.telemetry.simulator import TAGS
from iinode.telemetry.store import ParquetStore

ENT = "88.118.8"
T0 = 1_767_592_800_000_000  # 2026-01-05T06:00:00Z, a shift start
S = 1_000_000
HOUR = 3600 * S
RUNNING = f"{ENT}/RUNNING"  # its only state reading: running, 3 h before the window
BLIND = f"{ENT}/BLIND"  # counters, never a state


def readings() -> list[Reading]:
    out = [Reading(RUNNING, "state", T0 - 3 * HOUR, "running")]
    for machine in (RUNNING, BLIND):
        for good, t in enumerate(range(T0 - 3 * HOUR, T0 + HOUR, 20 * S)):  # a part / 20 s
            out += [Reading(machine, "good_count", t, good),
                    Reading(machine, "cycle_time", t, 18.0)]  # fmt: skip
    return out


def paths(tmp_path: Path) -> dict[str, dict[str, Elements]]:
    """Each machine's elements over the window ``[T0, T0 + 1 h)``: from the live stream,
    from the tracker over the store and from the columnar scan."""
    data = readings()
    settings = KpiWindowSettings()
    items = [Equipment(id=e, kind=EquipmentKind.MACHINE, tags=TAGS) for e in (BLIND, RUNNING)]
    stream = KpiStream(settings.grid, lambda e: settings.tracker(e, items[0]))
    for r in data:
        stream.add(r.equipment, r.time_us, r.tag, r.value)
    stream.flush(T0 + HOUR)
    store = ParquetStore(tmp_path)
    store.append(data)
    start, end = T0, T0 + HOUR
    columnar, left = plant_atoms(store, [e.id for e in items], start, end, settings.grid,
                                 [settings.tracker(e.id, e) for e in items], 10**6)  # fmt: skip
    assert left == []
    window = Period(PeriodKind.SHIFT, "w", start, end)
    return {
        "stream": {e.id: stream.period([e.id], window, end) for e in items},
        "tracker": {
            e.id: machine_total(e.id, machine_atoms(store, e.id, start, end, settings, e))
            for e in items
        },
        "columnar": {e.id: machine_total(e.id, columnar[e.id]) for e in items},
    }


def test_state_carried_in_and_unknown_time_gives_no_ratio(tmp_path: Path) -> None:
    got = paths(tmp_path)
    assert got["stream"] == got["tracker"] == got["columnar"]
    running = got["tracker"][RUNNING]
    assert running.apt_us == HOUR
    assert running.unknown_us == 0
    assert running.complete
    assert running.gq == 180
    k = compute(running)
    assert k.availability == 1.0
    assert k.effectiveness == 18.0 * 180 / 3600  # 0.9
    assert k.oee == k.effectiveness
    blind = got["tracker"][BLIND]
    assert blind.unknown_us == HOUR
    assert blind.apt_us == 0
    assert blind.gq == 180
    assert any("no state known" in i for i in blind.issues)  # the reason
    kb = compute(blind)
    assert kb.effectiveness is None
    assert kb.oee is None
    assert kb.equipment_load_ratio is None
    # the plant: the blind machine's parts do not inflate the running one's figures
    plant = running + blind
    assert effectiveness(plant) is None
    assert oee_index(plant) is None


def test_unknown_time_never_gives_a_ratio_above_one() -> None:
    inflated = Elements(apt_us=60 * S, unknown_us=3540 * S, gq=180, ideal_s=3240.0)
    assert effectiveness(inflated) is None
    assert oee_index(inflated) is None
    assert equipment_load_ratio(inflated) is None
    # unknown time that does not dominate and a ratio within 1: still a figure
    partly = Elements(apt_us=3000 * S, unknown_us=600 * S, gq=150, ideal_s=2700.0)
    assert effectiveness(partly) == 0.9
    # no unknown time: the ratio stands as computed, even above 1 (a wrong PRI shows)
    fast = Elements(apt_us=60 * S, gq=180, ideal_s=3240.0)
    assert effectiveness(fast) == 54.0


def test_a_stream_attached_mid_shift_carries_in_from_the_store(tmp_path: Path) -> None:
    data = readings()
    store = ParquetStore(tmp_path)
    store.append(data)  # all stored; the stream sees only what is stored after 06:30
    settings = KpiWindowSettings()
    items = [Equipment(id=e, kind=EquipmentKind.MACHINE, tags=TAGS) for e in (BLIND, RUNNING)]
    live = LiveKpis(settings, {e.id: e for e in items}.get, store=store)
    live.observe([r for r in data if r.time_us >= T0 + HOUR // 2])
    live.stream.flush(T0 + HOUR)
    window = Period(PeriodKind.SHIFT, "w", T0, T0 + HOUR)
    for e in items:
        expected = machine_total(e.id, machine_atoms(store, e.id, T0, T0 + HOUR, settings, e))
        assert live.stream.period([e.id], window, T0 + HOUR) == expected
    running = live.stream.period([RUNNING], window, T0 + HOUR)
    assert running.apt_us == HOUR
    assert running.gq == 180
    # without the store, the stream knows no state before 06:30 and misses half the parts
    bare = LiveKpis(settings, {e.id: e for e in items}.get)
    bare.observe([r for r in data if r.time_us >= T0 + HOUR // 2])
    bare.stream.flush(T0 + HOUR)
    assert bare.stream.period([RUNNING], window, T0 + HOUR).apt_us == 0
