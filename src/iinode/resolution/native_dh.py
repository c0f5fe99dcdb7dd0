"""Diffie-Hellman session set-up (SESSION_SETUP key exchange mode 4) as Handle.Net does it.

A stock Handle.Net client (``SessionSetupInfo`` default mode ``KEY_EXCHANGE_DH``)
sends its DH public key in the HS_PUBKEY layout (``Util.getBytesFromPublicKey``)::

    "DH_PUB_KEY" | 2 reserved octets | y | p | g        (byte strings, big-endian)

The server makes its own key pair in the client's group and answers (for a
client suggesting protocol 2.4 or later) with::

    EncryptionAlgorithm 4 (3: AES) | the server's DH public key, same layout

Both sides compute the shared secret (padded to the length of ``p``) and take
as session key its first 32 octets after any leading zero octets
(``GenericProvider.getKeyFromDH`` for AES).  The session key MACs session
requests (``native_signing.mac_message``).

Plain integer arithmetic: the ``cryptography`` package marks finite-field DH
deprecated, and a Handle client picks its own group, so the group is checked
here (an odd prime-sized modulus of 1024 to 4096 bits, a generator and public
values strictly between 1 and p - 1).  The secret exponent has twice the bits of the
group's strength (NIST SP 800-56A): 256 up to 2048-bit groups, 384 above.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers.wire import WireReader, WireWriter

DH_KEY_TYPE = "DH_PUB_KEY"
#: ``HdlSecurityProvider.ENCRYPT_ALG_AES``: what a Handle.Net server announces by default.
ENCRYPT_ALG_AES = 3
SESSION_KEY_BYTES = 32
MIN_GROUP_BITS = 1024
MAX_GROUP_BITS = 4096
EXPONENT_BITS = 256
LARGE_GROUP_EXPONENT_BITS = 384
#: RFC 3526 group 14 (2048-bit MODP), what iinode's own client proposes.
GROUP14_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
GROUP14_G = 2


def _failed(message: str) -> HandleError:
    return HandleError.for_code(ResponseCode.SESSION_FAILED, message)


def _int_bytes(n: int) -> bytes:
    """Java's ``BigInteger.toByteArray`` of a non-negative number (with a sign octet)."""
    return n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")


@dataclass(frozen=True, slots=True)
class DhPublic:
    y: int
    p: int
    g: int

    def to_wire(self) -> bytes:
        w = WireWriter().utf8(DH_KEY_TYPE).u16(0)
        for part in (self.y, self.p, self.g):
            w.byte_string(_int_bytes(part))
        return w.getvalue()

    @classmethod
    def from_wire(cls, raw: bytes) -> DhPublic:
        try:
            r = WireReader(raw)
            if r.utf8("key type") != DH_KEY_TYPE:
                raise _failed("the exchange key is not a Diffie-Hellman key")
            r.u16("key flags")
            y, p, g = (int.from_bytes(r.byte_string("key number"), "big") for _ in range(3))
            r.expect_end("Diffie-Hellman key")
        except HandleError as exc:
            if exc.code == ResponseCode.SESSION_FAILED:
                raise
            raise _failed(f"unreadable Diffie-Hellman key: {exc.message}") from None
        key = cls(y, p, g)
        key.check()
        return key

    def check(self) -> None:
        p = self.p
        if not MIN_GROUP_BITS <= p.bit_length() <= MAX_GROUP_BITS or p % 2 == 0:
            raise _failed(
                f"Diffie-Hellman modulus of {p.bit_length()} bits; "
                f"{MIN_GROUP_BITS} to {MAX_GROUP_BITS} are accepted"
            )
        if not 1 < self.g < p - 1 or not 1 < self.y < p - 1:
            raise _failed("Diffie-Hellman generator or public value out of range")


def session_key(shared: int, p: int) -> bytes:
    """The AES session key of a shared secret (``getKeyFromDH``)."""
    raw = shared.to_bytes((p.bit_length() + 7) // 8, "big")
    start = 0
    while start + SESSION_KEY_BYTES < len(raw) and raw[start] == 0:
        start += 1
    return raw[start : start + SESSION_KEY_BYTES]


@dataclass(frozen=True, slots=True)
class DhKeyPair:
    secret: int
    public: DhPublic

    @classmethod
    def generate(cls, p: int = GROUP14_P, g: int = GROUP14_G) -> DhKeyPair:
        bits = EXPONENT_BITS if p.bit_length() <= 2048 else LARGE_GROUP_EXPONENT_BITS
        x = secrets.randbits(bits) | (1 << (bits - 1))
        return cls(x, DhPublic(pow(g, x, p), p, g))

    def shared_key(self, peer: DhPublic) -> bytes:
        if (peer.p, peer.g) != (self.public.p, self.public.g):
            raise _failed("the peer's Diffie-Hellman key is in another group")
        peer.check()
        return session_key(pow(peer.y, self.secret, self.public.p), self.public.p)


def server_exchange(client_key: bytes) -> tuple[bytes, bytes]:
    """The SESSION_SETUP answer data and the session key for a client's DH key."""
    client = DhPublic.from_wire(client_key)
    mine = DhKeyPair.generate(client.p, client.g)
    data = ENCRYPT_ALG_AES.to_bytes(4, "big") + mine.public.to_wire()
    return data, mine.shared_key(client)


def client_finish(pair: DhKeyPair, data: bytes) -> bytes:
    """The session key from a server's SESSION_SETUP answer data (protocol 2.4+)."""
    if len(data) < 4:
        raise _failed("short Diffie-Hellman answer")
    algorithm = int.from_bytes(data[:4], "big")
    if algorithm != ENCRYPT_ALG_AES:
        raise _failed(f"session encryption algorithm {algorithm} is not supported")
    return pair.shared_key(DhPublic.from_wire(data[4:]))


__all__ = [
    "DH_KEY_TYPE",
    "ENCRYPT_ALG_AES",
    "DhKeyPair",
    "DhPublic",
    "client_finish",
    "server_exchange",
    "session_key",
]
