"""Authentication and authorisation, shared by every front end.

Identities are ``index:handle`` references (``300:0.NA/88.118.8``).  An
identity authenticates with the secret whose SCRAM verifier (``node.verifier``)
is stored in the HS_SECKEY value at that index, or with the private key of the
HS_PUBKEY there.  An operation on a handle is allowed when an HS_ADMIN value of
the handle (or, to create one, of the prefix record ``0.NA/<prefix>``) grants
the needed bit to the identity, directly or through an HS_VLIST group, or when
the identity is an administrator of the node.

Two ways to prove an identity, one per front end:

* REST: HTTP Basic with the secret itself (``Authorizer.authenticate``).  The
  PBKDF2 derivation runs in a worker thread, never on the event loop.
* Native protocol: challenge-response (``Authorizer.verify_answer``).  For an
  HS_SECKEY the answer is the SCRAM proof ``ClientKey XOR HMAC(StoredKey,
  nonce || request digest)``; the client derives ``ClientKey`` from its secret
  with the salt and iterations the challenge announces (``kdf``
  ``SCRAM-SHA-256``).  For an HS_PUBKEY the answer is a signature (RSA PKCS#1
  v1.5 or DSA, SHA-256) over ``nonce || request digest``, checked against the
  key in the RFC 3651 encoding.

Every failure says the same thing whether the identity exists or not, an
unknown identity costs the same derivation as a known one (a decoy verifier),
and failures are counted per source address, and per address and identity
(``node.ratelimit``): a source out of attempts is refused before any secret is
checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

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
from iinode.node import dsa_keys as dsa
from iinode.node.ratelimit import FailureLimiter, FailureLimits, retry_text
from iinode.node.verifier import (
    ITERATIONS,
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    SCHEME,
    ClientKeys,
    SecretVerifier,
)

HASH_ITERATIONS = ITERATIONS
_MAX_GROUP_DEPTH = 4

#: Authentication types of a challenge answer (RFC 3652 s3.5.2).
SECKEY_AUTH = "HS_SECKEY"
PUBKEY_AUTH = "HS_PUBKEY"
#: Name of the key derivation announced in a challenge.
KDF_NAME = SCHEME
#: Names of the public-key encodings of RFC 3651 (HS_PUBKEY data).
RSA_KEY_TYPE = "RSA_PUB_KEY"
DSA_KEY_TYPE = "DSA_PUB_KEY"
SIGNATURE_HASH = "SHA-256"

PublicKey = rsa.RSAPublicKey | dsa.DSAPublicKey
PrivateKey = rsa.RSAPrivateKey | dsa.DSAPrivateKey

#: Fetches a record (or None) by handle: the authoriser's only view of the store.
RecordLookup = Callable[[HandleName], Awaitable[Record | None]]
#: Successful (identity, secret) checks remembered, so a client repeating its
#: HTTP Basic credentials does not pay a derivation per request.
_VERIFIED_CACHE = 10_000


def hash_secret(
    secret: str, *, iterations: int = HASH_ITERATIONS, salt: bytes | None = None
) -> bytes:
    """The stored form of an HS_SECKEY secret: its SCRAM verifier."""
    return SecretVerifier.create(secret, iterations=iterations, salt=salt).to_bytes()


@dataclass(frozen=True, slots=True)
class KeyDerivation:
    """How a client turns its secret into the keys behind an HS_SECKEY verifier."""

    salt: bytes
    iterations: int


def derive_keys(secret: str, derivation: KeyDerivation) -> ClientKeys:
    """The client keys of ``secret`` under the derivation a challenge announced."""
    if not MIN_ITERATIONS <= derivation.iterations <= MAX_ITERATIONS:
        raise AuthenticationFailed(f"refusing {derivation.iterations} PBKDF2 iterations")
    return ClientKeys.derive(secret, derivation.salt, derivation.iterations)


def seckey_answer(keys: ClientKeys, nonce: bytes, request_digest: bytes) -> bytes:
    """The answer to a challenge with an HS_SECKEY: the SCRAM client proof."""
    return keys.proof(nonce + request_digest)


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


#: Told of each failed authentication: ``(channel, identity text, peer address or None)``.
AuthFailureObserver = Callable[[str, str, str | None], None]


class Authorizer:
    """Checks identities and HS_ADMIN permissions against records in a store."""

    def __init__(
        self,
        lookup: RecordLookup,
        node_admins: frozenset[IndexedHandle],
        *,
        limits: FailureLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._node_admins = node_admins
        #: Observers of failed authentications (monitoring); they must not raise.
        self.failure_observers: list[AuthFailureObserver] = []
        #: Failed authentications per source address.
        self.limiter = FailureLimiter(limits, clock)
        self._verified: set[bytes] = set()
        self._decoy = os.urandom(32)

    async def _key_value(self, identity: IndexedHandle) -> HandleValue | None:
        try:
            record = await self._lookup(identity.handle)
        except InvalidHandle:
            return None
        if record is None:
            return None
        return next((v for v in record if v.index == identity.index), None)

    async def _verifier(self, identity: IndexedHandle) -> SecretVerifier | None:
        value = await self._key_value(identity)
        if value is None or not isinstance(value.data, SecKeyData):
            return None
        return SecretVerifier.parse_or_none(value.data.raw)

    def _decoy_verifier(self, identity: IndexedHandle) -> SecretVerifier:
        """A verifier no secret matches, stable per identity, as costly as a real one."""
        seed = hmac.new(self._decoy, str(identity).encode(), hashlib.sha256).digest()
        return SecretVerifier(HASH_ITERATIONS, seed[:16], seed, seed)

    @staticmethod
    def _limit_key(identity: IndexedHandle, peer: str | None) -> tuple[str, str] | None:
        """Failures are counted per source address, and per address and identity, so
        that guessing one identity's secret is slowed without locking out everyone else
        behind the same address (a NAT, a proxy), and rotating identity names does not
        escape the address's own bound (``node.ratelimit``)."""
        return None if peer is None else (peer, str(identity))

    def retry_after(self, identity: IndexedHandle, peer: str | None) -> float:
        """Seconds until ``peer`` may try to authenticate as ``identity`` again (0: now)."""
        return self.limiter.retry_after(self._limit_key(identity, peer))

    def _check_limit(self, identity: IndexedHandle, peer: str | None) -> None:
        wait = self.retry_after(identity, peer)
        if wait > 0:
            raise AuthenticationFailed(
                f"too many failed authentications as {identity} from {peer}; "
                f"try again in {retry_text(wait)}"
            )

    def _refuse(self, identity: IndexedHandle, peer: str | None) -> AuthenticationFailed:
        self.limiter.failed(self._limit_key(identity, peer))
        return AuthenticationFailed(f"authentication as {identity} failed")

    async def key_derivation(self, identity: IndexedHandle) -> KeyDerivation | None:
        """Parameters a challenge announces for ``identity``'s HS_SECKEY.

        An identity without a usable HS_SECKEY gets stable made-up parameters, so
        the challenge does not tell who exists.  (Never ``None`` any more; the
        type stays for callers written against the plain-secret scheme.)
        """
        verifier = await self._verifier(identity) or self._decoy_verifier(identity)
        return KeyDerivation(verifier.salt, verifier.iterations)

    async def verify_answer(
        self,
        identity: IndexedHandle,
        auth_type: str,
        nonce: bytes,
        request_digest: bytes,
        answer: bytes,
        *,
        peer: str | None = None,
    ) -> IndexedHandle:
        """Check a challenge answer (HS_SECKEY or HS_PUBKEY); return the identity or raise."""
        self._check_limit(identity, peer)
        if auth_type == SECKEY_AUTH:
            verifier = await self._verifier(identity)
            if verifier is None or not verifier.check_proof(nonce + request_digest, answer):
                raise self._refuse(identity, peer)
            return identity
        if auth_type == PUBKEY_AUTH:
            value = await self._key_value(identity)
            if value is None or not isinstance(value.data, PubKeyData):
                raise self._refuse(identity, peer)
            try:
                public = decode_public_key(value.data.raw)
            except AuthenticationFailed:
                raise self._refuse(identity, peer) from None
            if not verify_pubkey_answer(public, nonce, request_digest, answer):
                raise self._refuse(identity, peer)
            return identity
        self.limiter.failed(self._limit_key(identity, peer))
        raise AuthenticationFailed(f"unsupported authentication type {auth_type!r}")

    async def authenticate(self, creds: Credentials, *, peer: str | None = None) -> IndexedHandle:
        """Return the identity if the secret matches its HS_SECKEY; else raise.

        ``peer`` (the source address) is charged for a failure; a source out of
        attempts is refused before anything is derived, unless these very credentials
        were verified before.
        """
        identity = creds.identity
        verifier = await self._verifier(identity)
        real = verifier is not None
        if verifier is None:
            verifier = self._decoy_verifier(identity)
        seen = hmac.new(
            self._decoy,
            b"\0".join([str(identity).encode(), creds.secret.encode(), verifier.to_bytes()]),
            hashlib.sha256,
        ).digest()
        if seen in self._verified:
            return identity
        self._check_limit(identity, peer)
        ok = await asyncio.to_thread(verifier.check_secret, creds.secret)
        if not (ok and real):
            raise self._refuse(identity, peer)
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.clear()
        self._verified.add(seen)
        return identity

    def failed(self, channel: str, identity: str, peer: str | None) -> None:
        """Tell the observers that an authentication on ``channel`` failed."""
        for observe in self.failure_observers:
            observe(channel, identity, peer)

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
