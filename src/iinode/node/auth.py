"""Authentication and authorisation, shared by every front end.

Identities are ``index:handle`` references (``300:0.NA/88.118.8``).  An
identity authenticates with the secret whose salted PBKDF2 hash is stored in
the HS_SECKEY value at that index.  An operation on a handle is allowed when an
HS_ADMIN value of the handle (or, to create one, of the prefix record
``0.NA/<prefix>``) grants the needed bit to the identity, directly or through
an HS_VLIST group, or when the identity is an administrator of the node.

Two ways to prove an identity, one per front end:

* REST: HTTP Basic with the secret itself (``Authorizer.authenticate``).
* Native protocol: challenge-response (``Authorizer.verify_answer``).  For an
  HS_SECKEY the answer is ``HMAC-SHA256(K, nonce || request digest)`` where
  ``K`` is the stored PBKDF2 hash (the client derives it from its secret with
  the salt and iterations the challenge tells it), so the server never needs
  the plain secret.  For an HS_PUBKEY the answer is a signature (RSA PKCS#1
  v1.5 or DSA, SHA-256) over ``nonce || request digest``, checked against the
  key in the RFC 3651 encoding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from iinode.errors import AuthenticationFailed, HandleError, InvalidHandle, NotAuthorized
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    PubKeyData,
    Record,
    SecKeyData,
    VListData,
)
from iinode.identifiers.wire import WireReader, WireWriter

HASH_SCHEME = b"PBKDF2-HMAC-SHA256"
HASH_ITERATIONS = 50_000
_MAX_GROUP_DEPTH = 4

#: Authentication types of a challenge answer (RFC 3652 s3.5.2).
SECKEY_AUTH = "HS_SECKEY"
PUBKEY_AUTH = "HS_PUBKEY"
#: Name of the key derivation announced in a challenge.
KDF_NAME = HASH_SCHEME.decode()
#: Names of the public-key encodings of RFC 3651 (HS_PUBKEY data).
RSA_KEY_TYPE = "RSA_PUB_KEY"
DSA_KEY_TYPE = "DSA_PUB_KEY"
SIGNATURE_HASH = "SHA-256"
_MAX_ITERATIONS = 10_000_000

PublicKey = rsa.RSAPublicKey | dsa.DSAPublicKey
PrivateKey = rsa.RSAPrivateKey | dsa.DSAPrivateKey

#: Fetches a record (or None) by handle: the authoriser's only view of the store.
RecordLookup = Callable[[HandleName], Awaitable[Record | None]]


def hash_secret(
    secret: str, *, iterations: int = HASH_ITERATIONS, salt: bytes | None = None
) -> bytes:
    """The stored form of an HS_SECKEY secret: ``PBKDF2-HMAC-SHA256$iter$salt$hash``."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)
    return b"$".join(
        [HASH_SCHEME, str(iterations).encode(), base64.b64encode(salt), base64.b64encode(digest)]
    )


def is_hashed(raw: bytes) -> bool:
    return raw.startswith(HASH_SCHEME + b"$")


def verify_secret(secret: str, stored: bytes) -> bool:
    if not is_hashed(stored):
        return hmac.compare_digest(secret.encode("utf-8"), stored)
    try:
        _, iterations, salt, digest = stored.split(b"$")
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac(
            "sha256", secret.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True, slots=True)
class KeyDerivation:
    """How a client turns its secret into the key a hashed HS_SECKEY holds."""

    salt: bytes
    iterations: int


def stored_derivation(stored: bytes) -> KeyDerivation | None:
    """The PBKDF2 parameters of a stored secret; ``None`` for a plain-text secret."""
    if not is_hashed(stored):
        return None
    try:
        _, iterations, salt, _digest = stored.split(b"$")
        return KeyDerivation(base64.b64decode(salt, validate=True), int(iterations))
    except ValueError:
        return None


