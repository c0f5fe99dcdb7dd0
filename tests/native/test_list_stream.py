"""LIST_HANDLES with more handles than fit one message: CN-flagged parts, paged from the store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.identifiers import HandleName, IndexedHandle
from iinode.node.settings import NodeSettings, Role
from iinode.proto import (
    CLOSED,
    NEED_DATA,
    ErrorBody,
    Frame,
    HandleBody,
    KeyExchangeMode,
    ListHandlesResponse,
    Message,
    OpCode,
    OpFlag,
    ProtoLimits,
    TcpFramer,
)
from iinode.resolution import native_handler
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_client import next_request_id
from iinode.resolution.native_server import NativeServer
from native.nodes import SECRET, Node, seed, url
from support import free_port

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")
COUNT = 1500
LIMIT = 8192  # the server's (and our reader's) largest message


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    port = free_port()
    settings = NodeSettings(
        role=Role.ENTERPRISE,
        data_dir=tmp_path / "ent",
        prefix="88.118.8",
        http_port=free_port(),
        handle_port=port,
    )
    settings.data_dir.mkdir()
    seed(settings, {f"88.118.8/ITEM-{n:05d}": [url(1, f"http://f.cn/{n}")] for n in range(COUNT)})
    server = NativeServer(
        settings, host="127.0.0.1", port=port, limits=ProtoLimits(max_message_bytes=LIMIT)
    )
    server.start()
    yield Node(settings, server)
    server.stop()


async def read_parts(node: Node, request: Message) -> list[Message]:
    """The raw messages answering ``request``, each checked against ``LIMIT``."""
    reader, writer = await asyncio.open_connection(*node.address)
    framer = TcpFramer(ProtoLimits(max_message_bytes=LIMIT))
    writer.write(request.to_wire())
    parts: list[Message] = []
    try:
        while not parts or parts[-1].flags & OpFlag.CN:
            event = framer.next_event()
            assert event is not CLOSED, "the server closed the connection inside the list"
            if event is NEED_DATA:
                framer.receive_data(await asyncio.wait_for(reader.read(65_536), 5))
                continue
            assert isinstance(event, Frame)
            parts.append(Message.from_frame(event))
    finally:
        writer.close()
    return parts


async def test_a_long_list_is_streamed_in_parts_paged_from_the_store(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native_handler, "LIST_PAGE", 400)  # four store pages
    everything = {f"88.118.8/ITEM-{n:05d}" for n in range(COUNT)}
    async with NativeAdminClient(*node.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        # Bound at set-up (iinode's CIPHER_CLIENT), so the signed request below is not challenged.
        await admin.open_session(exchange=KeyExchangeMode.CIPHER_CLIENT)
        request = admin._sign(
            Message(
                OpCode.LIST_HANDLES,
                HandleBody("0.NA/88.118.8"),
                flags=OpFlag.KA,
                request_id=next_request_id(),
            )
        )
        parts = await read_parts(node, request)
        assert len(parts) > 3
        assert all(p.flags & OpFlag.CN for p in parts[:-1])
        assert not parts[-1].flags & OpFlag.CN
        assert {p.request_id for p in parts} == {request.request_id}
        assert all(p.response_code == ResponseCode.SUCCESS for p in parts)
        listed: list[str] = []
        for part in parts:
            assert isinstance(part.body, ListHandlesResponse)
            assert len(part.to_wire()) <= LIMIT
            listed.extend(part.body.handles)
        assert len(listed) == len(set(listed)) == len(everything)
        assert set(listed) == everything
        # The admin client gathers the parts into one answer.
        gathered = await admin.list_handles(HandleName.parse("0.NA/88.118.8"))
        assert set(gathered) == everything
        assert len(gathered) == len(everything)


async def test_a_refused_list_is_one_error_and_a_short_list_one_message(node: Node) -> None:
    async with NativeAdminClient(*node.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        # Bound at set-up (iinode's CIPHER_CLIENT), so the signed request below is not challenged.
        await admin.open_session(exchange=KeyExchangeMode.CIPHER_CLIENT)
        request = admin._sign(
            Message(
                OpCode.LIST_HANDLES,
                HandleBody("88.118.8/NOT-A-PREFIX"),
                flags=OpFlag.KA,
                request_id=next_request_id(),
            )
        )
        (error,) = await read_parts(node, request)
        assert error.response_code == ResponseCode.INVALID_HANDLE
        assert isinstance(error.body, ErrorBody)
        # A prefix with no handles under it: one message, no CN.
        empty = admin._sign(
            Message(
                OpCode.LIST_HANDLES,
                HandleBody("0.NA/88.118.8.9"),
                flags=OpFlag.KA,
                request_id=next_request_id(),
            )
        )
        (answer,) = await read_parts(node, empty)
        assert answer.response_code == ResponseCode.SUCCESS
        assert isinstance(answer.body, ListHandlesResponse)
        assert answer.body.handles == ()
