"""The native Handle protocol over HTTP, on the node's HTTP port.

HS_SITE advertises an ``HTTP`` interface on this port, and a Handle.Net client
that falls back to it (``HandleResolver.sendHttpRequest``) speaks the native
protocol in an HTTP exchange, as Handle.Net's own HTTP port serves it:

* request: ``POST /<url-encoded handle>`` with ``Content-Type:
  application/x-hdl-message`` (and ``Accept`` the same); the body is one
  message, envelope first, exactly as sent over TCP (one stray CR or LF before
  the envelope is skipped);
* answer: ``200``, ``Content-Type: application/x-hdl-message``, a
  ``Content-Length``, and the response message(s) in the body, envelope first.
  The stock client reads no chunked body, so a streamed answer (LIST_HANDLES)
  is gathered first, up to ``max_answer_bytes``.

``NativeOverHttp`` is an ASGI middleware in front of the REST app: a POST with
that content type goes to a ``NativeHandler`` built as the native server builds
it (same service, site and recursive resolver); everything else goes to the
app, so the REST API keeps the port.  Open challenges are kept per client
address (a stock client answers a challenge in a new HTTP request), for at most
``max_peers`` addresses.  The body is refused above one message's limit before
it is read whole.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from iinode.codes import ResponseCode
from iinode.errors import LocalProtocolError, RemoteProtocolError
from iinode.identifiers import SiteData, site_for
from iinode.node.service import HandleService
from iinode.proto import (
    CLOSED,
    DEFAULT_PORT,
    ENVELOPE_SIZE,
    NEED_DATA,
    ErrorBody,
    Frame,
    Message,
    OpCode,
    ProtoLimits,
    TcpFramer,
)
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_server import recursive_resolver
from iinode.resolution.native_sessions import PeerState
from iinode.resolution.native_udp import protocol_error

#: The media type of a native message carried over HTTP.
HDL_MIME_TYPE = "application/x-hdl-message"
#: Octets of answer messages gathered for one request (a longer listing ends in an error).
MAX_ANSWER_BYTES = 16 * 1024 * 1024


def is_native_request(scope: Scope) -> bool:
    """A POST whose Content-Type's media type is exactly the native message type
    (parameters aside).  Anything else, such as ``text/plain; x=application/x-hdl-message``
    (which a web page may send anywhere without a CORS preflight), goes to the app."""
    if scope.get("type") != "http" or scope.get("method") != "POST":
        return False
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            media_type = value.split(b";", 1)[0].strip(b" \t").lower()
            return bool(media_type == HDL_MIME_TYPE.encode())
    return False


def own_site(service: HandleService) -> SiteData:
    """The site the native server answers GET_SITEINFO with (as ``NativeServer.own_site``)."""
    owned = service.owned
    if owned is not None:
        return service._own_site(owned)
    settings = service.settings
    port = settings.handle_port if settings.handle_port is not None else DEFAULT_PORT
    return site_for(settings.public_host, handle_port=port)


class NativeHttpEndpoint:
    """Answers native messages carried in HTTP bodies, for one open ``HandleService``."""

    def __init__(
        self,
        service: HandleService,
        *,
        handler: NativeHandler | None = None,
        limits: ProtoLimits | None = None,
        max_peers: int = 4096,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.service = service
        settings = service.settings
        self.handler = handler or NativeHandler(
            service, own_site(service), resolver=recursive_resolver(settings),
            message_lifetime=settings.message_lifetime,
        )  # fmt: skip
        self.limits = limits or ProtoLimits()
        self.max_peers = max_peers
        self.max_answer_bytes = max_answer_bytes
        self._peers: OrderedDict[str, PeerState] = OrderedDict()

    def close(self) -> None:
        """Release the session table's file (the app is shutting down)."""
        self.handler.sessions.shutdown()

    @property
    def max_body_bytes(self) -> int:
        """The largest body accepted: one stray newline, an envelope and a message."""
        return 1 + ENVELOPE_SIZE + self.limits.max_message_bytes

    def peer(self, address: str | None) -> PeerState:
        """The state kept for a client address (challenges live in the node's table)."""
        key = address or ""
        state = self._peers.get(key)
        if state is None:
            state = PeerState(address=address)
            self._peers[key] = state
            while len(self._peers) > self.max_peers:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(key)
        return state

    async def answer(self, body: bytes, address: str | None) -> bytes:
        """The HTTP response body for an HTTP request body holding one native message."""
        if body[:1] in (b"\r", b"\n"):
            body = body[1:]
        framer = TcpFramer(self.limits)
        framer.receive_data(body)
        framer.receive_data(b"")
        try:
            event = framer.next_event()
        except RemoteProtocolError as exc:
            return self.refuse(None, exc.message, address)
        if event is CLOSED or event is NEED_DATA:
            return self.refuse(None, "Invalid message length", address)
        assert isinstance(event, Frame)
        try:
            request = Message.from_frame(event)
        except RemoteProtocolError as exc:
            return self.refuse(event, exc.message, address)
        outcome = await self.handler.handle(request, self.peer(address))
        parts: list[bytes] = []
        size = 0
        try:
            if outcome.message is not None:
                parts.append(self._wire(outcome.message))
                size += len(parts[-1])
            if outcome.more is not None:
                async for message in outcome.more:
                    wire = self._wire(message)
                    if size + len(wire) > self.max_answer_bytes:
                        text = "answer too long for HTTP; ask over TCP"
                        parts.append(request.error_reply(ResponseCode.ERROR, text).to_wire())
                        break
                    parts.append(wire)
                    size += len(wire)
        finally:
            if outcome.more is not None:
                with contextlib.suppress(Exception):
                    await outcome.more.aclose()
        return b"".join(parts)

    def _wire(self, message: Message) -> bytes:
        try:
            return message.to_wire()
        except LocalProtocolError:
            self.handler.counters.internal_errors += 1
            return message.as_error("the answer cannot be encoded").to_wire()

    def refuse(self, frame: Frame | None, text: str, address: str | None) -> bytes:
        counters = self.handler.counters
        counters.requests += 1
        counters.protocol_errors += 1
        self.handler.offenders.note(address, "protocol_errors")
        if frame is not None:
            return protocol_error(frame, text).to_wire()
        body = ErrorBody(text[:200])
        return Message(OpCode.RESERVED, body, ResponseCode.PROTOCOL_ERROR).to_wire()