def _stored_key(stored: bytes) -> bytes:
    if not is_hashed(stored):
        return stored
    try:
        return base64.b64decode(stored.split(b"$")[3], validate=True)
    except (ValueError, IndexError):
        return b""


def derive_key(secret: str, derivation: KeyDerivation | None) -> bytes:
    """The challenge key of a secret: its PBKDF2 hash, or the secret itself if stored plain."""
    if derivation is None:
        return secret.encode("utf-8")
    if not 0 < derivation.iterations <= _MAX_ITERATIONS:
        raise AuthenticationFailed(f"refusing {derivation.iterations} PBKDF2 iterations")
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), derivation.salt, derivation.iterations)


def seckey_answer(key: bytes, nonce: bytes, request_digest: bytes) -> bytes:
    """The answer to a challenge with an HS_SECKEY: HMAC-SHA256(key, nonce || digest)."""
    return hmac.new(key, nonce + request_digest, hashlib.sha256).digest()


def _int_bytes(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")


def encode_public_key(key: PublicKey) -> bytes:
    """HS_PUBKEY data (RFC 3651): key type, 2 reserved octets, then the key's numbers."""
    w = WireWriter()
    if isinstance(key, rsa.RSAPublicKey):
        n = key.public_numbers()
        w.utf8(RSA_KEY_TYPE).u16(0).byte_string(_int_bytes(n.e)).byte_string(_int_bytes(n.n))
    else:
        d = key.public_numbers()
        p = d.parameter_numbers
        w.utf8(DSA_KEY_TYPE).u16(0)
        for part in (p.q, p.p, p.g, d.y):
            w.byte_string(_int_bytes(part))
    return w.getvalue()


def decode_public_key(raw: bytes) -> PublicKey:
    """Read HS_PUBKEY data; raises ``AuthenticationFailed`` if it is not a usable key."""
    try:
        r = WireReader(raw)
        kind = r.utf8("key type")
        r.u16("key flags")
        parts = [int.from_bytes(r.byte_string("key number"), "big") for _ in range(_PARTS[kind])]
        r.expect_end("public key")
        if kind == RSA_KEY_TYPE:
            return rsa.RSAPublicNumbers(parts[0], parts[1]).public_key()
        q, p, g, y = parts
        return dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
    except KeyError:
        raise AuthenticationFailed("unsupported public key type") from None
    except (HandleError, ValueError) as exc:
        raise AuthenticationFailed(f"unusable public key: {exc}") from None


_PARTS = {RSA_KEY_TYPE: 2, DSA_KEY_TYPE: 4}


def pubkey_answer(key: PrivateKey, nonce: bytes, request_digest: bytes) -> bytes:
    """The answer to a challenge with an HS_PUBKEY: hash name, then the signature."""
    data = nonce + request_digest
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(data, hashes.SHA256())
    return WireWriter().utf8(SIGNATURE_HASH).byte_string(signature).getvalue()


def verify_pubkey_answer(
    key: PublicKey, nonce: bytes, request_digest: bytes, answer: bytes
) -> bool:
    try:
        r = WireReader(answer)
        algorithm = r.utf8("signature hash")
        signature = r.byte_string("signature")
        r.expect_end("signature")
    except HandleError:
        return False
    if algorithm.upper().replace("-", "") != "SHA256":
        return False
    data = nonce + request_digest
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data, hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Credentials:
    identity: IndexedHandle
    secret: str


class Authorizer:
    """Checks identities and HS_ADMIN permissions against records in a store."""

    def __init__(self, lookup: RecordLookup, node_admins: frozenset[IndexedHandle]) -> None:
        self._lookup = lookup
        self._node_admins = node_admins
        self._verified: dict[tuple[str, bytes], bool] = {}
        self._decoy = os.urandom(32)

    async def _key_value(self, identity: IndexedHandle) -> HandleValue | None:
        try:
            record = await self._lookup(identity.handle)
        except InvalidHandle:
            return None
        if record is None:
            return None
        return next((v for v in record if v.index == identity.index), None)

    async def key_derivation(self, identity: IndexedHandle) -> KeyDerivation | None:
        """Parameters a challenge announces for ``identity``'s HS_SECKEY.

        An identity without a hashed HS_SECKEY gets stable made-up parameters, so
        the challenge does not tell who exists.
        """
        value = await self._key_value(identity)
        if value is not None and isinstance(value.data, SecKeyData):
            if not is_hashed(value.data.raw):
                return None
            derivation = stored_derivation(value.data.raw)
            if derivation is not None:
                return derivation
        salt = hmac.new(self._decoy, str(identity).encode(), hashlib.sha256).digest()[:16]
        return KeyDerivation(salt, HASH_ITERATIONS)

    async def verify_answer(
        self,
        identity: IndexedHandle,
        auth_type: str,
        nonce: bytes,
        request_digest: bytes,
        answer: bytes,
    ) -> IndexedHandle:
        """Check a challenge answer (HS_SECKEY or HS_PUBKEY); return the identity or raise."""
        value = await self._key_value(identity)
        if auth_type == SECKEY_AUTH:
            if value is None or not isinstance(value.data, SecKeyData):
                raise AuthenticationFailed(f"identity {identity} has no HS_SECKEY")
            key = _stored_key(value.data.raw)
            expected = seckey_answer(key, nonce, request_digest)
            if not key or not hmac.compare_digest(expected, answer):
                raise AuthenticationFailed(f"wrong challenge answer for identity {identity}")
            return identity
        if auth_type == PUBKEY_AUTH:
            if value is None or not isinstance(value.data, PubKeyData):
                raise AuthenticationFailed(f"identity {identity} has no HS_PUBKEY")
            public = decode_public_key(value.data.raw)
            if not verify_pubkey_answer(public, nonce, request_digest, answer):
                raise AuthenticationFailed(f"bad signature for identity {identity}")
            return identity
        raise AuthenticationFailed(f"unsupported authentication type {auth_type!r}")

    async def authenticate(self, creds: Credentials) -> IndexedHandle:
        """Return the identity if the secret matches its HS_SECKEY; else raise."""
        record = await self._lookup(creds.identity.handle)
        value = (
            None
            if record is None
            else next((v for v in record if v.index == creds.identity.index), None)
        )
        if value is None or not isinstance(value.data, SecKeyData):
            raise AuthenticationFailed(f"identity {creds.identity} has no HS_SECKEY")
        stored = value.data.raw
        key = (str(creds.identity), hashlib.sha256(creds.secret.encode() + b"\0" + stored).digest())
        ok = self._verified.get(key)
        if ok is None:
            ok = verify_secret(creds.secret, stored)
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = ok
        if not ok:
            raise AuthenticationFailed(f"wrong secret for identity {creds.identity}")
        return creds.identity

    def is_node_admin(self, identity: IndexedHandle) -> bool:
        return identity in self._node_admins

    async def allowed(
        self, identity: IndexedHandle, admins: Record, needed: AdminPermission
    ) -> bool:
        if self.is_node_admin(identity):
            return True
        for value in admins:
            if not isinstance(value.data, AdminData) or needed not in value.data.permissions:
                continue
            if await self._is_member(identity, value.data.admin, _MAX_GROUP_DEPTH):
                return True
        return False

    async def require(
        self, identity: IndexedHandle, admins: Record, needed: AdminPermission, what: str
    ) -> None:
        if not await self.allowed(identity, admins, needed):
            raise NotAuthorized(f"{identity} lacks the {needed.name} permission to {what}")

    async def _is_member(self, identity: IndexedHandle, ref: IndexedHandle, depth: int) -> bool:
        if ref == identity:
            return True
        if depth == 0:
            return False
        try:
            record = await self._lookup(ref.handle)
        except InvalidHandle:
            return False
        if record is None:
            return False
        for value in record:
            if value.index == ref.index and isinstance(value.data, VListData):
                for member in value.data.refs:
                    if await self._is_member(identity, member, depth - 1):
                        return True
        return False
