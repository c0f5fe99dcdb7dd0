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
deprecated.  A Handle client picks its own group, so only published safe-prime
groups with generator 2 are accepted (``native_dh_groups``: the one a stock client
sends, RFC 3526 and RFC 7919 up to 4096 bits), and public values strictly between
1 and p - 1.  The secret exponent has twice the bits of the group's strength (NIST
SP 800-56A): 256 up to 2048-bit groups, 384 above.

The exponentiations (``modexp``) go a few exponent bits per step: the built-in
``pow`` holds the interpreter lock for a whole 4096-bit exponentiation, so a
set-up run in a worker thread (``ServerTrust.open_dh_session``) would still stall
the event loop; split into short steps it lets the loop run in between.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers.wire import WireReader, WireWriter
from iinode.resolution.native_dh_groups import GENERATOR, MODP_2048, SAFE_PRIME_GROUPS

DH_KEY_TYPE = "DH_PUB_KEY"
#: ``HdlSecurityProvider.ENCRYPT_ALG_AES``: what a Handle.Net server announces by default.
ENCRYPT_ALG_AES = 3
SESSION_KEY_BYTES = 32
EXPONENT_BITS = 256
LARGE_GROUP_EXPONENT_BITS = 384
#: RFC 3526 group 14 (2048-bit MODP), what iinode's own client proposes.
GROUP14_P = MODP_2048
GROUP14_G = GENERATOR
#: Exponent bits per step of ``modexp`` (a window of 2**5 precomputed powers).
_WINDOW = 5


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
        if p not in SAFE_PRIME_GROUPS or self.g != GENERATOR:
            raise _failed(
                f"Diffie-Hellman modulus of {p.bit_length()} bits (generator {self.g}) is not "
                "a known safe-prime group (RFC 2409 group 2, RFC 3526, RFC 7919)"
            )
        if not 1 < self.y < p - 1:
            raise _failed("Diffie-Hellman public value out of range")


def modexp(base: int, exponent: int, modulus: int) -> int:
    """``pow(base, exponent, modulus)`` in steps of ``_WINDOW`` exponent bits, each a
    short call, so a thread running it gives up the interpreter lock in between."""
    table = [1, base % modulus]
    for _ in range(2, 1 << _WINDOW):
        table.append(table[-1] * base % modulus)
    mask, square = (1 << _WINDOW) - 1, 1 << _WINDOW
    result = 1
    for shift in range((exponent.bit_length() - 1) // _WINDOW * _WINDOW, -1, -_WINDOW):
        result = pow(result, square, modulus)
        digit = (exponent >> shift) & mask
        if digit:
            result = result * table[digit] % modulus
    return result


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
        return cls(x, DhPublic(modexp(g, x, p), p, g))

    def shared_key(self, peer: DhPublic) -> bytes:
        if (peer.p, peer.g) != (self.public.p, self.public.g):
            raise _failed("the peer's Diffie-Hellman key is in another group")
        peer.check()
        return session_key(modexp(peer.y, self.secret, self.public.p), self.public.p)


def server_exchange(client_key: bytes | DhPublic) -> tuple[bytes, bytes]:
    """The SESSION_SETUP answer data and the session key for a client's DH key (read
    and checked unless already a ``DhPublic``).  Two exponentiations: run it off the
    event loop."""
    client = client_key if isinstance(client_key, DhPublic) else DhPublic.from_wire(client_key)
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
    "modexp",
    "server_exchange",
    "session_key",
]
