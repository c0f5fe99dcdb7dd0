"""Helpers: native servers on 127.0.0.1 (one node, or a three-level hierarchy)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from iinode.identifiers import HandleName, HandleValue, UrlData, site_for
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_server import NativeServer
from iinode.storage import SQLiteStore
from support import free_port

SECRET = "s3cret"


@dataclass
class Node:
    settings: NodeSettings
    server: NativeServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.port)


def seed(settings: NodeSettings, records: dict[str, list[HandleValue]]) -> None:
    async def run() -> None:
        store = SQLiteStore(settings.data_dir / "handles.sqlite3")
        changes = ChangeCounter(settings.data_dir / COUNTER_FILE)
        service = HandleService(settings, store, changes=changes)
        if settings.prefix is not None:
            await service.initialise(SECRET)
        from iinode.identifiers import encode_record

        for handle, values in records.items():
            raw = encode_record(values)
            await store.modify(str(HandleName.parse(handle)), lambda _old, raw=raw: raw)
        changes.bump()
        changes.close()
        await store.close()

    asyncio.run(run())


def start_node(
    root: Path,
    role: Role,
    prefix: str | None,
    records: dict[str, list[HandleValue]] | None = None,
    *,
    parent_port: int | None = None,
) -> Node:
    port = free_port()
    settings = NodeSettings(
        role=role,
        data_dir=root / (prefix or "recursive"),
        prefix=prefix,
        http_port=free_port(),
        handle_port=port,
        parent_url="http://127.0.0.1:1" if parent_port else None,
        parent_handle_port=parent_port,
    )
    settings.data_dir.mkdir(parents=True)
    seed(settings, records or {})
    server = NativeServer(settings, host="127.0.0.1", port=port)
    server.start()
    return Node(settings, server)


def url(index: int, text: str) -> HandleValue:
    return HandleValue(index, "URL", UrlData(text))


def delegation(port: int) -> list[HandleValue]:
    return [HandleValue(1, "HS_SITE", site_for("127.0.0.1", handle_port=port))]


@dataclass
class Hierarchy:
    top: Node
    secondary: Node
    enterprise: Node

    def __iter__(self) -> Iterator[Node]:
        return iter((self.top, self.secondary, self.enterprise))
