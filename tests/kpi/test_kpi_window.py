"""KPIs over a window of stored readings, and the collector's cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from iinode.errors import ValueInvalid
from iinode.monitoring.metrics import render
from iinode.telemetry.kpi_window import (
    KpiMetrics,
    KpiWindowSettings,
    increase,
    window_kpis,
)
from iinode.telemetry.model import Quality, Reading
from iinode.telemetry.store import ParquetStore

M = "88.118.8/M001"
T0 = 1_767_000_000_000_000  # µs
S = 1_000_000


def shift(equipment: str = M) -> list[Reading]:
    """40 min: 10 running, 5 setup, 10 running, 10 down, 5 idle; counters cumulative."""
    out: list[Reading] = []
    plan = [(0, "running"), (600, "setup"), (900, "running"), (1500, "down"), (2100, "idle")]
    for t, state in plan:
        out.append(Reading(equipment, "state", T0 + t * S, state))
    counts = [(0, 100, 3, 50.0), (600, 118, 4, 52.5), (1500, 138, 4, 55.5), (2100, 138, 4, 56.0)]
    for t, good, scrap, energy in counts:
        out += [
            Reading(equipment, "good_count", T0 + t * S, good),
            Reading(equipment, "scrap_count", T0 + t * S, scrap),
            Reading(equipment, "energy", T0 + t * S, energy),
        ]
    out += [Reading(equipment, "cycle_time", T0 + t * S, c) for t, c in [(10, 31.0), (950, 30.0)]]
    out.append(Reading(equipment, "cycle_time", T0 + 960 * S, 1.0, Quality.BAD))  # ignored
    out.append(Reading(equipment, "state", T0 + 1000 * S, "warp-drive"))  # unknown: ignored
    return out


def test_hand_computed_window(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    store.append(shift())
    end = T0 + 2400 * S
    k = window_kpis(store, M, end, KpiWindowSettings(window_s=3600, max_hold_s=900))
    assert k is not None
    # PBT = 1200 running + 300 setup + 600 down; GQ 38, SQ 1, PQ 39; PRI 30 s; 6 kWh
    assert k.availability == pytest.approx(1200 / 2100)
    assert k.effectiveness == pytest.approx(30 * 39 / 1200)
    assert k.quality_ratio == pytest.approx(38 / 39)
    assert k.oee == pytest.approx((1200 / 2100) * (30 * 39 / 1200) * (38 / 39))
    assert k.energy_per_good_kwh == pytest.approx(6 / 38)
    # a configured ideal cycle time wins over the shortest one seen
    k = window_kpis(store, M, end, KpiWindowSettings(max_hold_s=900, ideal_cycle_s={M: 25.0}))
    assert k is not None
    assert k.effectiveness == pytest.approx(25 * 39 / 1200)
    # the window starts after the first setup: running 600 (900..1500), down 600
    k = window_kpis(store, M, end, KpiWindowSettings(window_s=1500, max_hold_s=900))
    assert k is not None
    assert k.availability == pytest.approx(0.5)
    # silence longer than max_hold_s is unknown time: running 300 + 300, setup 300, down 300
    k = window_kpis(store, M, end, KpiWindowSettings(max_hold_s=300))
    assert k is not None
    assert k.availability == pytest.approx(600 / 1200)
    assert window_kpis(store, "88.118.8/NONE", end, KpiWindowSettings()) is None


def test_counter_restart_and_settings_validation() -> None:
    assert increase([5, 7, 2, 4]) == 2 + 2 + 2
    assert increase([]) == 0
    for bad in ({"window_s": 0}, {"cache_s": -1}, {"ideal_cycle_s": {M: 0.0}}):
        with pytest.raises(ValueInvalid):
            KpiWindowSettings(**bad)


async def test_collector_caches_and_opens_a_store_directory(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    store.append(shift())
    now = [0.0]
    collector = KpiMetrics(
        KpiWindowSettings(cache_s=10, max_hold_s=900),
        clock=lambda: T0 + 2400 * S,
        monotonic=lambda: now[0],
    )
    registry = CollectorRegistry()
    registry.register(collector)
    calls: list[int] = []

    async def machines() -> list[str]:
        calls.append(1)
        return [M, "88.118.8/SILENT"]

    await collector.refresh(tmp_path, machines)  # a directory: opened once, read-only use
    families = {f.name: f for f in text_string_to_metric_families(render(registry).decode())}
    (oee,) = families["iinode_kpi_oee"].samples
    assert oee.labels == {"equipment": M}
    assert oee.value == pytest.approx((1200 / 2100) * (30 * 39 / 1200) * (38 / 39))
    store.append(shift("88.118.8/SILENT"))
    now[0] = 9.0
    await collector.refresh(tmp_path, machines)  # cached: not recomputed
    assert len(calls) == 1
    assert list(collector.snapshot) == [M]
    now[0] = 10.0
    await collector.refresh(tmp_path, machines)
    assert len(calls) == 2
    assert sorted(collector.snapshot) == [M, "88.118.8/SILENT"]
