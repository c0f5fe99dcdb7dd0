"""Spec tables of the Handle protocol (RFC 3652 section 2.2) and the codec's limits.

Every code is a tolerant ``IntEnum`` or ``IntFlag``: values this node does not
know decode to ``UNKNOWN_<n>`` members or keep their raw bits, so a newer peer
does not make a message undecodable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from iinode.codes import TolerantIntEnum
from iinode.errors import ConfigurationError

#: Version a message is written in when nothing else is said (RFC 3652 is version 2.1).
PROTOCOL_VERSION = (2, 1)
#: The highest version this node speaks: what its answers suggest (Handle.Net 9 speaks 2.11).
NODE_VERSION = (2, 11)
#: What this node's own client sends: the version Handle.Net 9 clients send to a site that
#: advertises 2.10 (as this node's HS_SITE does), suggesting ``NODE_VERSION``.
CLIENT_VERSION = (2, 10)
#: The only major version a peer may speak to us.
SUPPORTED_MAJOR_VERSION = 2
#: Well-known port of the native protocol, UDP and TCP.
DEFAULT_PORT = 2641
#: Size of the message envelope (s2.2.1) and of the message header (s2.2.2).
ENVELOPE_SIZE = 20
HEADER_SIZE = 24
#: A UDP packet carries at most this many octets, envelope included (s2.3).
UDP_PACKET_SIZE = 512
UDP_PAYLOAD_SIZE = UDP_PACKET_SIZE - ENVELOPE_SIZE
#: Largest value of a 4-octet unsigned field.
U32_MAX = 2**32 - 1
#: Largest message a Handle.Net 9 peer accepts (its ``Common.MAX_MESSAGE_LENGTH``); the
#: reference server sends an answer of up to this size over UDP, in as many packets as it takes.
MAX_MESSAGE_LENGTH = 262_144
#: Seconds a message stays valid: the reference sets ExpirationTime to now + 12 hours.
DEFAULT_MESSAGE_LIFETIME = 43_200
#: The MessageFlag bits that carry the suggested version (Handle.Net's use of reserved bits):
#: major in the two low bits of the first octet, minor in the second octet; zero: none stated.
SUGGESTED_MAJOR_MASK = 0x0300
SUGGESTED_MINOR_MASK = 0x00FF
SUGGESTED_VERSION_MASK = SUGGESTED_MAJOR_MASK | SUGGESTED_MINOR_MASK


class OpCode(TolerantIntEnum):
    """Operation codes (RFC 3652 section 2.2.2.1)."""

    RESERVED = 0
    RESOLUTION = 1
    GET_SITEINFO = 2
    CREATE_HANDLE = 100
    DELETE_HANDLE = 101
    ADD_VALUE = 102
    REMOVE_VALUE = 103
    MODIFY_VALUE = 104
    LIST_HANDLES = 105
    LIST_NAS = 106
    CHALLENGE_RESPONSE = 200
    VERIFY_RESPONSE = 201
    SESSION_SETUP = 400
    SESSION_TERMINATE = 401
    SESSION_EXCHANGEKEY = 402


class OpFlag(enum.IntFlag, boundary=enum.KEEP):
    """The 32-bit OpFlag field of the message header (RFC 3652 section 2.2.2.3).

    Bit 0 of the RFC's figure is the most significant bit.  ``OW``, ``MINT`` and
    ``DNRF`` are later Handle.Net additions in the RFC's reserved bits; unknown
    bits are kept as they are.
    """

    AT = 1 << 31  #: authoritative: answer from a primary server, not a cache
    CT = 1 << 30  #: certified: the response must carry a credential
    ENC = 1 << 29  #: encrypt the response with the session key
    REC = 1 << 28  #: recursive: the server may resolve on the client's behalf
    CA = 1 << 27  #: cache authentication: a caching server signs its answer
    CN = 1 << 26  #: continuous: more messages follow for the same request
    KA = 1 << 25  #: keep the TCP connection alive after the response
    PO = 1 << 24  #: public only: return only publicly readable values
    RD = 1 << 23  #: request digest: the response starts with a digest of the request
    OW = 1 << 22  #: overwrite existing values when adding
    MINT = 1 << 21  #: let the server mint the suffix of a new handle
    DNRF = 1 << 20  #: do not answer with a referral


class EnvelopeFlag(enum.IntFlag, boundary=enum.KEEP):
    """The 16-bit MessageFlag field of the envelope (RFC 3652 section 2.2.1.2).

    Other bits are reserved by the RFC; Handle.Net stores a suggested protocol
    version in the low ten (``SUGGESTED_VERSION_MASK``; ``Message`` reads them into
    ``suggested_version``), and other unknown bits are kept as they are.  Handle.Net
    sets TC on every packet of a request sent as several UDP packets.
    """

    CP = 1 << 15  #: the message is compressed
    EC = 1 << 14  #: the message is encrypted with the session key
    TC = 1 << 13  #: the message is truncated (the server could not send all of it)


#: No op flags / no envelope flags (dataclass defaults).
NO_OP_FLAGS = OpFlag(0)
NO_ENVELOPE_FLAGS = EnvelopeFlag(0)


class DigestAlgorithm(TolerantIntEnum):
    """Identifiers of the hash in a request digest (RFC 3652 section 2.2.3)."""

    MD5_OLD_FORMAT = 0
    MD5 = 1
    SHA1 = 2
    SHA256 = 3
    #: Keyed types of an HS_SECKEY challenge answer (Handle.Net ``Common.HASH_CODE_*``).
    HMAC_SHA1 = 0x12
    HMAC_SHA256 = 0x13
    PBKDF2_HMAC_SHA1 = 0x22

    @property
    def digest_size(self) -> int | None:
        """Octets of the digest, or ``None`` when it is length-prefixed or unknown."""
        return _DIGEST_SIZES.get(self)

    @property
    def hashlib_name(self) -> str | None:
        return _HASHLIB_NAMES.get(self)


def digest_algorithm_for(version: tuple[int, int]) -> DigestAlgorithm:
    """The request digest a message of ``version`` carries, as Handle.Net writes it:
    MD5 (old format) before 2.1, SHA-1 from 2.1, SHA-256 from 2.7."""
    if version < (2, 1):
        return DigestAlgorithm.MD5_OLD_FORMAT
    return DigestAlgorithm.SHA256 if version >= (2, 7) else DigestAlgorithm.SHA1


_DIGEST_SIZES = {DigestAlgorithm.MD5: 16, DigestAlgorithm.SHA1: 20, DigestAlgorithm.SHA256: 32}
_HASHLIB_NAMES = {
    DigestAlgorithm.MD5_OLD_FORMAT: "md5",
    DigestAlgorithm.MD5: "md5",
    DigestAlgorithm.SHA1: "sha1",
    DigestAlgorithm.SHA256: "sha256",
}


class KeyExchangeMode(TolerantIntEnum):
    """How a session key is agreed in SESSION_SETUP (RFC 3652 section 3.7)."""

    NONE = 0
    CIPHER_CLIENT = 1  #: the client sends a public key; the server encrypts the key to it
    CIPHER_SERVER = 2  #: the server provides the key exchange key
    CIPHER_HDL = 3  #: a public key held in a handle value encrypts the key
    DIFFIE_HELLMAN = 4


class CredentialType:
    """Names of the credential types a message may carry (RFC 3652 section 2.2.4)."""

    SIGNED = "HS_SIGNED"  #: a public-key signature over header and body
    MAC = "HS_MAC"  #: a keyed digest with the session key


@dataclass(frozen=True, slots=True)
class ProtoLimits:
    """Bounds on what the framers accept; exceeding one is a ``RemoteProtocolError``."""

    #: Largest message (header, body and credential) accepted over TCP.
    max_message_bytes: int = 8 * 1024 * 1024
    #: Largest message reassembled from UDP packets (a Handle.Net peer sends up to 256 KiB).
    max_udp_message_bytes: int = MAX_MESSAGE_LENGTH
    #: Messages being reassembled at once, per reassembler.
    max_pending_messages: int = 1024
    #: Octets held by all partial UDP messages together.
    max_pending_bytes: int = 4 * 1024 * 1024
    #: Seconds a partial UDP message may wait for its missing packets.
    reassembly_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_udp_message_bytes", "max_pending_messages"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        if not 0 < self.max_message_bytes <= U32_MAX:
            raise ConfigurationError("max_message_bytes must fit the 4-octet length field")
        if self.max_pending_bytes < self.max_udp_message_bytes:
            raise ConfigurationError("max_pending_bytes must hold at least one UDP message")
        if self.reassembly_timeout <= 0:
            raise ConfigurationError("reassembly_timeout must be positive")
