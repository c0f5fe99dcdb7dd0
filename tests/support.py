"""Shared test helpers (importable as ``support``; tests/ is on the path).

Tests that need an external service (PostgreSQL, Redis, Mosquitto, NATS) call
``require_service``: without the service they skip, unless
``IINODE_REQUIRE_SERVICES=1`` is set (as CI does), in which case they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from iinode.storage import HandleStore, MemoryStore, SQLiteStore
from iinode.storage.postgres import PostgresStore

SERVICES = {
    "postgres": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
    "mosquitto": ("127.0.0.1", 1883),
    "nats": ("127.0.0.1", 4222),
}


def services_required() -> bool:
    return os.environ.get("IINODE_REQUIRE_SERVICES", "") not in ("", "0")


def require_service(name: str) -> tuple[str, int]:
    """Return (host, port) of a running service, or skip/fail the test."""
    host, port = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return host, port


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The identifier store backends every store test runs on.
STORE_KINDS = ("memory", "sqlite", "postgres")
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@asynccontextmanager
async def empty_store(kind: str, tmp_path: Path) -> AsyncIterator[HandleStore]:
    """An empty store of one backend (PostgreSQL: a table of its own, dropped after)."""
    if kind == "memory":
        s: HandleStore = MemoryStore()
    elif kind == "sqlite":
        s = SQLiteStore(tmp_path / "h.sqlite3")
    else:
        require_service("postgres")
        s = await PostgresStore.open(PG_URL, table=f"t_{uuid.uuid4().hex[:12]}")
    try:
        yield s
    finally:
        if isinstance(s, PostgresStore):
            await s.drop()
        await s.close()
