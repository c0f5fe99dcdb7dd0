"""The telemetry HTTP API: typed values in history, aggregates and live; request bodies
authenticated before they are read, and bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request

from iinode.api.telemetry import TelemetryApp, telemetry_router
from iinode.errors import AuthenticationFailed
from iinode.identifiers import IndexedHandle
from iinode.telemetry.model import DataType, Equipment, Quality, Reading, Tag
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from telemetry.test_store_types import write_first_layout

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
EQ = Equipment(
    id="88.118.8/PLC-1",
    tags=(Tag("count", DataType.INT), Tag("serial", DataType.INT), Tag("on", DataType.BOOL),
          Tag("state", DataType.STRING), Tag("temp")),
)  # fmt: skip
BIG, U64 = 2**53 + 1, 2**64 - 1
READINGS = [
    Reading(EQ.id, "count", T0, BIG),
    Reading(EQ.id, "serial", T0 + 1, U64),
    Reading(EQ.id, "on", T0 + 2, True),
    Reading(EQ.id, "state", T0 + 3, "running"),
    Reading(EQ.id, "temp", T0 + 4, 20.0),
    Reading(EQ.id, "count", T0 + 5, BIG + 2),
    Reading(EQ.id, "temp", T0 + 6, None, Quality.BAD),
]
ADMIN = IndexedHandle(300, "0.NA/88.118.8")


async def authenticate(request: Request) -> IndexedHandle | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    if header != "Bearer good":
        raise AuthenticationFailed("wrong secret")
    return ADMIN


def app_for(tmp_path: Path, **extra: object) -> TelemetryApp:
    store = ParquetStore(tmp_path / "ts")
    store.append(READINGS)
    return TelemetryApp(MemoryRegistry([EQ]), store, LiveState(), **extra)  # type: ignore[arg-type]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, TelemetryApp]]:
    app = app_for(tmp_path, authenticate=authenticate, max_body=4096)
    api = FastAPI()
    api.include_router(telemetry_router(app))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
        yield c, app


def plain(data: bytes) -> object:
    """JSON parsed without going through floats: integers stay exact, types visible."""
    return orjson.loads(data)


async def test_history_keeps_types(client: tuple[httpx.AsyncClient, TelemetryApp]) -> None:
    c, _ = client
    r = await c.get(f"/telemetry/equipment/{EQ.id}/history")
    assert r.status_code == 200
    body = r.content
    assert b'"value":9007199254740993' in body
    assert b'"value":18446744073709551615' in body
    got = [(x["tag"], x["value"], x["quality"]) for x in plain(body)["readings"]]  # type: ignore[index]
    assert got == [
        ("count", BIG, 192), ("serial", U64, 192), ("on", True, 192), ("state", "running", 192),
        ("temp", 20.0, 192), ("count", BIG + 2, 192), ("temp", None, 0),
    ]  # fmt: skip
    assert [type(v).__name__ for _, v, _ in got] == [
        "int", "int", "bool", "str", "float", "int", "NoneType",
    ]  # fmt: skip


async def test_aggregates_and_stored_latest_keep_types(
    client: tuple[httpx.AsyncClient, TelemetryApp],
) -> None:
    c, _ = client
    r = await c.get(f"/telemetry/equipment/{EQ.id}/aggregates", params={"tag": "count"})
    (bucket,) = plain(r.content)["buckets"]  # type: ignore[index]
    assert (bucket["min"], bucket["max"], bucket["count"]) == (BIG, BIG + 2, 2)
    assert b'"max":9007199254740995' in r.content
    live = plain((await c.get(f"/telemetry/equipment/{EQ.id}/live")).content)["tags"]  # type: ignore[index]
    assert {k: (v["value"], v["quality"]) for k, v in live.items()} == {
        "count": (BIG + 2, 192), "serial": (U64, 192), "on": (True, 192),
        "state": ("running", 192), "temp": (None, 0),
    }  # fmt: skip


async def test_live_keeps_the_last_value_when_a_bad_reading_has_none(
    client: tuple[httpx.AsyncClient, TelemetryApp],
) -> None:
    c, app = client
    app.live.update(READINGS)
    live = (await c.get(f"/telemetry/equipment/{EQ.id}/live")).json()["tags"]
    assert live["temp"]["value"] == 20.0
    assert live["temp"]["quality"] == 0
    assert live["serial"]["value"] == U64


async def test_put_is_authenticated_before_its_body_is_read(
    client: tuple[httpx.AsyncClient, TelemetryApp],
) -> None:
    c, app = client
    path = "/telemetry/equipment/88.118.8/NEW"
    for headers, status in (({}, 401), ({"authorization": "Bearer bad"}, 401)):
        # a body that would be a 400 (not JSON) or a 413 (too large) if it were read
        for body in (b"{nope", b"x" * 10_000):
            r = await c.put(path, content=body, headers=headers)
            assert (r.status_code, r.json()["error"]) == (status, "unauthenticated")
    assert await app.registry.get("88.118.8/NEW") is None
    ok = await c.put(path, json={"tags": [{"name": "t"}]}, headers={"authorization": "Bearer good"})
    assert ok.status_code == 200


async def test_bodies_over_the_limit_answer_413(
    client: tuple[httpx.AsyncClient, TelemetryApp],
) -> None:
    c, app = client
    path = "/telemetry/equipment/88.118.8/BIG"
    good = {"authorization": "Bearer good"}
    tags = [{"name": f"tag-{i:04d}", "description": "d" * 40} for i in range(100)]
    declared = await c.put(path, json={"tags": tags}, headers=good)
    assert declared.status_code == 413
    assert declared.json() == {"error": "too_large", "detail": "the body is larger than 4096 bytes"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(100):
            yield b" " * 100

    streamed = await c.put(path, content=chunks(), headers=good)
    assert (streamed.status_code, streamed.json()["error"]) == (413, "too_large")
    assert await app.registry.get("88.118.8/BIG") is None
    small = await c.put(path, json={"tags": tags[:10]}, headers=good)
    assert small.status_code == 200


def test_the_default_limit_is_a_mebibyte(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    assert app.max_body == 1 << 20
    assert replace(app, max_body=10).max_body == 10


async def test_history_reads_partitions_of_the_first_layout(
    client: tuple[httpx.AsyncClient, TelemetryApp],
) -> None:
    c, app = client
    old = Equipment(id="88.118.8/PRESS-01", tags=(Tag("temp"), Tag("state", DataType.STRING)))
    await app.registry.put(old)
    write_first_layout(app.store, [("temp", T0 - 2, 20.0, None), ("state", T0 - 1, None, "idle")])
    r = await c.get(f"/telemetry/equipment/{old.id}/history")
    assert [(x["tag"], x["value"]) for x in r.json()["readings"]] == [
        ("temp", 20.0),
        ("state", "idle"),
    ]
    # the new rows of the same partition keep their types next to the old ones
    r = await c.get(f"/telemetry/equipment/{EQ.id}/history", params={"tag": "serial"})
    assert plain(r.content)["readings"][0]["value"] == U64  # type: ignore[index]
