"""BulkRegistrar.write_behind: the store writes one batch while the caller encodes the
next; results come back in order, and a failed batch stops the load with every batch
before it committed and nothing after it written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iinode.errors import ServerNotResponsible, StorageError
from iinode.identifiers import HandleName, HandleValue, UrlData
from iinode.node.bulk import BulkRegistrar
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import SQLiteStore
from iinode.storage.base import BulkResult
from iinode.storage.search import SearchQuery

PREFIX = "88.118.8"


@pytest.fixture
async def service(tmp_path: Path) -> HandleService:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix=PREFIX)
    return HandleService(settings, SQLiteStore(tmp_path / "h.sqlite3"))


def batch(registrar: BulkRegistrar, start: int, size: int) -> list[tuple[str, str, bytes]]:
    return [
        registrar.encode(
            HandleName(PREFIX, f"P{n:05d}"), [HandleValue(1, "URL", UrlData(f"http://f.cn/{n}"))]
        )
        for n in range(start, start + size)
    ]


async def test_results_come_back_one_batch_behind_and_in_order(service: HandleService) -> None:
    registrar = BulkRegistrar(service)
    try:
        assert await registrar.drain() is None
        assert await registrar.write_behind(batch(registrar, 0, 30)) is None
        assert await registrar.write_behind(batch(registrar, 20, 30)) == (30, 0)
        assert await registrar.write_behind(batch(registrar, 50, 5)) == (20, 10)
        assert await registrar.drain() == (5, 0)
        assert await registrar.drain() is None
        assert await service.store.count() == 55
        found = await service.store.search(SearchQuery((("url", "http://f.cn/54"),)))
        assert found == [f"{PREFIX}/P00054"]
    finally:
        await service.store.close()


async def test_a_handle_in_two_batches_in_flight_keeps_each_batchs_terms(
    service: HandleService,
) -> None:
    registrar = BulkRegistrar(service, overwrite=True)
    name = HandleName(PREFIX, "SAME")
    try:
        first = [registrar.encode(name, [HandleValue(1, "URL", UrlData("http://f.cn/old"))])]
        await registrar.write_behind(first)
        # Encoded while the first batch may still be writing: its terms are not mixed up.
        second = [registrar.encode(name, [HandleValue(1, "URL", UrlData("http://f.cn/new"))])]
        await registrar.write_behind(second)
        await registrar.drain()
        search = service.store.search
        assert await search(SearchQuery((("url", "http://f.cn/new"),))) == [str(name)]
        assert await search(SearchQuery((("url", "http://f.cn/old"),))) == []
    finally:
        await service.store.close()


async def test_a_failed_batch_stops_the_load_at_the_next_call(
    service: HandleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = service.store
    write = store.bulk_put
    calls = 0

    async def second_fails(*args: Any, **kwargs: Any) -> BulkResult:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StorageError("disk full")
        return await write(*args, **kwargs)

    monkeypatch.setattr(store, "bulk_put", second_fails)
    registrar = BulkRegistrar(service)
    try:
        assert await registrar.write_behind(batch(registrar, 0, 10)) is None
        assert await registrar.write_behind(batch(registrar, 10, 10)) == (10, 0)
        with pytest.raises(StorageError, match="disk full"):
            await registrar.write_behind(batch(registrar, 20, 10))
        assert (
            await registrar.drain() is None
        )  # the batch given with the failing call never started
        assert calls == 2
        assert await store.count() == 10
        assert await store.get(f"{PREFIX}/P00020") is None
    finally:
        await store.close()


async def test_write_waits_for_the_batch_in_flight_first(service: HandleService) -> None:
    registrar = BulkRegistrar(service, overwrite=True)
    name = HandleName(PREFIX, "ORDER")
    try:
        old = [registrar.encode(name, [HandleValue(1, "URL", UrlData("http://f.cn/1"))])]
        await registrar.write_behind(old)
        new = [registrar.encode(name, [HandleValue(1, "URL", UrlData("http://f.cn/2"))])]
        assert await registrar.write(new) == (1, 0)
        assert await registrar.drain() is None
        stored = await service.lookup(name) or ()
        assert [v.data for v in stored if v.type == "URL"] == [UrlData("http://f.cn/2")]
    finally:
        await service.store.close()


async def test_the_batch_reaches_the_store_before_write_behind_returns(
    service: HandleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = service.store
    write = store.bulk_put
    started: list[int] = []

    async def recording(rows: Any, **kwargs: Any) -> BulkResult:
        started.append(len(rows))
        return await write(rows, **kwargs)

    monkeypatch.setattr(store, "bulk_put", recording)
    registrar = BulkRegistrar(service)
    try:
        await registrar.write_behind(batch(registrar, 0, 7))
        # No other await since: the caller's encoding runs while the store writes.
        assert started == [7]
        assert await registrar.drain() == (7, 0)
    finally:
        await store.close()


async def test_a_delegated_row_raises_at_once_and_the_batch_in_flight_still_reports(
    service: HandleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    registrar = BulkRegistrar(service)

    async def refuse_p3(handle: HandleName) -> None:  # asked for every row: none remembered
        if handle.suffix == "P00013":
            raise ServerNotResponsible(f"{handle} is delegated")

    monkeypatch.setattr(registrar, "refuse_delegated", refuse_p3)
    try:
        assert await registrar.write_behind(batch(registrar, 0, 10)) is None
        with pytest.raises(ServerNotResponsible, match="delegated"):
            await registrar.write_behind(batch(registrar, 10, 10))
        assert await registrar.drain() == (10, 0)  # the first batch's result is not lost
        assert await service.store.count() == 10
    finally:
        await service.store.close()
