"""Bodies of the authentication and session operations (RFC 3652 sections 3.5-3.7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from iinode.errors import RemoteProtocolError
from iinode.identifiers.wire import WireReader, WireWriter
from iinode.proto._bodies import Body, check_bytes, check_text
from iinode.proto._credential import RequestDigest
from iinode.proto._envelope import check_uint
from iinode.proto._tables import KeyExchangeMode


@dataclass(frozen=True, slots=True)
class ChallengeBody(Body):
    """AUTHENTICATION_NEEDED (s3.5.1): the nonce the client must sign.

    From version 2.1 the request digest travels before the body (the RD flag,
    always set on a challenge) and the body is the nonce alone.  Before 2.1
    (Handle.Net ``Encoder.encodeChallenge``) the body is the nonce followed by
    the MD5 request digest, both as byte strings: ``old_digest``.
    """

    nonce: bytes
    old_digest: bytes = b""

    def __post_init__(self) -> None:
        check_bytes("nonce", self.nonce)
        check_bytes("old-format request digest", self.old_digest)

    def write(self, w: WireWriter) -> None:
        w.byte_string(self.nonce)
        if self.old_digest:
            w.byte_string(self.old_digest)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        nonce = r.byte_string("nonce")
        if not r.remaining:
            return cls(nonce)
        return cls(nonce, r.byte_string("old-format request digest"))


@dataclass(frozen=True, slots=True)
class ChallengeAnswer(Body):
    """CHALLENGE_RESPONSE request (s3.5.2): the signed nonce and the key that signed it."""

    auth_type: str
    key_handle: str
    key_index: int
    signed_response: bytes

    def __post_init__(self) -> None:
        check_text("authentication type", self.auth_type)
        check_text("key handle", self.key_handle)
        check_uint("key index", self.key_index, 32)
        check_bytes("challenge response", self.signed_response)

    def write(self, w: WireWriter) -> None:
        w.utf8(self.auth_type).utf8(self.key_handle).u32(self.key_index)
        w.byte_string(self.signed_response)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls(r.utf8("authentication type"), r.utf8("key handle"), r.u32("key index"),
                   r.byte_string("challenge response"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class VerifyRequest(Body):
    """VERIFY_RESPONSE request (s3.5.3): ask a key's home server to check an HS_SECKEY answer.

    Key index 0 asks about every HS_SECKEY of the key handle (as Handle.Net does).
    """

    key_handle: str
    key_index: int
    nonce: bytes
    request_digest: bytes
    signed_response: bytes

    def __post_init__(self) -> None:
        check_text("key handle", self.key_handle)
        check_uint("key index", self.key_index, 32)
        for name in ("nonce", "request_digest", "signed_response"):
            check_bytes(name, getattr(self, name))

    def write(self, w: WireWriter) -> None:
        w.utf8(self.key_handle).u32(self.key_index).byte_string(self.nonce)
        w.byte_string(self.request_digest).byte_string(self.signed_response)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        handle, index, nonce = r.utf8("key handle"), r.u32("key index"), r.byte_string("nonce")
        # Written as a byte string (a zero first octet); Handle.Net also reads a type octet
        # followed by a digest of that type's size, as in a response's request digest.
        digest = RequestDigest.read(r).digest
        return cls(handle, index, nonce, digest, r.byte_string("challenge response"))


@dataclass(frozen=True, slots=True)
class VerifyResponse(Body):
    """Answer to VERIFY_RESPONSE: whether the challenge answer is valid."""

    valid: bool

    def write(self, w: WireWriter) -> None:
        w.u8(1 if self.valid else 0)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls(bool(r.u8("verification result") & 0x01))


@dataclass(frozen=True, slots=True)
class SessionSetupRequest(Body):
    """SESSION_SETUP request (s3.7.1): how to agree a session key, and who asks."""

    mode: KeyExchangeMode
    timeout: int = 0
    identity_handle: str = ""
    identity_index: int = 0
    public_key: bytes = b""
    exchange_key_handle: str = ""
    exchange_key_index: int = 0

    def __post_init__(self) -> None:
        check_uint("key exchange mode", int(self.mode), 16)
        check_uint("session timeout", self.timeout, 32)
        check_text("identity handle", self.identity_handle)
        check_uint("identity index", self.identity_index, 32)
        check_bytes("exchange public key", self.public_key)
        check_text("exchange key handle", self.exchange_key_handle)
        check_uint("exchange key index", self.exchange_key_index, 32)

    @property
    def _carries_key(self) -> bool:
        return self.mode in (KeyExchangeMode.CIPHER_CLIENT, KeyExchangeMode.DIFFIE_HELLMAN)

    def write(self, w: WireWriter) -> None:
        w.u16(int(self.mode)).u32(self.timeout).utf8(self.identity_handle).u32(self.identity_index)
        if self._carries_key:
            w.byte_string(self.public_key)
        elif self.mode == KeyExchangeMode.CIPHER_HDL:
            w.utf8(self.exchange_key_handle).u32(self.exchange_key_index)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        mode = KeyExchangeMode(r.u16("key exchange mode"))
        timeout = r.u32("session timeout")
        handle, index = r.utf8("identity handle"), r.u32("identity index")
        key, key_handle, key_index = b"", "", 0
        if mode in (KeyExchangeMode.CIPHER_CLIENT, KeyExchangeMode.DIFFIE_HELLMAN):
            key = r.byte_string("exchange public key")
        elif mode == KeyExchangeMode.CIPHER_HDL:
            key_handle, key_index = r.utf8("exchange key handle"), r.u32("exchange key index")
        if r.remaining and any(r.rest()):
            # Some clients pad this body with zero octets; anything else is an error.
            raise RemoteProtocolError("unexpected data after the session setup request")
        return cls(mode, timeout, handle, index, key, key_handle, key_index)


@dataclass(frozen=True, slots=True)
class SessionSetupResponse(Body):
    """SESSION_SETUP answer: the key exchange mode and its data."""

    mode: KeyExchangeMode
    data: bytes = b""

    def __post_init__(self) -> None:
        check_uint("key exchange mode", int(self.mode), 16)
        check_bytes("key exchange data", self.data)

    def write(self, w: WireWriter) -> None:
        w.u16(int(self.mode)).byte_string(self.data)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        body = cls(KeyExchangeMode(r.u16("key exchange mode")), r.byte_string("key exchange data"))
        # Handle.Net's server (``Encoder.encodeSessionSetupResponse``) sizes the mode as
        # four octets but writes two: two zero octets follow the data.
        if r.remaining == 2 and r.raw(2, "padding") != b"\0\0":
            raise RemoteProtocolError("unexpected octets after the session set-up data")
        return body


@dataclass(frozen=True, slots=True)
class SessionExchangeKeyRequest(Body):
    """SESSION_EXCHANGEKEY request: the session key encrypted for the server."""

    encrypted_key: bytes

    def __post_init__(self) -> None:
        check_bytes("encrypted session key", self.encrypted_key)

    def write(self, w: WireWriter) -> None:
        w.byte_string(self.encrypted_key)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls(r.byte_string("encrypted session key"))
