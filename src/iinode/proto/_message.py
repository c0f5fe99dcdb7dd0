"""A whole Handle message: envelope fields, header, body and credential.

``Message.to_wire`` gives the octets of one message with its envelope (what TCP
carries, and what one UDP packet carries when the message is small);
``Message.from_frame`` decodes what a framer (``TcpFramer``, ``UdpReassembler``)
delivered.  ``Message.reply`` writes an answer the way the Handle.Net 9 server
does: in the version the request suggests (at most ``NODE_VERSION``),
suggesting ``NODE_VERSION``, echoing the request's AT, CT, CA, PO and DNRF flags
with REC set, and with the request digest the answer's version implies.  The
codec reads no clock: ExpirationTime is whatever the caller passes.  Any
malformed input raises ``RemoteProtocolError``; an attempt to build or encode
something the protocol cannot carry raises ``LocalProtocolError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

from iinode.codes import ResponseCode
from iinode.errors import HandleError, LocalProtocolError, RemoteProtocolError
from iinode.identifiers.wire import WireReader, WireWriter
from iinode.proto._bodies import Body, ErrorBody
from iinode.proto._credential import Credential, RequestDigest
from iinode.proto._envelope import (
    Envelope,
    Header,
    check_uint,
    pack_envelope,
    suggested_in,
    suggestion_bits,
)
from iinode.proto._registry import body_type
from iinode.proto._tables import (
    ENVELOPE_SIZE,
    HEADER_SIZE,
    NO_ENVELOPE_FLAGS,
    NO_OP_FLAGS,
    NODE_VERSION,
    PROTOCOL_VERSION,
    SUGGESTED_VERSION_MASK,
    U32_MAX,
    DigestAlgorithm,
    EnvelopeFlag,
    OpCode,
    OpFlag,
    digest_algorithm_for,
)

_NO_CREDENTIAL = b"\x00\x00\x00\x00"
_UNSUPPORTED_ENVELOPE = EnvelopeFlag.CP | EnvelopeFlag.EC
_HEADER = struct.Struct(">IIIHBBII")
#: Request flags a Handle.Net server copies into its answer (``takeValuesFrom``); it also
#: always sets REC.  ENC is not echoed: this node does not encrypt.
ECHOED_FLAGS = OpFlag.AT | OpFlag.CT | OpFlag.CA | OpFlag.PO | OpFlag.DNRF
_CODE_FIELDS = (
    ("opcode", OpCode),
    ("response_code", ResponseCode),
    ("flags", OpFlag),
    ("envelope_flags", EnvelopeFlag),
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete message as received: its envelope and the octets after it."""

    envelope: Envelope
    payload: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """One request or response.  Immutable; validated on construction."""

    opcode: OpCode
    body: Body
    response_code: ResponseCode = ResponseCode.RESERVED
    flags: OpFlag = NO_OP_FLAGS
    request_id: int = 0
    session_id: int = 0
    site_serial: int = 0
    recursion_count: int = 0
    expiration: int = 0
    request_digest: RequestDigest | None = None
    credential: Credential | None = None
    version: tuple[int, int] = PROTOCOL_VERSION
    envelope_flags: EnvelopeFlag = NO_ENVELOPE_FLAGS
    #: The version the sender suggests for the answer (Handle.Net's use of the MessageFlag's
    #: reserved bits); ``None``: not stated, which means ``version``.
    suggested_version: tuple[int, int] | None = None
    #: Header and body octets as received (what a credential signs); empty when built locally.
    received_bytes: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        self._coerce_codes()
        try:
            in_range = self._in_range()
        except TypeError:
            in_range = False
        if not in_range:
            self._explain_range_error()
        if self.envelope_flags & _UNSUPPORTED_ENVELOPE:
            raise LocalProtocolError("compressed or encrypted messages are not supported")
        if self.envelope_flags & SUGGESTED_VERSION_MASK:
            raise LocalProtocolError("the suggested version goes in suggested_version, not flags")
        if self.suggested_version is not None:
            suggestion_bits(self.suggested_version)
        expected = body_type(self.opcode, self.response_code)
        if type(self.body) is not expected:
            raise LocalProtocolError(
                f"{self.opcode.to_text()}/{self.response_code.to_text()} carries "
                f"{expected.__name__}, not {type(self.body).__name__}"
            )
        if self.credential is not None and not isinstance(self.credential, Credential):
            raise LocalProtocolError("credential must be a Credential")
        if self.request_digest is not None:
            if not isinstance(self.request_digest, RequestDigest):
                raise LocalProtocolError("request_digest must be a RequestDigest")
            if not self.is_response:
                raise LocalProtocolError("only a response carries a request digest")
        if self.is_response and bool(self.flags & OpFlag.RD) != (self.request_digest is not None):
            raise LocalProtocolError("a response has the RD flag exactly when it has a digest")

    def _in_range(self) -> bool:
        version = self.version
        return (
            type(version) is tuple
            and len(version) == 2
            and 0 <= self.request_id <= U32_MAX
            and 0 <= self.session_id <= U32_MAX
            and 0 <= self.expiration <= U32_MAX
            and 0 <= self.site_serial <= 0xFFFF
            and 0 <= self.recursion_count <= 0xFF
            and 0 <= version[0] <= 0xFF
            and 0 <= version[1] <= 0xFF
            and 0 <= self.opcode <= U32_MAX
            and 0 <= self.response_code <= U32_MAX
            and 0 <= self.flags <= U32_MAX
            and 0 <= self.envelope_flags <= 0xFFFF
        )

    def _coerce_codes(self) -> None:
        try:
            for name, kind in _CODE_FIELDS:
                value = getattr(self, name)
                if type(value) is not kind:
                    object.__setattr__(self, name, kind(value))
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"invalid message code or flags: {exc}") from None

    def _explain_range_error(self) -> None:
        if not isinstance(self.version, tuple) or len(self.version) != 2:
            raise LocalProtocolError("version must be (major, minor)")
        check_uint("opcode", int(self.opcode), 32)
        check_uint("response code", int(self.response_code), 32)
        check_uint("op flags", int(self.flags), 32)
        check_uint("request id", self.request_id, 32)
        check_uint("session id", self.session_id, 32)
        check_uint("site info serial number", self.site_serial, 16)
        check_uint("recursion count", self.recursion_count, 8)
        check_uint("expiration time", self.expiration, 32)
        check_uint("message flags", int(self.envelope_flags), 16)
        check_uint("major version", self.version[0], 8)
        check_uint("minor version", self.version[1], 8)

    # -- views -------------------------------------------------------------------
    @property
    def is_response(self) -> bool:
        return self.response_code != ResponseCode.RESERVED

    @property
    def suggests(self) -> tuple[int, int]:
        """The version an answer to this message should be written in (at most)."""
        return self.suggested_version or self.version

    @property
    def flag_word(self) -> int:
        """The envelope's 16-bit MessageFlag: flags and the suggested version."""
        return int(self.envelope_flags) | suggestion_bits(self.suggested_version)

    @property
    def header(self) -> Header:
        return Header(self.opcode, self.response_code, self.flags, self.site_serial,
                      self.recursion_count, self.expiration, len(self._body_bytes()))  # fmt: skip

    def envelope(self, sequence: int = 0, length: int | None = None) -> Envelope:
        size = len(self.payload()) if length is None else length
        return Envelope(self.request_id, self.session_id, sequence, size,
                        EnvelopeFlag(self.flag_word), self.version)  # fmt: skip

    # -- encoding ------------------------------------------------------------------
    def _body_bytes(self) -> bytes:
        w = WireWriter()
        if self.request_digest is not None:
            self.request_digest.write(w)
        self.body.write(w)
        return w.getvalue()

    def signed_data(self) -> bytes:
        """Header and body octets: what a credential signs and a request digest hashes."""
        if self.received_bytes:
            return self.received_bytes
        body = self._body_bytes()
        header = _HEADER.pack(self.opcode, self.response_code, self.flags, self.site_serial,
                              self.recursion_count, 0, self.expiration, len(body))  # fmt: skip
        return header + body

    def payload(self) -> bytes:
        """Header, body and credential: the octets after the envelope."""
        signed = self.signed_data()
        credential = _NO_CREDENTIAL if self.credential is None else self.credential.to_wire()
        payload = signed + credential
        if len(payload) > U32_MAX:
            raise LocalProtocolError("message is longer than the 4-octet length allows")
        return payload

    def to_wire(self) -> bytes:
        """Envelope and payload, as one TCP message or one UDP packet."""
        payload = self.payload()
        envelope = pack_envelope(self.version, self.flag_word, self.session_id,
                                 self.request_id, 0, len(payload))  # fmt: skip
        return envelope + payload

    # -- decoding ------------------------------------------------------------------
    @classmethod
    def from_wire(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode one complete message: an envelope followed by exactly its payload."""
        envelope = Envelope.from_wire(data)
        return cls.from_frame(Frame(envelope, bytes(data[ENVELOPE_SIZE:])))

    @classmethod
    def from_frame(cls, frame: Frame) -> Self:
        try:
            return cls._decode(frame.envelope, frame.payload)
        except RemoteProtocolError:
            raise
        except (HandleError, ValueError, OverflowError) as exc:
            raise RemoteProtocolError(f"malformed message: {exc}") from None

    @classmethod
    def _decode(cls, env: Envelope, payload: bytes) -> Self:
        if env.flags & _UNSUPPORTED_ENVELOPE:
            raise RemoteProtocolError("compressed or encrypted messages are not supported")
        if env.length != len(payload):
            raise RemoteProtocolError(
                f"envelope announces {env.length} octets but {len(payload)} follow"
            )
        if len(payload) < HEADER_SIZE:
            raise RemoteProtocolError(f"message header needs {HEADER_SIZE} octets")
        op, rc, flags, serial, recursion, _, expiration, body_length = _HEADER.unpack_from(payload)
        end = HEADER_SIZE + body_length
        if end > len(payload):
            raise RemoteProtocolError(f"body length {body_length} runs past the end of the message")
        opcode, code, op_flags = OpCode(op), ResponseCode(rc), OpFlag(flags)
        r = WireReader(payload, HEADER_SIZE, end)
        digest = None
        if rc != ResponseCode.RESERVED and flags & OpFlag.RD:
            digest = RequestDigest.read(r)
        body = body_type(opcode, code).read(r)
        r.expect_end("message body")
        credential = (
            Credential.read_section(WireReader(payload, end)) if len(payload) > end else None
        )
        flag_word = int(env.flags)
        return cls(opcode, body, code, op_flags, env.request_id, env.session_id, serial,
                   recursion, expiration, digest, credential, env.version,
                   EnvelopeFlag(flag_word & ~SUGGESTED_VERSION_MASK),
                   suggested_in(flag_word), payload[:end])  # fmt: skip

    # -- building answers ----------------------------------------------------------
    def reply(
        self,
        body: Body,
        code: ResponseCode = ResponseCode.SUCCESS,
        *,
        flags: OpFlag = NO_OP_FLAGS,
        site_serial: int = 0,
        expiration: int = 0,
        credential: Credential | None = None,
        digest_algorithm: DigestAlgorithm | None = None,
    ) -> Message:
        """A response to this request, written as a Handle.Net 9 server writes it.

        Its version is the one the request suggests, at most ``NODE_VERSION``; it
        suggests ``NODE_VERSION``; its flags are ``flags`` with REC and the request's
        ``ECHOED_FLAGS``; it carries a request digest if the request asked (RD), by
        default with the algorithm its version implies (``digest_algorithm_for``).
        ``expiration`` is the ExpirationTime (seconds since the epoch; the caller's clock).
        """
        if self.is_response:
            raise LocalProtocolError("cannot reply to a response")
        version = min(self.suggests, NODE_VERSION)
        digest = None
        flags = (OpFlag(flags) & ~OpFlag.RD) | OpFlag.REC | (self.flags & ECHOED_FLAGS)
        if self.flags & OpFlag.RD:
            algorithm = digest_algorithm or digest_algorithm_for(version)
            digest = RequestDigest.of(self.signed_data(), algorithm)
            flags |= OpFlag.RD
        return Message(self.opcode, body, code, flags, self.request_id, self.session_id,
                       site_serial, self.recursion_count, expiration, digest, credential,
                       version, suggested_version=NODE_VERSION)  # fmt: skip

    def error_reply(
        self, code: ResponseCode, message: str = "", indexes: tuple[int, ...] = ()
    ) -> Message:
        """An error response (any code whose body is an ``ErrorBody``)."""
        return self.reply(ErrorBody(message, indexes), code)

    def as_error(self, message: str, code: ResponseCode = ResponseCode.ERROR) -> Message:
        """This response's header with an error body instead (e.g. an answer too big to send).

        Keeps its version, suggestion, expiration, flags (but CN) and request digest.
        """
        return Message(self.opcode, ErrorBody(message), code, self.flags & ~OpFlag.CN,
                       self.request_id, self.session_id, self.site_serial, self.recursion_count,
                       self.expiration, self.request_digest, None, self.version,
                       suggested_version=self.suggested_version)  # fmt: skip
