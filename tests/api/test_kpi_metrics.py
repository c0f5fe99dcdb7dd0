"""``/metrics`` of an enterprise node carries ISO 22400 KPIs per machine."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.node_support import running_node
from iinode.kpi import batch_elements, compute, machine_total
from iinode.node.settings import Role
from iinode.telemetry.kpi_window import FAMILIES, KpiWindowSettings
from iinode.telemetry.model import Reading, from_us, now_us
from iinode.telemetry.simulator import Factory, ShiftCalendar
from support import free_port

ENT = "88.118.8"
WINDOW_S = 1800


async def test_kpis_of_simulated_machines_are_scraped(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, mqtt_port=free_port()) as node:
        ext = node.extensions
        assert ext.registry is not None
        assert ext.telemetry is not None
        end_us = now_us() // 1_000_000 * 1_000_000
        settings = KpiWindowSettings(window_s=WINDOW_S)
        assert ext.kpis is not None  # registered in the node's metrics by the assembly
        ext.kpis.settings, ext.kpis.clock = settings, lambda: end_us
        factory = Factory.demo(ENT, 3, seed=11)
        factory.calendar = ShiftCalendar()  # always working
        # 40 simulated minutes ending at end_us; the window sees the last 30
        factory.start = from_us(end_us) - timedelta(seconds=2400)
        for equipment in factory.equipment():
            await ext.registry.put(equipment)
        readings: list[Reading] = []
        for batch in factory.run(2400, 5.0):
            readings += batch
        ext.telemetry.store.append(readings)

        text = (await node.http.get("/metrics")).text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        start_us = end_us - WINDOW_S * 1_000_000
        for machine in factory.machines:
            samples = [
                (r.time_us, r.tag, r.value, r.quality.is_good)
                for r in readings
                if r.equipment == machine.spec.id
            ]
            tracker = settings.tracker(machine.spec.id)
            atoms = batch_elements(samples, settings.grid, start_us, end_us, tracker)
            assert machine_total(machine.spec.id, atoms).pq > 0
            expected = compute(machine_total(machine.spec.id, atoms))
            for name, attr, _ in FAMILIES:
                assert families[name].type == "gauge"
                samples_of = {s.labels["equipment"]: s.value for s in families[name].samples}
                value = getattr(expected, attr)
                if value is None:
                    assert machine.spec.id not in samples_of, name
                    continue
                scale = 3.6e6 if name.endswith("_joules") else 1.0
                assert samples_of[machine.spec.id] == pytest.approx(float(value) * scale), name
            assert expected.oee is not None
            assert 0 < expected.oee <= 1

        # a second scrape within the cache period does not recompute
        ext.telemetry.store.append(
            [Reading(m.spec.id, "state", end_us - 1, "down") for m in factory.machines]
        )
        again = {f.name: f for f in text_string_to_metric_families(
            (await node.http.get("/metrics")).text
        )}  # fmt: skip
        assert again["iinode_kpi_oee_ratio"].samples == families["iinode_kpi_oee_ratio"].samples


async def test_nodes_without_telemetry_have_no_kpis(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, telemetry=False) as node:
        text = (await node.http.get("/metrics")).text
        assert "iinode_kpi_" not in text
