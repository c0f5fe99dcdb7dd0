"""The TCP side of a native server process (asyncio, one task per connection).

Each connection has its own ``TcpFramer`` (bounded: the announced length is
checked before the body is buffered) and ``PeerState`` (open challenges).
Requests on one connection are answered in order.  The connection closes after
an answer unless the request asked to keep it alive (KA) or the answer is a
challenge; idle connections and connections stuck inside a message close after
``idle_timeout``.  A stream that stops parsing gets one PROTOCOL_ERROR answer
(when its request id is known) and is closed.
"""

from __future__ import annotations

import asyncio

from iinode.codes import ResponseCode
from iinode.errors import RemoteProtocolError
from iinode.proto import (
    CLOSED,
    NEED_DATA,
    ErrorBody,
    Frame,
    Message,
    OpCode,
    OpFlag,
    ProtoLimits,
    TcpFramer,
)
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_sessions import PeerState
from iinode.resolution.native_udp import protocol_error

_READ_SIZE = 65_536


class TcpTransport:
    """Accepts connections for one ``NativeHandler``; pass ``serve`` to ``start_server``."""

    def __init__(
        self,
        handler: NativeHandler,
        *,
        limits: ProtoLimits | None = None,
        idle_timeout: float = 30.0,
        max_connections: int = 1024,
    ) -> None:
        self.handler = handler
        self.counters = handler.counters
        self.limits = limits or ProtoLimits()
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.max_connections:
            self.counters.dropped += 1
            writer.close()
            return
        self.connections += 1
        try:
            await self._converse(reader, writer)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self.connections -= 1
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = TcpFramer(self.limits)
        state = PeerState()
        while True:
            try:
                event = framer.next_event()
            except RemoteProtocolError as exc:
                self.counters.protocol_errors += 1
                writer.write(self._stream_error(framer, exc))
                await writer.drain()
                return
            if event is CLOSED:
                return
            if event is NEED_DATA:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), self.idle_timeout)
                framer.receive_data(data)
                continue
            assert isinstance(event, Frame)
            try:
                request = Message.from_frame(event)
            except RemoteProtocolError as exc:
                self.counters.protocol_errors += 1
                writer.write(protocol_error(event, exc.message).to_wire())
                await writer.drain()
                return
            outcome = await self.handler.handle(request, state)
            response = outcome.message
            if response is not None:
                writer.write(response.to_wire())
                await writer.drain()
            challenged = (
                response is not None
                and response.response_code == ResponseCode.AUTHENTICATION_NEEDED
            )
            if not (request.flags & OpFlag.KA or challenged):
                return

    @staticmethod
    def _stream_error(framer: TcpFramer, exc: RemoteProtocolError) -> bytes:
        # Once the stream is out of step the request id is unknown: answer with 0.
        body = ErrorBody(exc.message[:200])
        return Message(OpCode.RESERVED, body, ResponseCode.PROTOCOL_ERROR).to_wire()


__all__ = ["TcpTransport"]
