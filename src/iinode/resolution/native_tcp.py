"""The TCP side of a native server process (asyncio, one task per connection).

Each connection has its own ``TcpFramer`` (bounded: the announced length is
checked before the body is buffered) and ``PeerState`` (the client's address).
Requests on one connection are answered in order.  The connection closes after
an answer unless the request asked to keep it alive (KA) or the answer is a
challenge.  A stream that stops parsing gets one PROTOCOL_ERROR answer (when
its request id is known) and is closed.

Slow and greedy peers are bounded:

* between messages a connection may stay silent for ``idle_timeout``; once a
  message has begun, all of it must arrive within ``message_timeout`` (however
  the bytes trickle in);
* every write must drain within ``write_timeout`` (a peer that does not read
  is dropped);
* at most ``max_connections`` connections, ``max_connections_per_peer`` from
  one host;
* a message that spans reads reserves its announced length from a budget of
  ``max_pending_bytes`` shared by all connections; when the budget is spent the
  message is refused with SERVER_BUSY and the connection closed.

A streamed answer (``Outcome.more``: LIST_HANDLES in CN-flagged parts) is written
message by message, each drained before the next is produced.
"""

from __future__ import annotations

import asyncio
import contextlib

from iinode.codes import ResponseCode
from iinode.errors import LocalProtocolError, RemoteProtocolError
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
from iinode.resolution.native_handler import NativeHandler, Outcome
from iinode.resolution.native_sessions import PeerState
from iinode.resolution.native_udp import protocol_error

_READ_SIZE = 65_536


class _Refused(Exception):
    """The connection is closed on purpose (after a timeout or a refusal)."""


class TcpTransport:
    """Accepts connections for one ``NativeHandler``; pass ``serve`` to ``start_server``."""

    def __init__(
        self,
        handler: NativeHandler,
        *,
        limits: ProtoLimits | None = None,
        idle_timeout: float = 30.0,
        message_timeout: float = 10.0,
        write_timeout: float = 10.0,
        max_connections: int = 1024,
        max_connections_per_peer: int = 64,
        max_pending_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.handler = handler
        self.counters = handler.counters
        self.limits = limits or ProtoLimits()
        self.idle_timeout = idle_timeout
        self.message_timeout = message_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        self.max_connections_per_peer = max_connections_per_peer
        self.max_pending_bytes = max_pending_bytes
        self.connections = 0
        #: Octets reserved by messages being received, over all connections.
        self.pending_bytes = 0
        #: Connections closed for being too slow (reading or writing).
        self.timeouts = 0
        self._per_peer: dict[str, int] = {}
        #: Open connections, closed by ``abort_all`` when the server stops.
        self._open: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        from_peer = self._per_peer.get(host, 0)
        if self.connections >= self.max_connections or from_peer >= self.max_connections_per_peer:
            self.counters.dropped += 1
            self.handler.offenders.note(host, "dropped")
            writer.transport.abort()
            return
        self.connections += 1
        self._per_peer[host] = from_peer + 1
        self._open.add(writer)
        clean = False
        try:
            await self._converse(reader, writer)
            clean = True
        except TimeoutError:
            self.timeouts += 1
        except (ConnectionError, _Refused):
            pass
        finally:
            self._open.discard(writer)
            self.connections -= 1
            left = self._per_peer[host] - 1
            if left:
                self._per_peer[host] = left
            else:
                del self._per_peer[host]
            if clean:
                writer.close()
            else:  # do not wait to flush to a peer that is gone or too slow
                writer.transport.abort()

    def abort_all(self) -> None:
        """Drop every open connection (the server is stopping; a closed listening socket
        leaves accepted ones open, and a client keeping one alive would hold it past the
        event loop)."""
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = TcpFramer(self.limits)
        peer = writer.get_extra_info("peername")
        state = PeerState(address=str(peer[0]) if isinstance(peer, tuple) and peer else None)
        reservation = [0]  # octets this connection holds of ``pending_bytes``
        try:
            while True:
                event = await self._next_frame(reader, writer, framer, reservation)
                if event is None:
                    return
                try:
                    request = Message.from_frame(event)
                except RemoteProtocolError as exc:
                    self.counters.protocol_errors += 1
                    self.handler.offenders.note(state.address, "protocol_errors")
                    await self._write(writer, protocol_error(event, exc.message))
                    return
                outcome = await self.handler.handle(request, state)
                await self._answer(writer, outcome)
                response = outcome.message
                challenged = (
                    response is not None
                    and response.response_code == ResponseCode.AUTHENTICATION_NEEDED
                )
                if not (request.flags & OpFlag.KA or challenged):
                    return
        finally:
            self.pending_bytes -= reservation[0]

    async def _next_frame(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framer: TcpFramer,
        reservation: list[int],
    ) -> Frame | None:
        """The next frame, ``None`` when the peer closed cleanly between messages."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            try:
                event = framer.next_event()
            except RemoteProtocolError as exc:
                self.counters.protocol_errors += 1
                self.handler.offenders.note(_host(writer), "protocol_errors")
                await self._write(writer, self._stream_error(exc))
                raise _Refused from None
            if event is CLOSED:
                return None
            if event is not NEED_DATA:
                assert isinstance(event, Frame)
                self.pending_bytes -= reservation[0]
                reservation[0] = 0
                return event
            envelope = framer.pending_envelope
            if envelope is not None and not reservation[0] and envelope.length:
                await self._reserve(writer, envelope.length, envelope.request_id)
                reservation[0] = envelope.length
            if framer.buffered == 0 and deadline is None:
                timeout = self.idle_timeout  # between messages
            else:
                if deadline is None:  # the message has begun: all of it within the deadline
                    deadline = loop.time() + self.message_timeout
                timeout = max(deadline - loop.time(), 0.0)
            framer.receive_data(await asyncio.wait_for(reader.read(_READ_SIZE), timeout))

    async def _reserve(self, writer: asyncio.StreamWriter, size: int, request_id: int) -> None:
        """Charge a message spanning reads to the shared budget, or refuse it."""
        if self.pending_bytes + size > self.max_pending_bytes:
            self.counters.dropped += 1
            busy = Message(
                OpCode.RESERVED,
                ErrorBody("too many large messages in progress; try again later"),
                ResponseCode.SERVER_BUSY,
                request_id=request_id,
            )
            await self._write(writer, busy)
            raise _Refused
        self.pending_bytes += size

    async def _answer(self, writer: asyncio.StreamWriter, outcome: Outcome) -> None:
        more = outcome.more
        try:
            if outcome.message is not None:
                await self._write(writer, outcome.message)
            if more is not None:
                async for message in more:
                    await self._write(writer, message)
        finally:
            if more is not None:
                with contextlib.suppress(Exception):
                    await more.aclose()

    async def _write(self, writer: asyncio.StreamWriter, message: Message) -> None:
        message = self.handler.stamp(message)  # the transport's own answers need one too
        try:
            wire = message.to_wire()
        except LocalProtocolError:
            self.counters.internal_errors += 1
            wire = message.as_error("the answer cannot be encoded").to_wire()
        writer.write(wire)
        await asyncio.wait_for(writer.drain(), self.write_timeout)

    @staticmethod
    def _stream_error(exc: RemoteProtocolError) -> Message:
        # Once the stream is out of step the request id is unknown: answer with 0.
        body = ErrorBody(exc.message[:200])
        return Message(OpCode.RESERVED, body, ResponseCode.PROTOCOL_ERROR)


def _host(writer: asyncio.StreamWriter) -> str | None:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


__all__ = ["TcpTransport"]
