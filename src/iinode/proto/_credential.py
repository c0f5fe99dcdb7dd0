"""Request digest (RFC 3652 s2.2.3) and message credential (s2.2.4).

::

    RequestDigest  DigestAlgorithm 1 | MessageDigest (16, 20 or 32 octets)
                   (algorithm 0: a 4-octet length then the MD5 digest, old clients)

    Credential     CredentialLength 4   (0: no credential)
                   Version 1 | Reserved 1 | Options 2
                   Signer: UTF8-String handle | 4-octet index
                   Type: UTF8-String ("HS_SIGNED", "HS_MAC")
                   SignedInfo: Length 4 | DigestAlgorithm UTF8-String | SignedData byte string
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Self

from iinode.errors import LocalProtocolError, RemoteProtocolError
from iinode.identifiers.wire import WireReader, WireWriter
from iinode.proto._envelope import check_uint
from iinode.proto._tables import CredentialType, DigestAlgorithm


@dataclass(frozen=True, slots=True)
class RequestDigest:
    """A hash of the request's header and body, echoed at the start of a response body."""

    algorithm: DigestAlgorithm
    digest: bytes

    def __post_init__(self) -> None:
        check_uint("digest algorithm", int(self.algorithm), 8)
        if not isinstance(self.digest, bytes):
            raise LocalProtocolError("request digest must be bytes")
        size = self.algorithm.digest_size
        if self.algorithm == DigestAlgorithm.MD5_OLD_FORMAT:
            if len(self.digest) >= 1 << 24:
                raise LocalProtocolError("old-format request digest is too long")
            return
        if size is None:
            raise LocalProtocolError(f"unknown digest algorithm {int(self.algorithm)}")
        if len(self.digest) != size:
            raise LocalProtocolError(
                f"{self.algorithm.to_text()} digest must be {size} octets, not {len(self.digest)}"
            )

    @classmethod
    def of(cls, signed_bytes: bytes, algorithm: DigestAlgorithm = DigestAlgorithm.SHA256) -> Self:
        """The digest of a request, given its header and body octets."""
        name = algorithm.hashlib_name
        if name is None:
            raise LocalProtocolError(f"cannot compute digest algorithm {int(algorithm)}")
        return cls(algorithm, hashlib.new(name, signed_bytes).digest())

    def write(self, w: WireWriter) -> None:
        if self.algorithm == DigestAlgorithm.MD5_OLD_FORMAT:
            w.byte_string(self.digest)
        else:
            w.u8(int(self.algorithm)).raw(self.digest)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        if r.remaining < 1:
            raise RemoteProtocolError("truncated request digest")
        algorithm = DigestAlgorithm(r.u8("digest algorithm"))
        if algorithm == DigestAlgorithm.MD5_OLD_FORMAT:
            # The old format is a 4-octet length whose first octet is this zero.
            rest = r.raw(3, "old-format digest length")
            n = int.from_bytes(rest, "big")
            return cls(algorithm, r.raw(n, "old-format request digest"))
        size = algorithm.digest_size
        if size is None:
            raise RemoteProtocolError(f"unknown request digest algorithm {int(algorithm)}")
        return cls(algorithm, r.raw(size, "request digest"))


@dataclass(frozen=True, slots=True)
class Credential:
    """Who signed a message and the signature over its header and body."""

    signer_handle: str
    signer_index: int
    type: str = CredentialType.SIGNED
    digest_algorithm: str = "SHA-256"
    signed_data: bytes = b""
    version: int = 0
    options: int = 0
    reserved: int = 0

    def __post_init__(self) -> None:
        for name in ("signer_handle", "type", "digest_algorithm"):
            if not isinstance(getattr(self, name), str):
                raise LocalProtocolError(f"credential {name} must be text")
        if not isinstance(self.signed_data, bytes):
            raise LocalProtocolError("credential signed data must be bytes")
        check_uint("signer index", self.signer_index, 32)
        check_uint("credential version", self.version, 8)
        check_uint("credential reserved octet", self.reserved, 8)
        check_uint("credential options", self.options, 16)

    def to_wire(self) -> bytes:
        """The credential section, starting with its CredentialLength."""
        info = WireWriter().utf8(self.digest_algorithm).byte_string(self.signed_data).getvalue()
        w = WireWriter().u8(self.version).u8(self.reserved).u16(self.options)
        w.utf8(self.signer_handle).u32(self.signer_index).utf8(self.type)
        body = w.u32(len(info)).raw(info).getvalue()
        return WireWriter().u32(len(body)).raw(body).getvalue()

    @classmethod
    def read_section(cls, r: WireReader) -> Self | None:
        """Read a credential section that runs to the end of ``r``; ``None`` when empty."""
        if r.remaining == 0:
            return None
        length = r.u32("credential length")
        if length == 0:
            r.expect_end("empty credential")
            return None
        if length != r.remaining:
            raise RemoteProtocolError(
                f"credential length {length} does not match the {r.remaining} octets left"
            )
        version, reserved = r.u8("credential version"), r.u8("credential reserved")
        options = r.u16("credential options")
        signer = r.utf8("signer handle")
        index = r.u32("signer index")
        ctype = r.utf8("credential type")
        info_length = r.u32("signed info length")
        if info_length != r.remaining:
            raise RemoteProtocolError(
                f"signed info length {info_length} does not match the {r.remaining} octets left"
            )
        algorithm = r.utf8("credential digest algorithm")
        signed = r.byte_string("signed data")
        r.expect_end("credential")
        return cls(signer, index, ctype, algorithm, signed, version, options, reserved)
