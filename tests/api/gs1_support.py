"""A node with GS1 links, served in process (``api.gs1_support``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import httpx

from iinode.api.app import create_app
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import MemoryStore

SECRET = "gs1-secret"
PREFIX = "88.118.8"
GTIN = "09506000134352"  # GS1's example GTIN (Dal Giardino risotto rice)
ROOT = "http://node"


def admin(prefix: str = PREFIX, secret: str = SECRET) -> httpx.BasicAuth:
    return httpx.BasicAuth(quote(f"300:0.NA/{prefix}", safe=""), secret)


@asynccontextmanager
async def gs1_node(tmp_path: Path, prefix: str = PREFIX) -> AsyncIterator[httpx.AsyncClient]:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path / prefix, prefix=prefix)
    service = HandleService(settings, MemoryStore())
    await service.initialise(SECRET)
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url=ROOT) as client:
        yield client


async def add_link(
    client: httpx.AsyncClient, path: str, auth: httpx.Auth | None = None, **link: object
) -> httpx.Response:
    response = await client.post(f"/api/gs1/links{path}", json=link, auth=auth or admin())
    return response
