"""iinode's admin client stamps every request with an expiration time, as Handle.Net 9 clients do.

A Handle.Net server refuses a message whose expiration time has passed, so a request
with expiration time 0 is one the reference server may treat as expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from iinode.errors import IinodeError
from iinode.identifiers import HandleName, IndexedHandle
from iinode.proto import DEFAULT_MESSAGE_LIFETIME, Message, OpCode, TcpFramer
from iinode.proto._message import Frame
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth


async def test_admin_requests_carry_an_expiration_time_twelve_hours_ahead() -> None:
    seen: list[Message] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = TcpFramer()
        while not seen:
            data = await reader.read(65536)
            if not data:
                break
            framer.receive_data(data)
            event = framer.next_event()
            if isinstance(event, Frame):
                seen.append(Message.from_frame(event))
        writer.close()  # no answer: the client gives up, the request is what we check

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    auth = SecretKeyAuth(IndexedHandle.parse("300:0.NA/88.118.8"), "secret")
    before = int(time.time())
    try:
        async with NativeAdminClient("127.0.0.1", port, auth, timeout=2.0) as client:
            with contextlib.suppress(IinodeError):
                await client.delete(HandleName.parse("88.118.8/X"))
    finally:
        server.close()
        await server.wait_closed()
    after = int(time.time())
    assert len(seen) == 1
    request = seen[0]
    assert request.opcode == OpCode.DELETE_HANDLE
    assert before + DEFAULT_MESSAGE_LIFETIME <= request.expiration
    assert request.expiration <= after + DEFAULT_MESSAGE_LIFETIME
