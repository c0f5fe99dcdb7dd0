"""The equipment registry kept as identifiers, on every store backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI, Request

from iinode.api.rest_common import authenticate
from iinode.api.telemetry import TelemetryApp, telemetry_router
from iinode.errors import AuthenticationNeeded, HandleNotFound, NotAuthorized, ValueInvalid
from iinode.identifiers import (
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    StringData,
    UrlData,
)
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import HandleStore, MemoryStore, SQLiteStore
from iinode.storage.postgres import PostgresStore
from iinode.telemetry.model import Connection, DataType, Equipment, EquipmentKind, Tag
from iinode.telemetry.registry_handles import (
    EQUIPMENT_TYPE,
    TAGS_TYPE,
    HandleRegistry,
    equipment_from_record,
    equipment_values,
)
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from support import require_service

PREFIX = "88.118.8"
ADMIN = IndexedHandle.parse(f"300:0.NA/{PREFIX}")
PRESS = Equipment(
    id=f"{PREFIX}/PRESS-01", kind=EquipmentKind.MACHINE, model="HP-400", vendor="Yangli",
    line=f"{PREFIX}/LINE-1", location="hall 2", connection=Connection("sparkplug", "88.118.8/n"),
    tags=(Tag("temperature", DataType.FLOAT, "degC"), Tag("state", DataType.STRING)),
)  # fmt: skip


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HandleService]:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix=PREFIX)
    store: HandleStore
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "sqlite":
        store = SQLiteStore(tmp_path / "h.sqlite3")
    else:
        require_service("postgres")
        store = await PostgresStore.open(
            "postgresql://postgres@127.0.0.1:5432/test", table=f"t_{uuid.uuid4().hex[:12]}"
        )
    svc = HandleService(settings, store)
    await svc.initialise("pw")
    yield svc
    if isinstance(store, PostgresStore):
        await store.drop()
    await store.close()


def test_values_round_trip() -> None:
    values = equipment_values(PRESS, url="http://n/telemetry/equipment/88.118.8/PRESS-01")
    assert [(v.index, v.type) for v in values] == [(1, "URL"), (2, EQUIPMENT_TYPE), (3, TAGS_TYPE)]
    assert equipment_from_record(PRESS.id, values) == PRESS
    assert equipment_from_record(PRESS.id, values[:1]) is None


@pytest.mark.parametrize(
    "attrs", ["{nope", "[1]", '{"kind": "robot"}', '{"connection": {"options": 3}}']
)
def test_malformed_values_raise_value_invalid(attrs: str) -> None:
    record = [HandleValue(2, EQUIPMENT_TYPE, StringData(attrs))]
    with pytest.raises(ValueInvalid):
        equipment_from_record(PRESS.id, record)


async def test_put_get_list_remove(service: HandleService) -> None:
    registry = HandleRegistry(service, base_url="http://node:8000")
    await registry.put(PRESS)
    assert await registry.get(PRESS.id) == PRESS
    record = await service.lookup(HandleName.parse(PRESS.id))
    assert record is not None
    url = next(v for v in record if v.type == "URL")
    assert url.data == UrlData("http://node:8000/telemetry/equipment/88.118.8/PRESS-01")
    # replacing keeps the record's other values and indexes
    changed = Equipment(id=PRESS.id, model="HP-500", tags=(Tag("temperature"),))
    await registry.put(changed)
    assert await registry.get(PRESS.id) == changed
    after = await service.lookup(HandleName.parse(PRESS.id))
    assert after is not None
    assert {v.index for v in after} == {v.index for v in record}
    # a product identifier in the same prefix is not equipment
    await service.create(HandleName(PREFIX, "P1"), [HandleValue(1, "URL", UrlData("http://p/1"))],
                         ADMIN)  # fmt: skip
    assert [e.id for e in await registry.list()] == [PRESS.id]
    assert await registry.list("88.120") == []
    await registry.remove(PRESS.id)
    assert await registry.get(PRESS.id) is None
    assert await service.lookup(HandleName.parse(PRESS.id)) is None
    with pytest.raises(HandleNotFound):
        await registry.remove(PRESS.id)
    with pytest.raises(HandleNotFound):
        await registry.remove(f"{PREFIX}/P1")


async def test_remove_keeps_an_identifier_with_other_values(service: HandleService) -> None:
    registry = HandleRegistry(service)
    name = HandleName(PREFIX, "ROBOT-1")
    await service.create(name, [HandleValue(1, "URL", UrlData("http://robot/1"))], ADMIN)
    await registry.put(Equipment(id=str(name), kind=EquipmentKind.CONTROLLER))
    assert (await registry.get(str(name))) is not None
    await registry.remove(str(name))
    record = await service.lookup(name)
    assert record is not None
    assert [v.type for v in record if v.type != "HS_ADMIN"] == ["URL"]


async def test_writes_are_authorised_and_foreign_prefixes_are_not_local(
    service: HandleService,
) -> None:
    registry = HandleRegistry(service)
    stranger = IndexedHandle.parse("300:0.NA/88.118.9")
    with pytest.raises(NotAuthorized):
        await registry.put(PRESS, stranger)
    assert await registry.get(PRESS.id) is None
    await registry.put(PRESS, ADMIN)
    with pytest.raises(NotAuthorized):
        await registry.remove(PRESS.id, stranger)
    assert await registry.get(PRESS.id) == PRESS
    assert await registry.get("88.120.3/INJECTION-01") is None
    assert await registry.get("not a handle") is None


async def test_list_reads_each_page_in_one_batch(service: HandleService) -> None:
    from iinode.node.service import BulkRegistrar

    registry = HandleRegistry(service)
    registrar = BulkRegistrar(service)
    machines = [Equipment(id=f"{PREFIX}/M{n:05d}", model=f"m{n}") for n in range(1500)]
    rows = [registrar.encode(HandleName.parse(m.id), equipment_values(m)) for m in machines]
    rows += [
        registrar.encode(
            HandleName(PREFIX, f"P{n:05d}"), [HandleValue(1, "URL", UrlData("http://p"))]
        )
        for n in range(700)
    ]
    bad = [HandleValue(2, EQUIPMENT_TYPE, StringData("{nope"))]
    rows.append(registrar.encode(HandleName(PREFIX, "BROKEN"), bad))
    await registrar.write(rows)

    store = service.store
    calls = {"get": 0, "get_many": 0}
    get, get_many = store.get, store.get_many

    async def counted_get(handle: str) -> bytes | None:
        calls["get"] += 1
        return await get(handle)

    async def counted_get_many(handles: Sequence[str]) -> dict[str, bytes]:
        calls["get_many"] += 1
        return await get_many(handles)

    async def no_offset_listing(prefix: str, *, page: int = 0, page_size: int = 1000) -> None:
        raise AssertionError("the registry pages by keyset, without offsets or counts")

    store.get = counted_get  # type: ignore[method-assign]
    store.get_many = counted_get_many  # type: ignore[method-assign]
    store.list_handles = no_offset_listing  # type: ignore[method-assign,assignment]
    listed = await registry.list()
    assert listed == machines  # the malformed record and the products are left out
    assert calls["get_many"] == 3  # 2201 handles, pages of 1000
    assert calls["get"] < 5  # route checks only, not one read per handle


async def test_a_delegated_prefix_lists_no_equipment_here(service: HandleService) -> None:
    from iinode.node.service import site_from_url

    registry = HandleRegistry(service)
    await registry.put(Equipment(id=f"{PREFIX}.1/M1"))
    assert [e.id for e in await registry.list(f"{PREFIX}.1")] == [f"{PREFIX}.1/M1"]
    na = HandleName.parse(f"0.NA/{PREFIX}.1")
    site = site_from_url("http://127.0.0.1:1")
    await service.create(na, [HandleValue(1, "HS_SITE", site)], ADMIN)
    assert await registry.list(f"{PREFIX}.1") == []


HIDDEN = Equipment(
    id=f"{PREFIX}/PLC-7", kind=EquipmentKind.CONTROLLER,
    connection=Connection("modbus", "10.0.0.7:502"), tags=(Tag("temperature"),),
)  # fmt: skip


async def register_hidden(service: HandleService) -> None:
    """Equipment whose values (a connection address among them) are for administrators only."""
    private = Permissions.ADMIN_READ | Permissions.ADMIN_WRITE
    values = [replace(v, permissions=private) for v in equipment_values(HIDDEN)]
    await service.create(HandleName.parse(HIDDEN.id), values, ADMIN)


async def test_reads_on_behalf_of_a_caller_follow_the_record_permissions(
    service: HandleService,
) -> None:
    registry = HandleRegistry(service)
    await registry.put(PRESS)
    await register_hidden(service)
    stranger = IndexedHandle.parse("300:0.NA/88.118.9")
    assert await registry.readable(PRESS.id, None) == PRESS
    with pytest.raises(AuthenticationNeeded):
        await registry.readable(HIDDEN.id, None)
    with pytest.raises(NotAuthorized):
        await registry.readable(HIDDEN.id, stranger)
    assert await registry.readable(HIDDEN.id, ADMIN) == HIDDEN
    assert await registry.readable(f"{PREFIX}/NOPE", None) is None
    with pytest.raises(AuthenticationNeeded):
        await registry.listing(None, None)
    with pytest.raises(NotAuthorized):
        await registry.listing(PREFIX, stranger)
    assert [e.id for e in await registry.listing(None, ADMIN)] == [HIDDEN.id, PRESS.id]
    assert [e.id for e in await registry.list()] == [HIDDEN.id, PRESS.id]  # the node's view


async def test_telemetry_api_applies_handle_permissions(
    service: HandleService, tmp_path: Path
) -> None:
    registry = HandleRegistry(service)
    await registry.put(PRESS)
    await register_hidden(service)
    store = ParquetStore(tmp_path / "ts")

    async def who(request: Request) -> IndexedHandle | None:
        return await authenticate(service, request, required=False)

    app = FastAPI()
    app.include_router(
        telemetry_router(TelemetryApp(registry, store, LiveState(), authenticate=who,
                                      reader=registry))
    )  # fmt: skip
    admin = httpx.BasicAuth(quote(str(ADMIN), safe=""), "pw")
    wrong = httpx.BasicAuth(quote(str(ADMIN), safe=""), "guess")
    hidden = f"/telemetry/equipment/{HIDDEN.id}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        assert (await c.get("/telemetry/equipment")).status_code == 401
        assert (await c.get("/telemetry/equipment", auth=wrong)).status_code == 401
        listed = await c.get("/telemetry/equipment", auth=admin)
        assert [e["id"] for e in listed.json()] == [HIDDEN.id, PRESS.id]
        assert (await c.get(f"/telemetry/equipment/{PRESS.id}")).json()["id"] == PRESS.id
        for path in (hidden, f"{hidden}/live", f"{hidden}/history",
                     f"{hidden}/aggregates?tag=temperature"):  # fmt: skip
            anonymous = await c.get(path)
            assert anonymous.status_code == 401, path
            assert "10.0.0.7" not in anonymous.text
            assert (await c.get(path, auth=admin)).status_code == 200, path
        shown = (await c.get(hidden, auth=admin)).json()
        assert shown["connection"]["address"] == "10.0.0.7:502"
