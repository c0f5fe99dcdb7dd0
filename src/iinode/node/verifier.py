"""How an HS_SECKEY secret is stored: a SCRAM verifier, never the secret or its hash.

The scheme is SCRAM's (RFC 5802, with SHA-256 as in RFC 7677)::

    SaltedPassword = PBKDF2-HMAC-SHA256(secret, salt, iterations)
    ClientKey      = HMAC(SaltedPassword, "Client Key")
    StoredKey      = SHA-256(ClientKey)
    ServerKey      = HMAC(SaltedPassword, "Server Key")

The HS_SECKEY value holds ``SCRAM-SHA-256$<iterations>$<salt>$<StoredKey>$<ServerKey>``
(base64 fields).  Whoever reads it learns neither the secret nor ``ClientKey``,
and both ways of proving an identity need one of them:

* HTTP Basic sends the secret; the node derives ``ClientKey`` and compares
  ``SHA-256(ClientKey)`` with ``StoredKey`` (``SecretVerifier.check_secret``).
* The native challenge is answered with the proof
  ``ClientKey XOR HMAC(StoredKey, AuthMessage)``, ``AuthMessage`` being the
  challenge nonce followed by the request digest; the node recovers
  ``ClientKey`` from it and compares its hash with ``StoredKey``
  (``SecretVerifier.check_proof``).

As in SCRAM, someone holding both a verifier and a recorded exchange can
recover ``ClientKey``; reading the verifier alone is not enough.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, replace
from typing import Self

from iinode.errors import ValueInvalid
from iinode.identifiers import HandleValue, Permissions, SecKeyData

#: Name of the scheme: the verifier's first field and the ``kdf`` a challenge announces.
SCHEME = "SCRAM-SHA-256"
ITERATIONS = 50_000
#: Bounds on the iterations a verifier may ask for (RFC 7677 asks for at least 4096; the
#: upper bound keeps one HTTP Basic check under a second).
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 1_000_000
_PREFIX = SCHEME.encode() + b"$"
_KEY_BYTES = hashlib.sha256().digest_size


def salted_password(secret: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """What a client derives from its secret to answer challenges."""

    client_key: bytes
    stored_key: bytes

    @classmethod
    def derive(cls, secret: str, salt: bytes, iterations: int) -> Self:
        client_key = _hmac(salted_password(secret, salt, iterations), b"Client Key")
        return cls(client_key, hashlib.sha256(client_key).digest())

    def proof(self, auth_message: bytes) -> bytes:
        """``ClientKey XOR HMAC(StoredKey, AuthMessage)``."""
        return _xor(self.client_key, _hmac(self.stored_key, auth_message))


@dataclass(frozen=True, slots=True)
class SecretVerifier:
    """The stored form of an HS_SECKEY secret."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def __post_init__(self) -> None:
        if not MIN_ITERATIONS <= self.iterations <= MAX_ITERATIONS:
            raise ValueInvalid(
                f"HS_SECKEY verifier iterations {self.iterations} are outside "
                f"{MIN_ITERATIONS}..{MAX_ITERATIONS}"
            )
        if not 8 <= len(self.salt) <= 64:
            raise ValueInvalid("HS_SECKEY verifier salt must be 8 to 64 octets")
        if len(self.stored_key) != _KEY_BYTES or len(self.server_key) != _KEY_BYTES:
            raise ValueInvalid(f"HS_SECKEY verifier keys must be {_KEY_BYTES} octets")

    @classmethod
    def create(
        cls, secret: str, *, iterations: int = ITERATIONS, salt: bytes | None = None
    ) -> Self:
        """The verifier of ``secret`` (one PBKDF2 derivation: slow on purpose)."""
        if not secret:
            raise ValueInvalid("an HS_SECKEY secret must not be empty")
        salt = os.urandom(16) if salt is None else salt
        salted = salted_password(secret, salt, iterations)
        stored = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
        return cls(iterations, salt, stored, _hmac(salted, b"Server Key"))

    @staticmethod
    def looks_like(raw: bytes) -> bool:
        """Whether ``raw`` claims to be a verifier (it may still be malformed)."""
        return raw.startswith(_PREFIX)

    @classmethod
    def parse(cls, raw: bytes) -> Self:
        """Read a stored verifier; raises ``ValueInvalid`` if ``raw`` is not one."""
        parts = raw.split(b"$")
        if len(parts) != 5 or parts[0] != SCHEME.encode():
            raise ValueInvalid(f"HS_SECKEY data is not a {SCHEME} verifier")
        try:
            iterations = int(parts[1])
            salt, stored, server = (base64.b64decode(p, validate=True) for p in parts[2:])
        except (ValueError, binascii.Error):
            raise ValueInvalid(f"HS_SECKEY data is a malformed {SCHEME} verifier") from None
        return cls(iterations, salt, stored, server)

    @classmethod
    def parse_or_none(cls, raw: bytes) -> Self | None:
        try:
            return cls.parse(raw)
        except ValueInvalid:
            return None

    def to_bytes(self) -> bytes:
        fields = (self.salt, self.stored_key, self.server_key)
        return b"$".join(
            [SCHEME.encode(), str(self.iterations).encode(), *map(base64.b64encode, fields)]
        )

    def check_secret(self, secret: str) -> bool:
        """HTTP Basic: does ``secret`` derive this verifier's StoredKey?  (Slow: PBKDF2.)"""
        keys = ClientKeys.derive(secret, self.salt, self.iterations)
        return hmac.compare_digest(keys.stored_key, self.stored_key)

    def check_proof(self, auth_message: bytes, proof: bytes) -> bool:
        """Native challenge: does ``proof`` carry the ClientKey behind StoredKey?  (Fast.)"""
        if len(proof) != _KEY_BYTES:
            return False
        client_key = _xor(proof, _hmac(self.stored_key, auth_message))
        return hmac.compare_digest(hashlib.sha256(client_key).digest(), self.stored_key)


def protect_seckey(value: HandleValue) -> HandleValue:
    """An HS_SECKEY value as it is stored: its secret replaced by the verifier, not public.

    Data that already is a verifier is kept (so a secret can be set without
    sending it); a malformed verifier, an empty or non-UTF-8 secret is refused.
    One PBKDF2 derivation per secret: call it off the event loop.
    """
    assert isinstance(value.data, SecKeyData)
    raw = value.data.raw
    if SecretVerifier.looks_like(raw):
        SecretVerifier.parse(raw)
        data = value.data
    else:
        try:
            secret = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueInvalid(
                f"the HS_SECKEY secret at index {value.index} is not UTF-8"
            ) from None
        data = SecKeyData(SecretVerifier.create(secret).to_bytes())
    return replace(value, data=data, permissions=value.permissions & ~Permissions.PUBLIC_READ)


__all__ = [
    "ITERATIONS",
    "SCHEME",
    "ClientKeys",
    "SecretVerifier",
    "protect_seckey",
    "salted_password",
]
