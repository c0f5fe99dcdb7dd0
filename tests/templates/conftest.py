"""Fixtures: an enterprise node (88.118.8) over SQLite with its REST app in process,
a bearing template, and helpers to register identifiers against it."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from iinode.api.app import create_app
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import HandleStore, SQLiteStore
from support import STORE_KINDS, empty_store

SECRET = "s3cret"
ADMIN = ("300%3A0.NA/88.118.8", SECRET)
TEMPLATE = "88.118.8/template/bearing/1"

BEARING: dict[str, Any] = {
    "name": "bearing",
    "version": "1",
    "industry": "C3451",
    "description": "rolling bearings",
    "attributes": [
        {"name": "model", "type": "string", "required": True,
         "constraints": {"pattern": "^[A-Z0-9-]+$", "maxLength": 32}},
        {"name": "diameter", "type": "number", "constraints": {"min": 1, "max": 500}},
        {"name": "made", "type": "date", "constraints": {"min": "2000-01-01"}},
        {"name": "grade", "type": "enum", "constraints": {"values": ["P0", "P6", "P5"]}},
        {"name": "maker", "type": "reference"},
        {"name": "serial", "type": "string", "required": True, "unique": True},
        {"name": "cost", "type": "number", "access": "restricted"},
    ],
}  # fmt: skip

#: The attribute indexes the definition above gets (2000 upward, in order).
INDEX = {a["name"]: 2000 + n for n, a in enumerate(BEARING["attributes"])}


def bearing(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BEARING)
    doc.update(changes)
    return doc


def product(template: str = TEMPLATE, url: str | None = None, **attrs: str) -> dict[str, Any]:
    """A PUT body registering an identifier against ``template`` with ``attrs``."""
    values: list[dict[str, Any]] = [{"index": 1001, "type": "II_TEMPLATE", "data": template}]
    if url is not None:
        values.append({"index": 1, "type": "URL", "data": url})
    for name, text in attrs.items():
        values.append({"index": INDEX.get(name, 3000), "type": name, "data": text})
    return {"values": values}


GOOD = {"model": "6204-2RS", "serial": "S-0001", "diameter": "47", "made": "2024-05-01",
        "grade": "P6", "maker": "88.118.8/FACTORY", "cost": "12.5"}  # fmt: skip


def make_service(data_dir: Path, prefix: str = "88.118.8") -> HandleService:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=data_dir, prefix=prefix)
    return HandleService(settings, SQLiteStore(data_dir / "h.sqlite3"))


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[HandleService]:
    svc = make_service(tmp_path)
    await svc.initialise(SECRET)
    yield svc
    await svc.store.close()


@pytest.fixture
async def client(service: HandleService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
        yield c


async def publish_bearing(client: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    r = await client.post("/api/templates", json=bearing(status="published", **changes), auth=ADMIN)
    assert r.status_code == 201, r.text
    return r


async def register(
    client: httpx.AsyncClient, handle: str, body: dict[str, Any], auth: Any = ADMIN
) -> httpx.Response:
    return await client.put(f"/api/handles/{handle}", json=body, auth=auth)


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HandleStore]:
    """An empty store of each backend."""
    async with empty_store(request.param, tmp_path) as s:
        yield s
