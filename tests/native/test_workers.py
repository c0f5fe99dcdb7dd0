"""Several worker processes share the port and stay coherent after writes elsewhere."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from iinode.identifiers import HandleName, HandleValue, IndexedHandle, UrlData
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_server import start_native_workers
from iinode.storage import SQLiteStore
from native.golden import parse_response, resolution_request, udp_ask
from native.nodes import seed, url
from support import free_port


def ask_many(address: tuple[str, int], n: int) -> set[bytes]:
    """Ask from ``n`` source ports, so the kernel spreads the requests over the workers."""
    seen = set()
    for i in range(n):
        answer = parse_response(udp_ask(address, resolution_request("88.118.8/X", i + 1)))
        assert answer["code"] == 1
        seen.add(answer["values"][0][2])  # type: ignore[index]
    return seen


def test_two_workers_see_a_write_made_by_another_process(tmp_path: Path) -> None:
    port = free_port()
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8", handle_port=port
    )
    seed(settings, {"88.118.8/X": [url(1, "http://old/")]})
    workers = start_native_workers(settings, 2, host="127.0.0.1")
    try:
        address = ("127.0.0.1", port)
        assert ask_many(address, 40) == {b"http://old/"}
        assert ask_many(address, 40) == {b"http://old/"}  # warm: from the fast path

        async def write() -> None:  # this test process writes, as the REST API would
            store = SQLiteStore(tmp_path / "handles.sqlite3")
            changes = ChangeCounter(tmp_path / COUNTER_FILE)
            service = HandleService(settings, store, changes=changes)
            identity = HandleName.parse("0.NA/88.118.8")
            new = [HandleValue(1, "URL", UrlData("http://new/"))]
            await service.put_values(
                HandleName.parse("88.118.8/X"), new, IndexedHandle(300, identity)
            )
            changes.close()
            await store.close()

        asyncio.run(write())
        time.sleep(0.01)
        assert ask_many(address, 40) == {b"http://new/"}
    finally:
        workers.stop()
    assert all(not p.is_alive() for p in workers.processes)
