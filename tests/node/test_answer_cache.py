"""Rendered-answer cache: hits, invalidation by writes in this or another process."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount

from iinode.api.answer_cache import AnswerCache
from iinode.api.app import create_app
from iinode.assembly import app_for_settings
from iinode.identifiers import HandleName, HandleValue, UrlData
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.service import BulkRegistrar, HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import SQLiteStore

ADMIN = ("300%3A0.NA/88.118.8", "s3cret")


def url_value(url: str) -> dict[str, object]:
    return {"index": 1, "type": "URL", "data": {"format": "string", "value": url}}


def urls(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [v["data"]["value"] for v in r.json()["values"] if v["type"] == "URL"]


def test_cache_unit_rules() -> None:
    changes = ChangeCounter()
    cache = AnswerCache(changes, max_entries=2)
    gen = cache.generation()
    cache.put(("a", b""), b"A", gen)
    assert cache.get(("a", b"")) == b"A"
    assert cache.get(("a", b"type=URL")) is None  # the query is part of the key

    # A rendering of a read taken before a write is refused.
    stale = cache.generation()
    changes.bump()
    cache.put(("b", b""), b"B", stale)
    assert cache.get(("b", b"")) is None
    assert cache.get(("a", b"")) is None  # the write emptied the cache

    gen = cache.generation()
    for k in "xyz":
        cache.put((k, b""), k.encode(), gen)
    assert len(cache) == 2
    assert cache.get(("x", b"")) is None  # oldest forgotten first
    assert cache.get(("z", b"")) == b"z"
    with pytest.raises(ValueError, match="max_entries"):
        AnswerCache(changes, max_entries=0)


async def test_write_through_the_api_is_seen_by_the_next_read(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    h = "/api/handles/88.118.8/C1"
    r = await client.put(h, json={"values": [url_value("http://a.cn/1")]}, auth=ADMIN)
    assert r.status_code == 201
    assert urls(await client.get(h)) == ["http://a.cn/1"]
    assert urls(await client.get(h)) == ["http://a.cn/1"]  # a cache hit, same bytes
    await client.put(h, json={"values": [url_value("http://a.cn/2")]}, auth=ADMIN)
    assert urls(await client.get(h)) == ["http://a.cn/2"]
    await client.delete(h, auth=ADMIN)
    assert (await client.get(h)).status_code == 404


async def test_authenticated_reads_bypass_the_cache(client: httpx.AsyncClient) -> None:
    anonymous = await client.get("/api/handles/0.NA/88.118.8")
    assert "HS_SECKEY" not in anonymous.text
    admin = await client.get("/api/handles/0.NA/88.118.8", auth=ADMIN)
    assert "HS_SECKEY" in admin.text
    again = await client.get("/api/handles/0.NA/88.118.8")
    assert "HS_SECKEY" not in again.text


async def _node(stack: AsyncExitStack, data: Path) -> httpx.AsyncClient:
    """One 'process' serving ``data``: its own store connection, counter mapping, cache."""
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=data, prefix="88.118.8")
    store = SQLiteStore(data / "h.sqlite3")
    stack.push_async_callback(store.close)
    changes = ChangeCounter(data / COUNTER_FILE)
    stack.callback(changes.close)
    service = HandleService(settings, store, changes=changes)
    transport = httpx.ASGITransport(app=create_app(service))
    return await stack.enter_async_context(
        httpx.AsyncClient(transport=transport, base_url="http://node")
    )


async def test_write_in_one_process_empties_the_cache_of_another(tmp_path: Path) -> None:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    store = SQLiteStore(tmp_path / "h.sqlite3")
    await HandleService(settings, store).initialise("s3cret")
    await store.close()
    async with AsyncExitStack() as stack:
        a = await _node(stack, tmp_path)
        b = await _node(stack, tmp_path)
        h = "/api/handles/88.118.8/X"
        await b.put(h, json={"values": [url_value("http://a.cn/1")]}, auth=ADMIN)
        assert urls(await a.get(h)) == ["http://a.cn/1"]  # now cached in a
        await b.put(h, json={"values": [url_value("http://a.cn/2")]}, auth=ADMIN)
        assert urls(await a.get(h)) == ["http://a.cn/2"]


async def test_write_from_another_os_process_is_seen(tmp_path: Path) -> None:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    store = SQLiteStore(tmp_path / "h.sqlite3")
    await HandleService(settings, store).initialise("s3cret")
    await store.close()
    async with AsyncExitStack() as stack:
        a = await _node(stack, tmp_path)
        b = await _node(stack, tmp_path)
        h = "/api/handles/88.118.8/Y"
        await b.put(h, json={"values": [url_value("http://a.cn/1")]}, auth=ADMIN)
        assert urls(await a.get(h)) == ["http://a.cn/1"]
        # The bulk loader run as a separate program writes and bumps the shared counter.
        code = (
            "import asyncio, sys\n"
            "from pathlib import Path\n"
            "from iinode.identifiers import HandleName, HandleValue, UrlData\n"
            "from iinode.node.changes import ChangeCounter\n"
            "from iinode.node.service import BulkRegistrar, HandleService\n"
            "from iinode.node.settings import NodeSettings, Role\n"
            "from iinode.storage import SQLiteStore\n"
            "d = Path(sys.argv[1])\n"
            "async def main():\n"
            "    s = NodeSettings(role=Role.ENTERPRISE, data_dir=d, prefix='88.118.8')\n"
            "    store = SQLiteStore(d / 'h.sqlite3')\n"
            "    svc = HandleService(s, store, changes=ChangeCounter(d / 'changes.counter'))\n"
            "    reg = BulkRegistrar(svc, overwrite=True)\n"
            "    v = HandleValue(1, 'URL', UrlData('http://a.cn/bulk'))\n"
            "    await reg.write([reg.encode(HandleName('88.118.8', 'Y'), [v])])\n"
            "    await store.close()\n"
            "asyncio.run(main())\n"
        )
        import sys

        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, str(tmp_path))
        assert await proc.wait() == 0
        assert urls(await a.get(h)) == ["http://a.cn/bulk"]


@pytest.fixture
async def served(tmp_path: Path) -> tuple[FastAPI, NodeSettings]:
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8", telemetry=False
    )
    store = SQLiteStore(tmp_path / "handles.sqlite3")
    service = HandleService(settings, store)
    await service.initialise("s3cret")
    reg = BulkRegistrar(service)
    await reg.write(
        [reg.encode(HandleName("88.118.8", "B"), [HandleValue(1, "URL", UrlData("http://b.cn"))])]
    )
    await store.close()
    return app_for_settings(settings), settings


async def test_app_for_settings_serves_without_a_mount_and_restarts(
    served: tuple[FastAPI, NodeSettings],
) -> None:
    app, settings = served
    before = list(app.router.routes)
    counts = []
    for _ in range(2):  # started, stopped and started again: routes are not doubled
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
                assert urls(await c.get("/api/handles/88.118.8/B")) == ["http://b.cn"]
                doc = (await c.get("/openapi.json")).json()
                assert {"get", "put", "delete"} <= set(doc["paths"]["/api/handles/{handle}"])
            counts.append(len(app.router.routes))
            assert not any(isinstance(r, Mount) and r.path in ("", "/") for r in app.router.routes)
        assert app.router.routes == before
    assert counts[0] == counts[1] > len(before)
    assert (settings.data_dir / COUNTER_FILE).exists()
