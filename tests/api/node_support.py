"""Nodes built by the node's assembly (``iinode.assembly``), served in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI

from iinode.assembly import Node as AssembledNode
from iinode.assembly import NodeExtensions, build_node, node_app
from iinode.identifiers import HandleValue, IndexedHandle, Permissions, Prefix, SecKeyData
from iinode.node.changes import ChangeCounter
from iinode.node.service import HandleService, site_from_url
from iinode.node.settings import NodeSettings, Role
from iinode.storage import MemoryStore

SECRET = "node-secret"


def auth_for(prefix: str, secret: str = SECRET) -> httpx.BasicAuth:
    return httpx.BasicAuth(quote(f"300:0.NA/{prefix}", safe=""), secret)


@dataclass
class Node:
    node: AssembledNode
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def settings(self) -> NodeSettings:
        return self.node.settings

    @property
    def service(self) -> HandleService:
        return self.node.service

    @property
    def extensions(self) -> NodeExtensions:
        return self.node.extensions

    async def delegate(self, child: str, url: str, secret: str = SECRET) -> None:
        """Write ``0.NA/<child>`` here with an HS_SITE and the child's HS_SECKEY at 300."""
        values = [
            HandleValue(1, "HS_SITE", site_from_url(url)),
            HandleValue(
                300,
                "HS_SECKEY",
                SecKeyData(secret.encode()),
                permissions=Permissions.ADMIN_READ | Permissions.ADMIN_WRITE,
            ),
        ]
        assert self.settings.admin_identity is not None
        await self.service.create(
            Prefix(child).na_handle, values, IndexedHandle.parse(self.settings.admin_identity)
        )


@asynccontextmanager
async def running_node(
    root: Path,
    role: Role,
    prefix: str,
    *,
    parent_app: FastAPI | None = None,
    **overrides: Any,
) -> AsyncIterator[Node]:
    """A node on a memory store; its monitoring client talks to ``parent_app`` in process."""
    settings = NodeSettings(
        role=role,
        data_dir=root / prefix,
        prefix=prefix,
        parent_url="http://parent.test:80" if parent_app is not None else None,
        report_secret=SECRET if parent_app is not None else None,
        **overrides,
    )
    upward = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=parent_app or FastAPI()), base_url="http://parent.test"
    )
    try:
        node = await build_node(
            settings, store=MemoryStore(), changes=ChangeCounter(), admin_secret=SECRET,
            resolve=False, client=upward,
        )  # fmt: skip
        app = node_app(node)
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node.test"
        )
        try:
            yield Node(node, app, http)
        finally:
            await http.aclose()
            await node.aclose()
    finally:
        await upward.aclose()
