"""Authentication for the native handler: challenges, their answers, and sessions.

No sockets here; ``NativeHandler`` decides when to ask and what to do with the
identity proved.  As the Handle.Net 9 server does it (RFC 3652 s3.5): an
administrative request without an authenticated session gets
AUTHENTICATION_NEEDED with a 16-octet nonce, the request digest (always, in the
algorithm the answer's version implies: MD5 in the body before 2.1, SHA-1 from
2.1, SHA-256 from 2.7) and a non-zero session id naming the challenge.  The
client sends CHALLENGE_RESPONSE with that session id (any request id, on any
connection, over UDP or TCP, to any worker process: open challenges live in the
node's shared ``ChallengeTable``, each taken once); the answer to it is the
original request's, with the answer's request id.  The answer is checked against
the identity's HS_SECKEY (any Handle.Net digest type, ``node.seckey_answers``;
on the node that holds it, through VERIFY_RESPONSE, when that is another node:
``native_verify``) or HS_PUBKEY.  VERIFY_RESPONSE requests are answered for the
secrets held here.  Failed answers are charged to the client's address
(``PeerState.address``, the ``Authorizer``'s per-address limit, as for REST): an
address out of attempts is refused before its answer is checked.

SESSION_SETUP (key exchange CIPHER_CLIENT: the session key encrypted with the
client's RSA key) opens a session; later requests carrying its session id and
an HS_MAC credential act as the session's identity without a challenge.  An
administrative request or SESSION_TERMINATE naming a session must carry its
MAC (the session id travels in clear), and request ids within a session must
not repeat or fall behind the replay window (``Session.first_use``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iinode.codes import ResponseCode
from iinode.errors import AuthenticationFailed, HandleError
from iinode.identifiers import HandleName, IndexedHandle
from iinode.node.challenges import ChallengeTable
from iinode.node.public_keys import decode_public_key
from iinode.node.service import HandleService
from iinode.proto import (
    ChallengeAnswer,
    ChallengeBody,
    CredentialType,
    DigestAlgorithm,
    KeyExchangeMode,
    Message,
    OpCode,
    OpFlag,
    ReferralResponse,
    RequestDigest,
    SessionSetupRequest,
    SessionSetupResponse,
    VerifyRequest,
    VerifyResponse,
    digest_algorithm_for,
)
from iinode.resolution.native_sessions import (
    OPENING_SOURCE,
    NativeCounters,
    PeerState,
    PendingChallenge,
    Session,
    SessionTable,
)
from iinode.resolution.native_signing import verify_mac
from iinode.resolution.native_trust import ServerTrust
from iinode.resolution.native_verify import NeighbourNodes

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
#: Largest request held while its challenge is open (Handle.Net's
#: ``Common.MAX_MESSAGE_LENGTH``): larger unauthenticated requests are refused.
MAX_CHALLENGED_BYTES = 256 * 1024
#: What sealed challenge payloads are bound to (``SecretBox`` associated data).
CHALLENGE_AAD = b"iinode pending challenge v1"
#: Octets of a challenge nonce (Handle.Net ``Common.CHALLENGE_NONCE_SIZE``).
NONCE_BYTES = 16


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def _error(code: ResponseCode, message: str) -> HandleError:
    return HandleError.for_code(code, message)


class NativeAuthentication:
    """Who a request acts as, the challenges that prove it, and the sessions that keep it.

    ``session_bound`` are the operations that act as a session's identity: they
    need its MAC when they name the session.
    """

    def __init__(
        self,
        service: HandleService,
        *,
        sessions: SessionTable,
        challenges: ChallengeTable,
        trust: ServerTrust,
        counters: NativeCounters,
        session_bound: frozenset[OpCode],
        clock: Callable[[], float],
        challenge_timeout: float,
    ) -> None:
        self.service = service
        self.sessions = sessions
        self.challenges = challenges
        self.trust = trust
        self.counters = counters
        self.session_bound = session_bound
        self._clock = clock
        self.challenge_timeout = challenge_timeout
        #: The parent's and the children's server addresses (VERIFY_RESPONSE limits).
        self.neighbours = NeighbourNodes(service)

    def session_identity(self, request: Message) -> tuple[IndexedHandle | None, Session | None]:
        """The identity a request acts as, and its session when it carried that
        session's valid MAC (``None`` otherwise).

        Every session MAC is Handle.Net's from protocol 2.7 on (``verify_mac``): it
        covers the session id, request id and session counter as well as header and
        body, and the counter is the replay guard.  Older layouts, whose MAC left the
        replay guard uncovered, are refused.
        """
        if not request.session_id or request.opcode == OpCode.CHALLENGE_RESPONSE:
            return None, None  # a challenge answer's session id names the challenge
        session = self.sessions.get(request.session_id, self._clock())
        if session is None:
            raise _error(ResponseCode.SESSION_TIMEOUT, "session expired or unknown; set up again")
        cred = request.credential
        if cred is None or cred.type != CredentialType.MAC:
            if request.opcode in self.session_bound:
                raise _error(
                    ResponseCode.INVALID_CREDENTIAL,
                    f"{request.opcode.to_text()} in a session must carry the session's MAC",
                )
            return None, None  # e.g. a resolution: answered as anonymous
        if request.version < (2, 7):
            raise _error(
                ResponseCode.INVALID_CREDENTIAL,
                "session MACs need protocol 2.7 or later (the counter must be signed)",
            )
        if not verify_mac(request, session.key):
            raise _error(ResponseCode.INVALID_CREDENTIAL, "session MAC does not match")
        if not self.sessions.first_use(session, cred.signer_index):
            raise _error(ResponseCode.INVALID_CREDENTIAL, "session counter replayed")
        return session.identity, session

    async def challenge(
        self,
        request: Message,
        state: PeerState,
        claimed: IndexedHandle | None,
        maced: Session | None,
        nonce: bytes,
    ) -> Message:
        """AUTHENTICATION_NEEDED for ``request`` with ``nonce`` (fresh: ``new_nonce``),
        its state stored in the shared table.

        Like Handle.Net's ``ChallengeResponse``: the request digest is always there,
        in the algorithm of the answer's version; the session id names the challenge:
        the request's own session id when it carried that session's MAC (``maced``),
        else a fresh one (a session id travels in clear: naming it must not replace
        its owner's open challenge).  The request is stored sealed with the node key
        (it may carry an HS_SECKEY); one above ``MAX_CHALLENGED_BYTES`` is refused.
        """
        reply = request.reply(ChallengeBody(nonce), ResponseCode.AUTHENTICATION_NEEDED)
        digest = RequestDigest.of(request.signed_data(), digest_algorithm_for(reply.version))
        if digest.algorithm == DigestAlgorithm.MD5_OLD_FORMAT:
            body = ChallengeBody(nonce, digest.digest)
            reply = replace(reply, body=body, flags=reply.flags & ~OpFlag.RD, request_digest=None)
        else:
            reply = replace(reply, flags=reply.flags | OpFlag.RD, request_digest=digest)
        payload = PendingChallenge(request, nonce, digest.digest, claimed).to_bytes()
        if len(payload) > MAX_CHALLENGED_BYTES:
            raise _error(
                ResponseCode.OPERATION_DENIED,
                f"request of {len(payload)} octets is too large to authenticate "
                f"(at most {MAX_CHALLENGED_BYTES}); split it into smaller requests",
            )
        sealed = self.service.secrets.box.seal(payload, CHALLENGE_AAD)
        challenge_id = await self.challenges.put(
            sealed, self.challenge_timeout, source=state.address,
            challenge_id=maced.session_id if maced is not None else 0,
        )  # fmt: skip
        return replace(reply, session_id=challenge_id)

    async def accept_answer(
        self, request: Message, state: PeerState
    ) -> tuple[Message, IndexedHandle]:
        """The request a CHALLENGE_RESPONSE answers (under the answer's request id, as
        Handle.Net does) and the identity the answer proved; a session the request
        came in that nobody had authenticated is bound to that identity."""
        body = request.body
        assert isinstance(body, ChallengeAnswer)
        payload = await self.challenges.take(request.session_id) if request.session_id else None
        if payload is None:
            raise _error(
                ResponseCode.AUTHENTICATION_TIMEOUT,
                "no challenge is open with this session id (expired or already answered)",
            )
        try:
            pending = PendingChallenge.from_bytes(
                self.service.secrets.box.open(payload, CHALLENGE_AAD)
            )
        except HandleError as exc:
            raise _error(
                ResponseCode.AUTHENTICATION_TIMEOUT, "the open challenge cannot be read"
            ) from exc
        identity = IndexedHandle(body.key_index, HandleName.parse(body.key_handle))
        if pending.claimed is not None and identity != pending.claimed:
            raise AuthenticationFailed(f"answer is for {identity}, not {pending.claimed}")
        verified = await self.service.auth.verify_answer(
            identity,
            body.auth_type,
            pending.nonce,
            pending.digest,
            body.signed_response,
            peer=state.address,
            old_format=request.suggests < (2, 1),
        )
        original = replace(pending.request, request_id=request.request_id)
        self._bind_session(original, verified)
        return original, verified

    async def verify(self, request: Message, state: PeerState) -> Message:
        """VERIFY_RESPONSE: is this HS_SECKEY answer right?  Asked by another node (or a
        client checking its own secret) of the node that holds the secret."""
        body = request.body
        assert isinstance(body, VerifyRequest)
        identity = IndexedHandle(body.key_index, HandleName.parse(body.key_handle))
        elsewhere = await self.service.route(identity.handle)
        if elsewhere is not None:
            delegated = elsewhere.delegated_prefix
            handle = str(delegated.na_handle) if delegated is not None else ""
            referral = ReferralResponse(handle, elsewhere.values)
            return request.reply(referral, elsewhere.code)
        # A neighbour node (parent, child) asks for its own clients, whom it limits itself.
        neighbour = await self.neighbours.contains(state.address)
        valid = await self.service.auth.verify_request(
            identity, body.nonce, body.request_digest, body.signed_response,
            old_format=request.version < (2, 1), peer=state.address, neighbour=neighbour,
        )  # fmt: skip
        return request.reply(VerifyResponse(valid))

    def _bind_session(self, original: Message, identity: IndexedHandle) -> None:
        """A challenge answered for a request in a session not yet bound to anyone (a
        Diffie-Hellman session) binds that session to the identity it proved."""
        if not original.session_id:
            return
        session = self.sessions.get(original.session_id, self._clock())
        if session is None or session.identity is not None:
            return
        if not self.sessions.bind(session, identity):
            raise AuthenticationFailed(f"the session was set up for {session.claimed}")

    async def open_dh_session(self, request: Message, state: PeerState) -> Message:
        """SESSION_SETUP with key exchange DIFFIE_HELLMAN: a session nobody is bound to yet."""
        token = OPENING_SOURCE.set(state.address)  # capped per source while unbound
        try:
            reply = await self.trust.open_dh_session(request, self.sessions, self._clock)
        finally:
            OPENING_SOURCE.reset(token)
        self.counters.sessions_opened += 1
        return reply

    def open_session(self, request: Message, identity: IndexedHandle, state: PeerState) -> Message:
        """SESSION_SETUP with key exchange CIPHER_CLIENT for ``identity``: the new
        session's key, encrypted with the client's RSA key."""
        body = request.body
        assert isinstance(body, SessionSetupRequest)
        public = decode_public_key(body.public_key)
        if not isinstance(public, rsa.RSAPublicKey):
            raise _error(ResponseCode.SESSION_NO_SUPPORT, "the exchange key must be an RSA key")
        session = self.sessions.open(identity, self._clock(), body.timeout, source=state.address)
        encrypted = public.encrypt(session.key, _OAEP)
        self.counters.sessions_opened += 1
        reply = request.reply(SessionSetupResponse(KeyExchangeMode.CIPHER_CLIENT, encrypted))
        return replace(reply, session_id=session.session_id)


__all__ = [
    "CHALLENGE_AAD",
    "MAX_CHALLENGED_BYTES",
    "NONCE_BYTES",
    "NativeAuthentication",
    "new_nonce",
]
