"""How an HS_SECKEY secret is stored, and the legacy SCRAM verifiers HTTP Basic still accepts.

Every path that writes an HS_SECKEY (REST, native, ``iinode init``,
``bulk-load``, a delegation's ``--child-secret``) goes through
``protect_seckey``: the secret is sealed with the node key
(``node.secret_box``), never stored in clear and never publicly readable, since
Handle.Net's challenge answers (``node.seckey_answers``) need the secret itself.

Nodes of earlier versions stored a SCRAM verifier instead (RFC 5802 with
SHA-256, RFC 7677)::

    SaltedPassword = PBKDF2-HMAC-SHA256(secret, salt, iterations)
    StoredKey      = SHA-256(HMAC(SaltedPassword, "Client Key"))
    ServerKey      = HMAC(SaltedPassword, "Server Key")

as ``SCRAM-SHA-256$<iterations>$<salt>$<StoredKey>$<ServerKey>`` (base64
fields).  Such a value still authenticates HTTP Basic (``check_secret``) and may
still be written (it is kept as it is), but it cannot answer a native challenge:
write the secret again to use it there.
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
from iinode.node.secret_box import NodeSecrets, SecretBox

#: Name of the (legacy) scheme: a verifier's first field.
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


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """What a secret derives to under a verifier's salt and iterations."""

    client_key: bytes
    stored_key: bytes

    @classmethod
    def derive(cls, secret: str, salt: bytes, iterations: int) -> Self:
        client_key = _hmac(salted_password(secret, salt, iterations), b"Client Key")
        return cls(client_key, hashlib.sha256(client_key).digest())


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


def protect_seckey(value: HandleValue, secrets: NodeSecrets) -> HandleValue:
    """An HS_SECKEY value as it is stored: its secret sealed, not publicly readable.

    Data already sealed with this node's key is kept (a record read from the
    store and written back); data sealed with another key is refused, as is an
    empty secret or a malformed SCRAM verifier.  A well-formed verifier is kept.
    """
    assert isinstance(value.data, SecKeyData)
    raw = value.data.raw
    if not raw:
        raise ValueInvalid(f"the HS_SECKEY at index {value.index} has no secret")
    if SecretVerifier.looks_like(raw):
        SecretVerifier.parse(raw)
        data = value.data
    elif SecretBox.is_sealed(raw):
        secrets.open(raw)
        data = value.data
    else:
        data = SecKeyData(secrets.seal(raw))
    return replace(value, data=data, permissions=value.permissions & ~Permissions.PUBLIC_READ)


def stored_secret(raw: bytes, secrets: NodeSecrets) -> bytes | None:
    """The secret of stored HS_SECKEY data, if it holds one this node can open.

    ``None`` for a SCRAM verifier (not a secret) or data sealed with another key.
    Data neither sealed nor a verifier (written to the store by other means) is
    the secret itself, as Handle.Net stores it.
    """
    if SecretVerifier.looks_like(raw):
        return None
    if SecretBox.is_sealed(raw):
        try:
            return secrets.open(raw)
        except ValueInvalid:
            return None
    return raw or None


__all__ = [
    "ITERATIONS",
    "SCHEME",
    "ClientKeys",
    "SecretVerifier",
    "protect_seckey",
    "salted_password",
    "stored_secret",
]
