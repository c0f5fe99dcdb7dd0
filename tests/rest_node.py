"""A node's REST API for tests: in process (``client``) or on a real port (``live_node``).

The fixtures are registered by the conftest modules that import them
(``tests/api/conftest.py``, ``tests/node/conftest.py``); ``SECRET`` and ``ADMIN``
are the node administrator's credentials; ``served`` runs a service's API on a
real port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
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
#: The prefix administrator (``300:0.NA/88.118.8``), as a REST client names it.
ADMIN = httpx.BasicAuth("300%3A0.NA/88.118.8", SECRET)


def _service(data_dir: Path, **settings: int) -> tuple[HandleService, SQLiteStore]:
    """An enterprise node for ``88.118.8`` over a SQLite file in ``data_dir``."""
    store = SQLiteStore(data_dir / "h.sqlite3")
    node = NodeSettings(role=Role.ENTERPRISE, data_dir=data_dir, prefix="88.118.8", **settings)
    return HandleService(node, store), store


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[HandleService]:
    svc, store = _service(tmp_path)
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


@contextmanager
def served(service: HandleService, port: int) -> Iterator[None]:
    """``service``'s REST API served by uvicorn on 127.0.0.1:``port``, in a background
    thread, until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def live_node(tmp_path: Path) -> Iterator[LiveNode]:
    """A node served by uvicorn on a real port, in a background thread."""
    port = free_port()
    svc, _ = _service(tmp_path, http_port=port)
    asyncio.run(svc.initialise(SECRET))
    with served(svc, port):
        yield LiveNode(f"http://127.0.0.1:{port}", tmp_path)
