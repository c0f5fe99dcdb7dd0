"""The fixed-size parts of a message: envelope (RFC 3652 s2.2.1) and header (s2.2.2).

::

    envelope (20 octets)                 header (24 octets)
    MajorVersion     1                   OpCode                4
    MinorVersion     1                   ResponseCode          4
    MessageFlag      2  CP EC TC ...     OpFlag                4  AT CT ENC REC ...
    SessionId        4                   SiteInfoSerialNumber  2
    RequestId        4                   RecursionCount        1
    SequenceNumber   4                   (reserved)            1
    MessageLength    4  header+body+cred ExpirationTime        4
                                         BodyLength            4
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from iinode.codes import ResponseCode
from iinode.errors import LocalProtocolError, RemoteProtocolError
from iinode.proto._tables import (
    ENVELOPE_SIZE,
    HEADER_SIZE,
    NO_ENVELOPE_FLAGS,
    NO_OP_FLAGS,
    PROTOCOL_VERSION,
    SUGGESTED_MAJOR_MASK,
    SUGGESTED_MINOR_MASK,
    SUPPORTED_MAJOR_VERSION,
    EnvelopeFlag,
    OpCode,
    OpFlag,
)

_ENVELOPE = struct.Struct(">BBHIIII")
_HEADER = struct.Struct(">IIIHBBII")


def check_uint(name: str, value: int, bits: int) -> None:
    """Raise ``LocalProtocolError`` unless ``value`` fits an unsigned field of ``bits``."""
    if not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise LocalProtocolError(f"{name} {value!r} does not fit {bits} bits")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The envelope in front of every message, and of every UDP packet of one."""

    request_id: int = 0
    session_id: int = 0
    sequence: int = 0
    length: int = 0
    flags: EnvelopeFlag = NO_ENVELOPE_FLAGS
    version: tuple[int, int] = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        check_uint("request id", self.request_id, 32)
        check_uint("session id", self.session_id, 32)
        check_uint("sequence number", self.sequence, 32)
        check_uint("message length", self.length, 32)
        check_uint("message flags", int(self.flags), 16)
        if len(self.version) != 2:
            raise LocalProtocolError("version must be (major, minor)")
        check_uint("major version", self.version[0], 8)
        check_uint("minor version", self.version[1], 8)

    @property
    def suggested_version(self) -> tuple[int, int] | None:
        """The version the sender suggests (Handle.Net's MessageFlag bits), if it states one."""
        return suggested_in(int(self.flags))

    def to_wire(self) -> bytes:
        return _ENVELOPE.pack(
            self.version[0], self.version[1], int(self.flags), self.session_id,
            self.request_id, self.sequence, self.length,
        )  # fmt: skip

    @classmethod
    def from_wire(cls, data: bytes | bytearray | memoryview) -> Self:
        """Parse the first 20 octets of ``data``; checks the major version."""
        if len(data) < ENVELOPE_SIZE:
            raise RemoteProtocolError(f"envelope needs {ENVELOPE_SIZE} octets, got {len(data)}")
        major, minor, flags, session, request, seq, length = _ENVELOPE.unpack_from(data)
        if major != SUPPORTED_MAJOR_VERSION:
            raise RemoteProtocolError(f"unsupported protocol version {major}.{minor}")
        return cls(request, session, seq, length, EnvelopeFlag(flags), (major, minor))


@dataclass(frozen=True, slots=True)
class Header:
    """The message header: what the message is and how to treat it."""

    opcode: OpCode
    response_code: ResponseCode = ResponseCode.RESERVED
    flags: OpFlag = NO_OP_FLAGS
    site_serial: int = 0
    recursion_count: int = 0
    expiration: int = 0
    body_length: int = 0

    def __post_init__(self) -> None:
        check_uint("opcode", int(self.opcode), 32)
        check_uint("response code", int(self.response_code), 32)
        check_uint("op flags", int(self.flags), 32)
        check_uint("site info serial number", self.site_serial, 16)
        check_uint("recursion count", self.recursion_count, 8)
        check_uint("expiration time", self.expiration, 32)
        check_uint("body length", self.body_length, 32)

    @property
    def is_response(self) -> bool:
        return self.response_code != ResponseCode.RESERVED

    def to_wire(self) -> bytes:
        return _HEADER.pack(
            int(self.opcode), int(self.response_code), int(self.flags), self.site_serial,
            self.recursion_count, 0, self.expiration, self.body_length,
        )  # fmt: skip

    @classmethod
    def from_wire(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> Self:
        if len(data) - offset < HEADER_SIZE:
            raise RemoteProtocolError(
                f"message header needs {HEADER_SIZE} octets, got {max(len(data) - offset, 0)}"
            )
        op, rc, flags, serial, recursion, _reserved, expiration, body_length = _HEADER.unpack_from(
            data, offset
        )
        return cls(OpCode(op), ResponseCode(rc), OpFlag(flags), serial, recursion, expiration,
                   body_length)  # fmt: skip


def suggested_in(flags: int) -> tuple[int, int] | None:
    """The suggested version held in a MessageFlag word, or ``None`` when its bits are zero."""
    major = (flags & SUGGESTED_MAJOR_MASK) >> 8
    if not major:
        return None
    return major, flags & SUGGESTED_MINOR_MASK


def suggestion_bits(version: tuple[int, int] | None) -> int:
    """The MessageFlag bits stating ``version`` as the suggested one (0 for ``None``)."""
    if version is None:
        return 0
    major, minor = version
    if not (isinstance(major, int) and isinstance(minor, int) and 1 <= major <= 3
            and 0 <= minor <= 0xFF):  # fmt: skip
        raise LocalProtocolError(f"suggested version {version!r} does not fit the MessageFlag")
    return major << 8 | minor


def pack_envelope(
    version: tuple[int, int], flags: int, session_id: int, request_id: int, seq: int, length: int
) -> bytes:
    try:
        return _ENVELOPE.pack(version[0], version[1], flags, session_id, request_id, seq, length)
    except struct.error as exc:
        raise LocalProtocolError(f"envelope field out of range: {exc}") from None
