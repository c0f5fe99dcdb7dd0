from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from iinode.api.app import create_app
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import SQLiteStore
from support import free_port

SECRET = "s3cret"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[HandleService]:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    store = SQLiteStore(tmp_path / "h.sqlite3")
    svc = HandleService(settings, store)
    await svc.initialise(SECRET)
    yield svc
    await store.close()


@pytest.fixture
async def client(service: HandleService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
        yield c


class LiveNode:
    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir


@pytest.fixture
def live_node(tmp_path: Path) -> Iterator[LiveNode]:
    """A node served by uvicorn on a real port, in a background thread."""
    port = free_port()
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8", http_port=port
    )
    store = SQLiteStore(tmp_path / "h.sqlite3")
    svc = HandleService(settings, store)
    asyncio.run(svc.initialise(SECRET))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(svc), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    yield LiveNode(f"http://127.0.0.1:{port}", tmp_path)
    server.should_exit = True
    thread.join(10)