class NativeOverHttp:
    """ASGI middleware: native messages to ``NativeHttpEndpoint``, the rest to ``app``.

    The endpoint is kept in ``app.state.native_http``, made on first use from
    ``app.state.service`` (the open service of the app) and made again when that
    service changes (the app was started again).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def endpoint(scope: Scope) -> NativeHttpEndpoint | None:
        state: Any = getattr(scope.get("app"), "state", None)
        service = getattr(state, "service", None)
        if not isinstance(service, HandleService):
            return None
        current = getattr(state, "native_http", None)
        if isinstance(current, NativeHttpEndpoint):
            if current.service is service:
                return current
            current.close()
        endpoint = NativeHttpEndpoint(service)
        state.native_http = endpoint
        return endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":
            await self.app(scope, receive, self._closing(scope, send))
            return
        if not is_native_request(scope):
            await self.app(scope, receive, send)
            return
        endpoint = self.endpoint(scope)
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(scope, receive, endpoint.max_body_bytes)
        client = scope.get("client")
        address = str(client[0]) if client else None
        if body is None:
            answer = endpoint.refuse(None, "message too long", address)
        else:
            answer = await endpoint.answer(body, address)
        headers = [
            (b"content-type", HDL_MIME_TYPE.encode()),
            (b"content-length", str(len(answer)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    @staticmethod
    def _closing(scope: Scope, send: Send) -> Send:
        """``send`` that closes the endpoint once the app has shut down."""

        async def closing(message: Any) -> None:
            if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                state: Any = getattr(scope.get("app"), "state", None)
                endpoint = getattr(state, "native_http", None)
                if isinstance(endpoint, NativeHttpEndpoint):
                    endpoint.close()
            await send(message)

        return closing


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body, or ``None`` once it is known to exceed ``limit`` octets."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length" and (not value.isdigit() or int(value) > limit):
            return None
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


__all__ = [
    "HDL_MIME_TYPE",
    "NativeHttpEndpoint",
    "NativeOverHttp",
    "is_native_request",
    "own_site",
]
