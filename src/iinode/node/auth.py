"""Authentication and authorisation, shared by every front end.

Identities are ``index:handle`` references (``300:0.NA/88.118.8``).  An
identity authenticates with the secret of the HS_SECKEY value at that index
(sealed at rest with the node key: ``node.secret_box``, ``node.verifier``), or
with the private key of the HS_PUBKEY there.  An operation on a handle is
allowed when an HS_ADMIN value of the handle (or, to create one, of the prefix
record ``0.NA/<prefix>``) grants the needed bit to the identity, directly or
through an HS_VLIST group, or when the identity is an administrator of the node.

Two ways to prove an identity, one per front end:

* REST: HTTP Basic with the secret itself (``Authorizer.authenticate``),
  compared in constant time with the opened secret.  A legacy SCRAM verifier
  (``node.verifier``) is checked by its PBKDF2 derivation in a worker thread.
  An identity without an HS_SECKEY here whose handle lives on another node is
  checked there: the node answers a fresh nonce with the given secret
  (HMAC-SHA256, as a client would) and asks with VERIFY_RESPONSE.
* Native protocol: challenge-response (``Authorizer.verify_answer``), as
  Handle.Net 9 does it.  For an HS_SECKEY the answer is a keyed digest of
  ``nonce || request digest`` of any type Handle.Net clients use
  (``node.seckey_answers``); an identity index 0 means any HS_SECKEY of the
  handle.  An identity whose handle lives on another node is checked there
  (``remote_verifier``: VERIFY_RESPONSE, set by the native front end).  For an
  HS_PUBKEY the answer is a signature (RSA PKCS#1 v1.5 or DSA, SHA-256) over
  ``nonce || request digest``, checked against the key in the RFC 3651 encoding
  (``node.public_keys``).

``check_seckey_answer`` is what a VERIFY_RESPONSE request asks of the node that
holds the secret.  Every failure says the same thing whether the identity exists
or not, an unknown identity costs about what a known one does (a decoy secret),
and failures are counted per source address, and per address and identity
(``node.ratelimit``): a source out of attempts is refused before any secret is
checked.  The counts are shared by all processes of the node when the
``Authorizer`` is given a ``FailureStore`` (``node.failure_counts``:
``failure_store_for(settings)``), else kept per process.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from iinode.errors import AuthenticationFailed, InvalidHandle, NotAuthorized
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
from iinode.node.failure_counts import (
    CLIENT_SCOPE,
    NODE_SCOPE,
    FailureStore,
    SharedFailureLimiter,
)
from iinode.node.public_keys import decode_public_key, verify_pubkey_answer
from iinode.node.ratelimit import FailureCounter, FailureLimiter, FailureLimits, retry_text
from iinode.node.seckey_answers import answer_type, check_answer, seckey_answer
from iinode.node.secret_box import NodeSecrets
from iinode.node.verifier import SecretVerifier, stored_secret
from iinode.proto import DigestAlgorithm

_MAX_GROUP_DEPTH = 4

#: HS_SECKEY values one challenge answer is checked against (identity index 0 names
#: all of a handle's).
MAX_ANSWER_CANDIDATES = 4
#: Authentication types of a challenge answer (RFC 3652 s3.5.2).
SECKEY_AUTH = "HS_SECKEY"
PUBKEY_AUTH = "HS_PUBKEY"

#: Fetches a record (or None) by handle: the authoriser's only view of the store.
RecordLookup = Callable[[HandleName], Awaitable[Record | None]]
#: Asks the node holding ``identity``'s HS_SECKEY to check an answer (VERIFY_RESPONSE):
#: ``(identity, nonce, request digest, answer, old_format)``; ``None`` when the
#: identity's handle lives on this node (check it here), else the remote verdict.
RemoteVerify = Callable[[IndexedHandle, bytes, bytes, bytes, bool], Awaitable[bool | None]]
#: Successful (identity, secret) checks of legacy SCRAM verifiers remembered, so a
#: client repeating its HTTP Basic credentials does not pay a derivation per request.
_VERIFIED_CACHE = 10_000


@dataclass(frozen=True, slots=True)
class Credentials:
    identity: IndexedHandle
    secret: str


#: Failure limits for VERIFY_RESPONSE checks asked by neighbour nodes: one failure a
#: second per identity and node keeps its bucket full (a client limits a client to one
#: every 5 s); a node guessing for itself is still bounded.
NODE_FAILURE_LIMITS = FailureLimits(
    burst=100, per_second=1.0, source_burst=300, source_per_second=5.0, identities_per_source=64
)


#: Told of each failed authentication: ``(channel, identity text, peer address or None)``.
AuthFailureObserver = Callable[[str, str, str | None], None]


class Authorizer:
    """Checks identities and HS_ADMIN permissions against records in a store.

    Failed authentications are counted in ``failures`` when given (a store the
    node's processes share: ``failure_counts.failure_store_for(settings)``), else
    in this process.  ``clock`` times the buckets: by default the monotonic clock
    in memory, the wall clock in a shared store (whose buckets outlive a reboot,
    which restarts the monotonic clock).
    """

    def __init__(
        self,
        lookup: RecordLookup,
        node_admins: frozenset[IndexedHandle],
        *,
        secrets: NodeSecrets | None = None,
        limits: FailureLimits | None = None,
        clock: Callable[[], float] | None = None,
        failures: FailureStore | None = None,
    ) -> None:
        self._lookup = lookup
        self._node_admins = node_admins
        self.secrets = secrets if secrets is not None else NodeSecrets(None)
        #: Observers of failed authentications (monitoring); they must not raise.
        self.failure_observers: list[AuthFailureObserver] = []
        #: Failed authentications per source address, and per address and identity:
        #: in ``failures`` (shared by the node's processes) if given, else per process.
        self.limiter: FailureCounter
        #: Failed VERIFY_RESPONSE checks asked by neighbour nodes (parent, children) for
        #: their clients, whom they limit themselves: counted far more leniently, so
        #: that one client of a child cannot lock an identity out for all of them.
        self.node_limiter: FailureCounter
        if failures is None:
            self.limiter = FailureLimiter(limits, clock or time.monotonic)
            self.node_limiter = FailureLimiter(NODE_FAILURE_LIMITS, clock or time.monotonic)
        else:
            wall = clock or time.time
            self.limiter = SharedFailureLimiter(failures, CLIENT_SCOPE, limits, clock=wall)
            self.node_limiter = SharedFailureLimiter(
                failures, NODE_SCOPE, NODE_FAILURE_LIMITS, clock=wall
            )
        #: Checks answers for identities held by other nodes (None: refuse them).
        self.remote_verifier: RemoteVerify | None = None
        self._verified: set[bytes] = set()
        self._decoy = os.urandom(32)
        self._decoy_box: bytes | None = None

    async def _values(self, identity: IndexedHandle) -> list[HandleValue]:
        """The values at ``identity`` (index 0: every value of the handle)."""
        try:
            record = await self._lookup(identity.handle)
        except InvalidHandle:
            return []
        if record is None:
            return []
        return [v for v in record if identity.index in (0, v.index)]

    async def _key_value(self, identity: IndexedHandle) -> HandleValue | None:
        return next((v for v in await self._values(identity) if v.index == identity.index), None)

    async def _secrets_of(self, identity: IndexedHandle) -> list[bytes]:
        """The opened HS_SECKEY secrets at ``identity`` (index 0: all of the handle)."""
        out = []
        for value in await self._values(identity):
            if isinstance(value.data, SecKeyData):
                secret = stored_secret(value.data.raw, self.secrets)
                if secret is not None:
                    out.append(secret)
        return out

    def _decoy_sealed(self, identity: IndexedHandle) -> bytes:
        if self._decoy_box is None:
            self._decoy_box = self.secrets.seal(self._decoy_secret(identity))
        return self._decoy_box

    def _decoy_secret(self, identity: IndexedHandle) -> bytes:
        """A secret nobody knows, stable per identity: unknown identities cost the same."""
        return hmac.new(self._decoy, str(identity).encode(), hashlib.sha256).hexdigest().encode()

    @staticmethod
    def _limit_key(identity: IndexedHandle, peer: str | None) -> tuple[str, str] | None:
        """Failures are counted per source address, and per address and identity, so
        that guessing one identity's secret is slowed without locking out everyone else
        behind the same address (a NAT, a proxy), and rotating identity names does not
        escape the address's own bound (``node.ratelimit``)."""
        return None if peer is None else (peer, str(identity))

    async def wait_time(self, identity: IndexedHandle, peer: str | None) -> float:
        """Seconds until ``peer`` may try to authenticate as ``identity`` again (0: now),
        counting the failures every process of the node has seen."""
        return await self.limiter.wait(self._limit_key(identity, peer))

    def retry_after(self, identity: IndexedHandle, peer: str | None) -> float:
        """``wait_time`` as far as this process knows without asking the shared
        counts (exact when they are kept per process)."""
        return self.limiter.known_wait(self._limit_key(identity, peer))

    async def _check_limit(self, identity: IndexedHandle, peer: str | None) -> None:
        wait = await self.wait_time(identity, peer)
        if wait > 0:
            raise AuthenticationFailed(
                f"too many failed authentications as {identity} from {peer}; "
                f"try again in {retry_text(wait)}"
            )

    async def _refuse(self, identity: IndexedHandle, peer: str | None) -> AuthenticationFailed:
        await self.limiter.charge(self._limit_key(identity, peer))
        return AuthenticationFailed(f"authentication as {identity} failed")

    async def aclose(self) -> None:
        """Close the shared failure counts' connections (a later use opens them again)."""
        await self.limiter.aclose()
        await self.node_limiter.aclose()

    async def check_seckey_answer(
        self,
        identity: IndexedHandle,
        nonce: bytes,
        request_digest: bytes,
        answer: bytes,
        *,
        old_format: bool = False,
    ) -> bool:
        """Whether ``answer`` was made with an HS_SECKEY held here at ``identity``.

        What VERIFY_RESPONSE asks; no limit or count here (callers do that).
        PBKDF2 answers are checked in a worker thread.
        """
        # Index 0 names every HS_SECKEY of the handle: at most MAX_ANSWER_CANDIDATES are
        # tried (each may cost a PBKDF2 derivation).
        found = (await self._secrets_of(identity))[:MAX_ANSWER_CANDIDATES]
        candidates = found or [self._decoy_secret(identity)]
        kind = answer_type(answer, old_format=old_format)
        if kind is None:
            return False

        def check() -> bool:
            # Every candidate is tried, so the time taken does not say which one matched.
            results = [
                check_answer(s, nonce, request_digest, answer, old_format=old_format)
                for s in candidates
            ]
            return any(results)

        if kind == DigestAlgorithm.PBKDF2_HMAC_SHA1:
            ok = await asyncio.to_thread(check)
        else:
            ok = check()
        return ok and bool(found)

    async def verify_request(
        self,
        identity: IndexedHandle,
        nonce: bytes,
        request_digest: bytes,
        answer: bytes,
        *,
        old_format: bool = False,
        peer: str | None = None,
        neighbour: bool = False,
    ) -> bool:
        """Answer a VERIFY_RESPONSE request: ``check_seckey_answer`` with the failure
        limit of ``peer`` (a source out of attempts gets ``False`` unchecked); a
        ``neighbour`` node asking for its clients has the lenient ``node_limiter``."""
        limiter = self.node_limiter if neighbour else self.limiter
        if await limiter.wait(self._limit_key(identity, peer)) > 0:
            return False
        ok = await self.check_seckey_answer(
            identity, nonce, request_digest, answer, old_format=old_format
        )
        if not ok:
            await limiter.charge(self._limit_key(identity, peer))
        return ok

    async def verify_answer(
        self,
        identity: IndexedHandle,
        auth_type: str,
        nonce: bytes,
        request_digest: bytes,
        answer: bytes,
        *,
        peer: str | None = None,
        old_format: bool = False,
    ) -> IndexedHandle:
        """Check a challenge answer (HS_SECKEY or HS_PUBKEY); return the identity or raise.

        ``old_format``: the peer speaks a version below 2.1, whose HS_SECKEY answer
        is a bare MD5 digest.
        """
        await self._check_limit(identity, peer)
        if auth_type == SECKEY_AUTH:
            verdict = None
            remote = self.remote_verifier
            if remote is not None:
                verdict = await remote(identity, nonce, request_digest, answer, old_format)
            if verdict is None:
                verdict = await self.check_seckey_answer(
                    identity, nonce, request_digest, answer, old_format=old_format
                )
            if not verdict:
                raise await self._refuse(identity, peer)
            return identity
        if auth_type == PUBKEY_AUTH:
            value = await self._key_value(identity)
            if value is None or not isinstance(value.data, PubKeyData):
                raise await self._refuse(identity, peer)
            try:
                public = decode_public_key(value.data.raw)
            except AuthenticationFailed:
                raise await self._refuse(identity, peer) from None
            if not verify_pubkey_answer(public, nonce, request_digest, answer):
                raise await self._refuse(identity, peer)
            return identity
        await self.limiter.charge(self._limit_key(identity, peer))
        raise AuthenticationFailed(f"unsupported authentication type {auth_type!r}")

    async def authenticate(self, creds: Credentials, *, peer: str | None = None) -> IndexedHandle:
        """Return the identity if the secret matches its HS_SECKEY; else raise.

        ``peer`` (the source address) is charged for a failure; a source out of
        attempts is refused before anything is checked, unless these very
        credentials were verified before against a legacy SCRAM verifier.
        """
        identity = creds.identity
        given = creds.secret.encode("utf-8")
        value = await self._key_value(identity) if identity.index else None
        raw = value.data.raw if value is not None and isinstance(value.data, SecKeyData) else b""
        verifier = SecretVerifier.parse_or_none(raw) if SecretVerifier.looks_like(raw) else None
        if verifier is not None:
            seen = hmac.new(
                self._decoy, b"\0".join([str(identity).encode(), given, raw]), hashlib.sha256
            ).digest()
            if seen in self._verified:
                return identity
            await self._check_limit(identity, peer)
            if not await asyncio.to_thread(verifier.check_secret, creds.secret):
                raise await self._refuse(identity, peer)
            if len(self._verified) >= _VERIFIED_CACHE:
                self._verified.clear()
            self._verified.add(seen)
            return identity
        await self._check_limit(identity, peer)
        if not raw and self.remote_verifier is not None:
            verdict = await self._remote_secret_check(identity, given)
            if verdict is not None:
                if not verdict:
                    raise await self._refuse(identity, peer)
                return identity
        secret = stored_secret(raw, self.secrets) if raw else None
        if secret is None:
            # As costly as opening a real secret, so a miss does not tell who exists.
            self.secrets.open(self._decoy_sealed(identity))
        expected = secret if secret is not None else self._decoy_secret(identity)
        if not (hmac.compare_digest(expected, given) and secret is not None):
            raise await self._refuse(identity, peer)
        return identity

    async def _remote_secret_check(self, identity: IndexedHandle, given: bytes) -> bool | None:
        """Whether ``given`` is the secret of ``identity`` held by another node (``None``:
        the identity's handle lives here).  The secret never leaves: the holder gets an
        HMAC-SHA256 answer to a fresh nonce and digest, as from a client."""
        assert self.remote_verifier is not None
        nonce, digest = os.urandom(16), os.urandom(32)
        answer = seckey_answer(given, nonce, digest, DigestAlgorithm.HMAC_SHA256)
        return await self.remote_verifier(identity, nonce, digest, answer, False)

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
