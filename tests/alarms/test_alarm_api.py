"""``/alarms`` over HTTP: listing, acknowledgement, history and rule changes authorised as
handle writes against a real handle service; and ``iinode alarm`` against a served node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from iinode.analytics.alarms import AlarmEngine, AlarmStore
from iinode.api.alarms import AlarmApp, HandleWriteCheck, alarm_router
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    SecKeyData,
)
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import MemoryStore
from iinode.telemetry.model import Reading

ENT = "88.118.8"
M1, M2 = f"{ENT}/M001", f"{ENT}/M002"
SECRET = "node-secret"
S = 1_000_000


def basic(identity: str, secret: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(quote(identity, safe=""), secret)


ADMIN = basic(f"300:0.NA/{ENT}", SECRET)
OPERATOR = basic(f"300:{ENT}/op", "op-secret")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, AlarmEngine]]:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix=ENT)
    service = HandleService(settings, MemoryStore())
    await service.initialise(SECRET)
    root = IndexedHandle.parse(f"300:0.NA/{ENT}")
    secret_value = HandleValue(300, "HS_SECKEY", SecKeyData(b"op-secret"),
                               permissions=Permissions.ADMIN_READ)  # fmt: skip
    await service.create(HandleName.parse(f"{ENT}/op"), [secret_value], root)
    # the operator may modify M001's values, not M002's
    operator = IndexedHandle.parse(f"300:{ENT}/op")
    for machine, admins in ((M1, [root, operator]), (M2, [root])):
        values = [HandleValue(100 + i, "HS_ADMIN", AdminData(AdminPermission(0x0FF3), who))
                  for i, who in enumerate(admins)]  # fmt: skip
        await service.create(HandleName.parse(machine), values, root)
    engine = AlarmEngine(AlarmStore(tmp_path / "alarms.sqlite3"))
    app = FastAPI()
    app.include_router(alarm_router(AlarmApp(engine, HandleWriteCheck(service))))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://node.test") as http:  # fmt: skip
        yield http, engine
    engine.store.close()
    await service.store.close()


def rule(equipment: str, rid: str = "hot") -> dict[str, object]:
    return {"equipment": equipment, "source": "tag", "name": "temperature", "kind": "high",
            "limit": 80, "deadband": 5, "severity": "high"}  # fmt: skip


async def test_rule_changes_are_handle_writes(node: tuple[httpx.AsyncClient, AlarmEngine]) -> None:
    http, engine = node
    anonymous = await http.put("/alarms/rules/hot", json=rule(M1))
    assert anonymous.status_code == 401
    wrong = await http.put("/alarms/rules/hot", json=rule(M1), auth=basic(f"300:{ENT}/op", "x"))
    assert wrong.status_code == 401
    forbidden = await http.put("/alarms/rules/hot2", json=rule(M2), auth=OPERATOR)
    assert forbidden.status_code == 403
    plant = await http.put("/alarms/rules/plant", json=rule(ENT), auth=OPERATOR)
    assert plant.status_code == 403  # a prefix-wide rule needs rights on 0.NA/<prefix>
    ok = await http.put("/alarms/rules/hot", json=rule(M1), auth=OPERATOR)
    assert ok.status_code == 200, ok.text
    assert (await http.put("/alarms/rules/plant", json=rule(ENT), auth=ADMIN)).status_code == 200
    bad = await http.put("/alarms/rules/x", json={**rule(M1), "kind": "up"}, auth=ADMIN)
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_rule"
    assert [r["id"] for r in (await http.get("/alarms/rules")).json()] == ["hot", "plant"]
    assert engine.rules()[0].equipment == M1
    # moving a rule to equipment the writer may not change is refused
    moved = await http.put("/alarms/rules/hot", json=rule(M2), auth=OPERATOR)
    assert moved.status_code == 403
    assert (await http.delete("/alarms/rules/plant", auth=OPERATOR)).status_code == 403
    assert (await http.delete("/alarms/rules/plant", auth=ADMIN)).status_code == 204
    assert (await http.delete("/alarms/rules/plant", auth=ADMIN)).status_code == 404


async def test_list_ack_and_history(node: tuple[httpx.AsyncClient, AlarmEngine]) -> None:
    http, engine = node
    assert (await http.put("/alarms/rules/hot", json=rule(ENT), auth=ADMIN)).status_code == 200
    engine.observe([Reading(M1, "temperature", 10 * S, 90.0),
                    Reading(M2, "temperature", 10 * S, 91.0)])  # fmt: skip
    alarms = (await http.get("/alarms")).json()
    assert {a["equipment"] for a in alarms} == {M1, M2}
    assert [a["equipment"] for a in (await http.get("/alarms", params={"equipment": M2})).json()
            ] == [M2]  # fmt: skip
    on_m2 = next(a["id"] for a in alarms if a["equipment"] == M2)
    on_m1 = next(a["id"] for a in alarms if a["equipment"] == M1)
    assert (await http.post(f"/alarms/{on_m2}/ack")).status_code == 401
    assert (await http.post(f"/alarms/{on_m2}/ack", auth=OPERATOR)).status_code == 403
    acked = await http.post(f"/alarms/{on_m1}/ack", auth=OPERATOR)
    assert acked.status_code == 200
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == f"300:{ENT}/op"
    assert (await http.post("/alarms/nothing/ack", auth=ADMIN)).status_code == 404
    history = (await http.get("/alarms/history", params={"equipment": ENT})).json()
    assert [h["event"] for h in history] == ["acknowledged", "raised", "raised"]
    assert (await http.get("/alarms/history", params={"limit": 0})).status_code == 400
