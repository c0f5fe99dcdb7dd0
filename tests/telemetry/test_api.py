"""The telemetry HTTP router, in process through httpx.ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from iinode.api.telemetry import TelemetryApp, parse_time, telemetry_router
from iinode.errors import ValueInvalid
from iinode.telemetry.model import Equipment, Quality, Reading, Tag
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import Reject, RejectLog, RejectReason

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
EQ = Equipment(id="88.118.8/PRESS-01", model="HP", tags=(Tag("temp"), Tag("state", "string")))  # type: ignore[arg-type]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, TelemetryApp]]:
    store = ParquetStore(tmp_path / "ts")
    store.append([Reading(EQ.id, "temp", T0 + i * 1_000_000, float(i)) for i in range(120)])
    rejects = RejectLog()
    rejects.add(Reject(RejectReason.WRONG_TYPE, "x"))
    app = TelemetryApp(MemoryRegistry([EQ]), store, LiveState(), rejects)
    api = FastAPI()
    api.include_router(telemetry_router(app))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
        yield c, app


async def test_equipment_crud(client: tuple[httpx.AsyncClient, TelemetryApp]) -> None:
    c, _ = client
    listed = (await c.get("/telemetry/equipment", params={"prefix": "88.118.8"})).json()
    assert [e["id"] for e in listed] == [EQ.id]
    assert (await c.get("/telemetry/equipment/88.118.8/PRESS-01")).json()["model"] == "HP"
    new = {"kind": "sensor", "tags": [{"name": "flow", "unit": "l/min"}]}
    r = await c.put("/telemetry/equipment/88.118.8/FLOW-1", json=new)
    assert r.status_code == 200
    assert r.json()["id"] == "88.118.8/FLOW-1"
    assert len((await c.get("/telemetry/equipment")).json()) == 2
    assert (await c.delete("/telemetry/equipment/88.118.8/FLOW-1")).status_code == 204
    assert (await c.delete("/telemetry/equipment/88.118.8/FLOW-1")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/telemetry/equipment/88.118.8/NOPE", None, 404, "not_found"),
        ("GET", "/telemetry/equipment/88..8/X", None, 400, "invalid_handle"),
        ("GET", "/telemetry/equipment?prefix=a..b", None, 400, "invalid_prefix"),
        ("PUT", "/telemetry/equipment/88.1/X", b"{nope", 400, "invalid_json"),
        ("PUT", "/telemetry/equipment/88.1/X", b'{"id": "88.1/Y"}', 400, "invalid_equipment"),
        ("PUT", "/telemetry/equipment/88.1/X", b'{"kind": "robot"}', 400, "invalid_equipment"),
        ("GET", "/telemetry/equipment/88.118.8/PRESS-01/history?start=soon", None, 400,
         "invalid_time"),
    ],
)  # fmt: skip
async def test_bad_requests(
    client: tuple[httpx.AsyncClient, TelemetryApp],
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    error: str,
) -> None:
    c, _ = client
    r = await c.request(method, path, content=body)
    assert r.status_code == status
    assert r.json()["error"] == error


async def test_live_state_prefers_the_twin(client: tuple[httpx.AsyncClient, TelemetryApp]) -> None:
    c, app = client
    stored = (await c.get("/telemetry/equipment/88.118.8/PRESS-01/live")).json()
    assert stored["tags"]["temp"] == {
        "value": 119.0,
        "time": "2026-01-01T00:01:59+00:00",
        "quality": 192,
    }
    app.live.update([Reading(EQ.id, "state", T0, "running", Quality.UNCERTAIN)])
    live = (await c.get("/telemetry/equipment/88.118.8/PRESS-01/live")).json()
    assert live["tags"] == {
        "state": {"value": "running", "time": "2026-01-01T00:00:00+00:00", "quality": 64}
    }


async def test_history_and_aggregates(client: tuple[httpx.AsyncClient, TelemetryApp]) -> None:
    c, _ = client
    base = "/telemetry/equipment/88.118.8/PRESS-01"
    r = await c.get(
        f"{base}/history",
        params={"tag": "temp", "start": "2026-01-01T00:00:10Z", "end": str(T0 // 1000 + 13_000)},
    )
    assert [x["value"] for x in r.json()["readings"]] == [10.0, 11.0, 12.0]
    agg = (await c.get(f"{base}/aggregates", params={"tag": "temp", "interval": 60})).json()
    assert agg["buckets"] == [
        {"start": "2026-01-01T00:00:00+00:00", "count": 60, "min": 0.0, "max": 59.0, "avg": 29.5},
        {"start": "2026-01-01T00:01:00+00:00", "count": 60, "min": 60.0, "max": 119.0,
         "avg": 89.5},
    ]  # fmt: skip
    assert (
        await c.get(f"{base}/aggregates", params={"tag": "temp", "interval": 0})
    ).status_code == 422


async def test_rejects(client: tuple[httpx.AsyncClient, TelemetryApp]) -> None:
    c, _ = client
    assert (await c.get("/telemetry/rejects")).json() == {
        "total": 1,
        "reasons": {"wrong_type": 1},
    }


def test_parse_time() -> None:
    assert parse_time(None) is None
    assert parse_time("1000") == 1_000_000
    assert parse_time("2026-01-01T00:00:00+00:00") == T0
    with pytest.raises(ValueInvalid):
        parse_time("tomorrow")
