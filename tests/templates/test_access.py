"""Restricted attributes: hidden from the public, shown to readers granted per template,
per identifier or per HS_VLIST group; over REST and over the native protocol alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from iinode.codes import ResponseCode
from iinode.identifiers import (
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    SecKeyData,
    StringData,
    VListData,
)
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.node.templates import Template
from iinode.proto import (
    KeyExchangeMode,
    Message,
    OpCode,
    ResolutionRequest,
    ResolutionResponse,
)
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_client import NativeClient, next_request_id
from iinode.storage import SQLiteStore
from native.nodes import start_node
from templates.conftest import ADMIN, GOOD, INDEX, TEMPLATE, bearing, product, register

NODE = IndexedHandle.parse("300:0.NA/88.118.8")
HIDDEN = Permissions.ADMIN_READ | Permissions.ADMIN_WRITE


async def add_partners(service: HandleService) -> None:
    """Three partner identities with secrets, and a group holding the third."""
    for n in (1, 2, 3):
        await service.create(
            HandleName.parse(f"88.118.8/PARTNER{n}"),
            [HandleValue(300, "HS_SECKEY", SecKeyData(f"p{n}".encode()), permissions=HIDDEN)],
            NODE,
        )
    await service.create(
        HandleName.parse("88.118.8/GROUP"),
        [HandleValue(200, "HS_VLIST", VListData((IndexedHandle.parse("300:88.118.8/PARTNER3"),)))],
        NODE,
    )


def partner(n: int) -> tuple[str, str]:
    return (f"300%3A88.118.8/PARTNER{n}", f"p{n}")


async def seen(client: httpx.AsyncClient, handle: str, auth: object = None) -> set[str]:
    r = await client.get(f"/api/handles/{handle}", auth=auth)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    return {v["type"] for v in r.json()["values"]}


async def test_restricted_attributes_over_rest(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    await client.post("/api/templates", json=bearing(status="published"), auth=ADMIN)
    await register(client, "88.118.8/F1", product(**GOOD))
    await add_partners(service)
    assert "model" in await seen(client, "88.118.8/F1")
    assert "cost" not in await seen(client, "88.118.8/F1")
    for n in (1, 2, 3):
        assert "cost" not in await seen(client, "88.118.8/F1", partner(n))
    assert "cost" in await seen(client, "88.118.8/F1", ADMIN)
    # Per template: the template's readers.
    r = await client.put(
        "/api/templates/88.118.8/bearing/1/readers",
        json={"readers": ["300:88.118.8/PARTNER1"]},
        auth=ADMIN,
    )
    assert r.status_code == 200
    assert "cost" in await seen(client, "88.118.8/F1", partner(1))
    assert "cost" not in await seen(client, "88.118.8/F1", partner(2))
    # Per identifier (an HS_ADMIN with READ_VALUE only) and per group (through HS_VLIST).
    grants = {
        "values": [
            {"index": 1003, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
                "handle": "88.118.8/PARTNER2", "index": 300, "permissions": "010000000000"}}},
            {"index": 1004, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
                "handle": "88.118.8/GROUP", "index": 200, "permissions": "010000000000"}}},
        ]
    }  # fmt: skip
    r = await client.put("/api/handles/88.118.8/F1?index=1003&index=1004", json=grants, auth=ADMIN)
    assert r.status_code == 200, r.text
    assert "cost" in await seen(client, "88.118.8/F1", partner(2))
    assert "cost" in await seen(client, "88.118.8/F1", partner(3))
    # A reader may read, not write.
    r = await register(client, "88.118.8/F1", product(**{**GOOD, "cost": "1"}), auth=partner(1))
    assert r.status_code == 403
    # The restricted value is not found by value anonymously; the node's admin finds it.
    r = await client.get("/api/search", params={"attr.cost": "12.5"})
    assert r.json()["handles"] == []
    r = await client.get("/api/search", params={"attr.cost": "12.5"}, auth=ADMIN)
    assert r.json()["handles"] == ["88.118.8/F1"]
    assert (await client.get("/api/search", params={"attr.model": GOOD["model"]})).json()[
        "handles"
    ] == ["88.118.8/F1"]


async def resolve_native(address: tuple[str, int], handle: str) -> set[int]:
    request = Message(OpCode.RESOLUTION, ResolutionRequest(handle), request_id=next_request_id())
    response = await NativeClient().request(address, request)
    assert response.response_code == ResponseCode.SUCCESS
    assert isinstance(response.body, ResolutionResponse)
    return {v.index for v in response.body.values}


async def resolve_as(address: tuple[str, int], who: IndexedHandle, secret: str) -> set[int]:
    async with NativeAdminClient(*address, SecretKeyAuth(who, secret)) as admin:
        # A session bound at set-up (iinode's CIPHER_CLIENT): a resolution in an unbound
        # Diffie-Hellman session is answered as anonymous, as Handle.Net servers do.
        await admin.open_session(exchange=KeyExchangeMode.CIPHER_CLIENT)
        response = await admin.call(OpCode.RESOLUTION, ResolutionRequest("88.118.8/F1"))
    assert isinstance(response.body, ResolutionResponse)
    return {v.index for v in response.body.values}


def test_restricted_attributes_over_the_native_protocol(tmp_path: Path) -> None:
    node = start_node(tmp_path, Role.ENTERPRISE, "88.118.8")
    try:
        asyncio.run(_native_fixture(node.settings))
        asyncio.run(_native_checks(node.address))
    finally:
        node.server.stop()


async def _native_fixture(settings: NodeSettings) -> None:
    """The bearing template, F1 registered against it, partners, PARTNER1 a reader."""
    changes = ChangeCounter(settings.data_dir / COUNTER_FILE)
    store = SQLiteStore(settings.data_dir / "handles.sqlite3")
    service = HandleService(settings, store, changes=changes)
    try:
        registry = service.templates
        await registry.define(
            Template.from_json(bearing(status="published"), prefix="88.118.8"), NODE
        )
        record = [HandleValue(1001, "II_TEMPLATE", StringData(TEMPLATE))] + [
            HandleValue(INDEX[k], k, StringData(v)) for k, v in GOOD.items()
        ]
        await service.create(HandleName.parse("88.118.8/F1"), record, NODE)
        await add_partners(service)
        await registry.set_readers(
            HandleName.parse(TEMPLATE), [IndexedHandle.parse("300:88.118.8/PARTNER1")], NODE
        )
    finally:
        await store.close()
        changes.close()


async def _native_checks(address: tuple[str, int]) -> None:
    cost = INDEX["cost"]
    anonymous = await resolve_native(address, "88.118.8/F1")
    assert cost not in anonymous
    assert INDEX["model"] in anonymous
    p1, p2 = (IndexedHandle.parse(f"300:88.118.8/PARTNER{n}") for n in (1, 2))
    assert cost in await resolve_as(address, p1, "p1")
    assert cost not in await resolve_as(address, p2, "p2")
