"""TCP framing: a stream of envelope-prefixed messages (RFC 3652 s2.3).

``TcpFramer`` follows h11's shape: feed whatever arrived with ``receive_data``
(``b""`` means the peer closed), then call ``next_event`` until it says
``NEED_DATA``.  Each event is a ``Frame`` (decode it with ``Message.from_frame``),
or ``CLOSED`` once the peer has closed cleanly between messages.  After a
``RemoteProtocolError`` the stream cannot be resynchronised; the framer keeps
raising and the connection should be closed.
"""

from __future__ import annotations

import enum
from typing import Literal

from iinode.errors import LocalProtocolError, RemoteProtocolError
from iinode.proto._envelope import Envelope
from iinode.proto._message import Frame
from iinode.proto._tables import ENVELOPE_SIZE, ProtoLimits


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"
    CLOSED = "CLOSED"


NEED_DATA = Sentinel.NEED_DATA
CLOSED = Sentinel.CLOSED


class TcpFramer:
    """Splits a TCP byte stream into message frames."""

    def __init__(self, limits: ProtoLimits | None = None) -> None:
        self.limits = limits or ProtoLimits()
        self._buf = bytearray()
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._envelope: Envelope | None = None

    @property
    def buffered(self) -> int:
        """Octets received and not yet returned in a frame."""
        return len(self._buf)

    @property
    def pending_envelope(self) -> Envelope | None:
        """The envelope of the message being received, once it is in (its length
        is what the rest of the message will hold); ``None`` between messages."""
        return self._envelope

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._eof = True
        elif self._eof:
            raise LocalProtocolError("received data after the end of the stream")
        else:
            self._buf += data

    def next_event(self) -> Frame | Literal[Sentinel.NEED_DATA, Sentinel.CLOSED]:
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except RemoteProtocolError as exc:
            self._error = exc
            self._buf.clear()
            raise

    def _next(self) -> Frame | Literal[Sentinel.NEED_DATA, Sentinel.CLOSED]:
        env = self._envelope
        if env is None:
            if len(self._buf) < ENVELOPE_SIZE:
                return self._short()
            env = Envelope.from_wire(self._buf)
            if env.length > self.limits.max_message_bytes:
                raise RemoteProtocolError(
                    f"message of {env.length} octets exceeds the limit of "
                    f"{self.limits.max_message_bytes}"
                )
            self._envelope = env
        end = ENVELOPE_SIZE + env.length
        if len(self._buf) < end:
            return self._short()
        payload = bytes(self._buf[ENVELOPE_SIZE:end])
        del self._buf[:end]
        self._envelope = None
        return Frame(env, payload)

    def _short(self) -> Literal[Sentinel.NEED_DATA, Sentinel.CLOSED]:
        if not self._eof:
            return NEED_DATA
        if self._buf:
            raise RemoteProtocolError(
                f"connection closed inside a message ({len(self._buf)} octets)"
            )
        return CLOSED
