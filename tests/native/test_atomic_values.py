"""ADD_VALUE and MODIFY_VALUE check the indexes atomically with the write.

Several clients, each on its own authenticated TCP connection to two worker
processes sharing one SQLite store, race on the same handle.  Exactly one
ADD_VALUE of an index may win; a MODIFY_VALUE racing a REMOVE_VALUE must never
bring a removed index back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers import HandleName, HandleValue, IndexedHandle, UrlData
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_server import NativeWorkers, start_native_workers
from native.nodes import SECRET, seed
from support import free_port

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")
CLIENTS = 8


def url(index: int, text: str) -> HandleValue:
    return HandleValue(index, "URL", UrlData(text))


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeWorkers]:
    root: Path = tmp_path_factory.mktemp("atomic")
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=root, prefix="88.118.8", handle_port=free_port()
    )
    seed(settings, {})
    with start_native_workers(settings, 2, host="127.0.0.1") as running:
        yield running


async def sessions(workers: NativeWorkers, n: int) -> list[NativeAdminClient]:
    auth = SecretKeyAuth(ADMIN, SECRET)
    clients = [NativeAdminClient("127.0.0.1", workers.port, auth) for _ in range(n)]
    for client in clients:
        await client.connect()
        await client.open_session()
    return clients


async def outcome(call: asyncio.Future[None] | asyncio.Task[None]) -> ResponseCode:
    try:
        await call
    except HandleError as exc:
        return exc.code
    return ResponseCode.SUCCESS


async def test_only_one_concurrent_add_of_an_index_succeeds(workers: NativeWorkers) -> None:
    clients = await sessions(workers, CLIENTS)
    try:
        for round_ in range(6):
            handle = HandleName.parse(f"88.118.8/ADD-{round_}")
            await clients[0].create(handle, [url(1, "http://base/")])
            calls = [
                asyncio.ensure_future(c.add_values(handle, [url(2, f"http://writer/{n}")]))
                for n, c in enumerate(clients)
            ]
            codes = [await outcome(call) for call in calls]
            assert codes.count(ResponseCode.SUCCESS) == 1, codes
            assert set(codes) == {ResponseCode.SUCCESS, ResponseCode.VALUE_ALREADY_EXISTS}
    finally:
        for client in clients:
            await client.close()


async def test_modify_never_resurrects_a_removed_index(workers: NativeWorkers) -> None:
    clients = await sessions(workers, CLIENTS)
    try:
        for round_ in range(6):
            handle = HandleName.parse(f"88.118.8/MOD-{round_}")
            await clients[0].create(handle, [url(1, "http://base/"), url(2, "http://two/")])
            remove = asyncio.ensure_future(clients[0].remove_values(handle, [2]))
            modifies = [
                asyncio.ensure_future(c.modify_values(handle, [url(2, f"http://m/{n}")]))
                for n, c in enumerate(clients[1:])
            ]
            assert await outcome(remove) == ResponseCode.SUCCESS
            codes = {await outcome(m) for m in modifies}
            assert codes <= {ResponseCode.SUCCESS, ResponseCode.VALUES_NOT_FOUND}
            # Whatever the interleaving, index 2 is gone: a modify that ran after the
            # removal failed rather than adding the value back.
            with pytest.raises(HandleError) as gone:
                await clients[0].remove_values(handle, [2])
            assert gone.value.code == ResponseCode.VALUES_NOT_FOUND
    finally:
        for client in clients:
            await client.close()
