"""KPIs over HTTP: per machine, line and plant, per shift, live, and the before/after report."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.node_support import auth_for, running_node
from iinode.kpi import PeriodGrid, PeriodKind, TrackerSettings, batch_elements, compute, total
from iinode.kpi.periods import to_us
from iinode.node.settings import Role
from iinode.telemetry.model import Reading, now_us
from iinode.telemetry.simulator import Factory, ShiftCalendar
from support import free_port

ENT = "88.118.8"
MONDAY = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def day(factory: Factory, start: datetime) -> list[Reading]:
    factory.start = start
    return [r for batch in factory.run(16 * 3600, 30.0) for r in batch]


async def test_kpis_per_scope_and_period_and_the_report(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, mqtt_port=free_port()) as node:
        ext = node.extensions
        assert ext.registry is not None
        assert ext.telemetry is not None
        before = Factory.demo(ENT, 2, seed=4)
        after = Factory.demo(ENT, 2, seed=4)
        after.specs = [replace(s, scrap_rate=0.005, tool_life_min=3 * s.tool_life_min)
                       for s in after.specs]  # fmt: skip
        after.__post_init__()
        for equipment in before.equipment():
            await ext.registry.put(equipment)
        monday, tuesday = day(before, MONDAY), day(after, MONDAY + timedelta(days=1))
        ext.telemetry.store.append(monday + tuesday)
        auth = auth_for(ENT)
        start, end = "2026-01-05T06:00:00+00:00", "2026-01-05T22:00:00+00:00"

        got = (await node.http.get(f"/kpi/plants/{ENT}", params={"start": start, "end": end,
                                   "by": "shift"}, auth=auth)).json()  # fmt: skip
        assert got["scope"] == "plant"
        assert got["equipment"] == [f"{ENT}/M001", f"{ENT}/M002"]
        assert [p["label"] for p in got["periods"]] == ["2026-01-05/06:00", "2026-01-05/14:00"]
        # the same numbers as the pure code on the readings before they were stored
        grid, lo, hi = PeriodGrid(), to_us(MONDAY), to_us(MONDAY + timedelta(hours=8))
        parts = [
            total(batch_elements([(r.time_us, r.tag, r.value, r.quality.is_good) for r in monday
                                  if r.equipment == m], grid, lo, hi, TrackerSettings()).values())
            for m in got["equipment"]
        ]  # fmt: skip
        expected = compute(total(parts))
        first = got["periods"][0]
        assert first["kpis"]["oee"] == pytest.approx(expected.oee)
        assert first["kpis"]["availability"] == pytest.approx(expected.availability)
        assert first["elements"]["gq"] == total(parts).gq
        assert first["metrics"]["defect_rate"] == pytest.approx(
            (total(parts).pq - total(parts).gq) / total(parts).pq
        )
        afternoon = got["periods"][1]
        assert afternoon["complete"], afternoon["issues"]

        line = (await node.http.get(f"/kpi/lines/{ENT}/LINE-1", params={"start": start,
                                    "end": end}, auth=auth)).json()  # fmt: skip
        (whole,) = line["periods"]
        assert whole["elements"]["gq"] == sum(p["elements"]["gq"] for p in got["periods"])
        machine = (
            await node.http.get(
                f"/kpi/equipment/{ENT}/M001",
                params={"start": start, "end": "2026-01-07T06:00:00+00:00", "by": "day"},
                auth=auth,
            )
        ).json()
        assert [p["label"] for p in machine["periods"]] == [
            "2026-01-05",
            "2026-01-06",
            "2026-01-07",
        ]

        report = (await node.http.get(f"/kpi/plants/{ENT}/report", params={
            "before_start": start, "before_end": end, "after_start": "2026-01-06T06:00:00Z",
            "after_end": "2026-01-06T22:00:00Z", "energy_per_kwh": "0.8",
            "labour_per_hour": "30"}, auth=auth)).json()  # fmt: skip
        changes = {c["metric"]: c for c in report["changes"]}
        assert changes["defect_rate"]["improved"] is True
        assert changes["defect_rate"]["change_pct"] < -40
        assert changes["defect_rate"]["statement"].startswith("defect rate \u2212")
        assert changes["good_units_per_hour"]["improved"] is True
        assert report["before"]["metrics"]["operating_cost_per_good_unit"] > 0


async def test_bad_requests(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, mqtt_port=free_port()) as node:
        assert node.extensions.registry is not None
        for equipment in Factory.demo(ENT, 1).equipment():
            await node.extensions.registry.put(equipment)
        auth = auth_for(ENT)

        async def status(path: str, **params: str) -> tuple[int, str]:
            r = await node.http.get(path, params=params, auth=auth)
            return r.status_code, r.json().get("error", "")

        assert await status(f"/kpi/equipment/{ENT}/NOPE") == (404, "not_found")
        assert await status(f"/kpi/lines/{ENT}/NOLINE") == (404, "not_found")
        assert await status(f"/kpi/equipment/{ENT}/M001", by="month") == (400, "invalid_by")
        assert await status(f"/kpi/equipment/{ENT}/M001", start="yesterday") == (
            400, "invalid_query")  # fmt: skip
        assert await status(f"/kpi/equipment/{ENT}/M001", start="2026-01-02", end="2026-01-01") == (
            400, "invalid_query")  # fmt: skip
        assert await status(f"/kpi/plants/{ENT}", start="2025-01-01", end="2026-01-01") == (
            400, "invalid_query")  # fmt: skip
        assert await status(f"/kpi/plants/{ENT}", labour_per_hour="-3") == (400, "invalid_query")
        assert await status(f"/kpi/plants/{ENT}/report") == (400, "invalid_query")
        assert await status("/kpi/plants/not a prefix") == (400, "invalid_handle")
        anonymous = await node.http.get(f"/kpi/plants/{ENT}")
        assert anonymous.status_code == 401
        empty = (await node.http.get(f"/kpi/equipment/{ENT}/M001", auth=auth)).json()
        (period,) = empty["periods"]
        assert period["complete"] is False
        assert period["kpis"]["oee"] is None
        assert period["issues"] == [f"no readings from {ENT}/M001 in the period"]


async def test_live_shift_from_the_ingest_stream(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, mqtt_port=free_port()) as node:
        ext = node.extensions
        assert ext.registry is not None
        assert ext.telemetry is not None
        factory = Factory.demo(ENT, 2, seed=9)
        factory.calendar = ShiftCalendar()  # always working
        for equipment in factory.equipment():
            await ext.registry.put(equipment)
        auth = auth_for(ENT)
        path = f"/kpi/plants/{ENT}/live"
        first = (await node.http.get(path, auth=auth)).json()  # attaches the stream
        assert first["source"] == "store"

        now = now_us()
        shift = PeriodGrid().period_of(PeriodKind.SHIFT, now)
        factory.start = datetime.fromtimestamp(shift.start_us // 1_000_000, UTC)
        steps = max(3, (now - shift.start_us) // 60_000_000)
        readings = [r for batch in factory.run(steps * 60, 60.0) for r in batch]
        readings = [r for r in readings if r.time_us <= now]
        for i in range(0, len(readings), 200):
            await ext.telemetry.bus.publish(readings[i : i + 200])
        for _ in range(200):
            if sum(w.stats.accepted for w in ext.telemetry.workers) >= len(readings):
                break
            await asyncio.sleep(0.05)
        live = (await node.http.get(path, auth=auth)).json()
        assert live["source"] == "stream"
        assert live["label"] == shift.label
        # the stream used every reading but the last instant's (held back to reorder)
        last = max(r.time_us for r in readings)
        stored = (
            await node.http.get(
                f"/kpi/plants/{ENT}",
                params={"start": str(shift.start_us // 1000), "end": str(last // 1000)},
                auth=auth,
            )
        ).json()
        assert live["elements"]["gq"] == stored["periods"][0]["elements"]["gq"]
        assert live["elements"]["sq"] == stored["periods"][0]["elements"]["sq"]


def test_openapi_lists_the_kpi_routes(tmp_path: Path) -> None:
    from fastapi import FastAPI

    from iinode.api.kpi import KpiApp, kpi_router
    from iinode.telemetry.registry import MemoryRegistry
    from iinode.telemetry.store import ParquetStore

    app = FastAPI()
    app.include_router(kpi_router(KpiApp(MemoryRegistry(), ParquetStore(tmp_path))))
    paths = set(app.openapi()["paths"])
    assert {"/kpi/plants/{prefix_text}", "/kpi/plants/{prefix_text}/report",
            "/kpi/lines/{prefix_text}/{suffix}/live"} <= paths  # fmt: skip


async def test_too_many_readings_is_refused_not_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from fastapi import FastAPI

    import iinode.telemetry.kpi_window as kpi_window
    from iinode.api.kpi import KpiApp, kpi_router
    from iinode.telemetry.registry import MemoryRegistry
    from iinode.telemetry.store import ParquetStore

    factory = Factory.demo(ENT, 1, seed=1)
    store = ParquetStore(tmp_path)
    store.append(day(factory, MONDAY)[:2000])
    app = FastAPI()
    app.include_router(kpi_router(KpiApp(MemoryRegistry(factory.equipment()), store)))
    params = {"start": "2026-01-05T06:00:00Z", "end": "2026-01-05T08:00:00Z"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kpi.test") as http:  # fmt: skip
        ok = await http.get(f"/kpi/equipment/{ENT}/M001", params=params)
        assert ok.status_code == 200
        assert ok.json()["periods"][0]["elements"]["gq"] > 0
        monkeypatch.setattr(kpi_window, "MAX_SCAN_READINGS", 100)
        refused = await http.get(f"/kpi/equipment/{ENT}/M001", params=params)
        assert refused.status_code == 400
        assert refused.json()["error"] == "too_much_data"
