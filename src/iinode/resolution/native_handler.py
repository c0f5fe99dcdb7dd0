"""The native protocol's request handler: a decoded request in, the response out.

No sockets here.  Transports (``native_udp``, ``native_tcp``) decode a message,
pass it with the peer's ``PeerState``, and send back what ``handle`` returns.
Every operation goes through ``HandleService`` and its ``Authorizer``, exactly
as the REST API does, so both front ends answer and refuse alike.

Authentication (RFC 3652 s3.5), as the Handle.Net 9 server does it: an
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

LIST_HANDLES answers are streamed: one message per ``list_chunk_bytes`` of
handles, all but the last with the CN flag (RFC 3652 s3.8), read from the store
a page at a time (``Outcome.more``).  A recursive node refuses with
RECUR_LIMIT_EXCEEDED a request whose recursion count reached
``max_recursion``, and sends its own requests with the count plus one.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iinode.codes import ResponseCode
from iinode.errors import (
    AuthenticationFailed,
    ConfigurationError,
    HandleError,
    HandleNotFound,
    IinodeError,
    InvalidHandle,
    RecursionLimitExceeded,
    StorageError,
    TransportError,
)
from iinode.identifiers import HandleName, IndexedHandle, Prefix, SiteData
from iinode.node.auth import decode_public_key
from iinode.node.challenges import ChallengeTable, challenge_table_for
from iinode.node.service import HandleService
from iinode.proto import (
    DEFAULT_MESSAGE_LIFETIME,
    ChallengeAnswer,
    ChallengeBody,
    CredentialType,
    DigestAlgorithm,
    EmptyBody,
    HandleBody,
    KeyExchangeMode,
    ListHandlesResponse,
    Message,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    ReferralResponse,
    RemoveValueRequest,
    RequestDigest,
    ResolutionRequest,
    ResolutionResponse,
    SessionSetupRequest,
    SessionSetupResponse,
    SiteInfoResponse,
    ValuesRequest,
    VerifyRequest,
    VerifyResponse,
    digest_algorithm_for,
)
from iinode.resolution.driver import Resolved
from iinode.resolution.native_sessions import (
    OPENING_SOURCE,
    NativeCounters,
    OffenderTally,
    PeerState,
    PendingChallenge,
    Session,
    SessionTable,
    session_mac,
)
from iinode.resolution.native_signing import verify_mac
from iinode.resolution.native_trust import ServerTrust
from iinode.resolution.native_verify import NeighbourNodes, RemoteSeckeyVerifier
from iinode.resolution.shared_sessions import session_table_for

ADMIN_OPS = frozenset(
    {
        OpCode.CREATE_HANDLE,
        OpCode.DELETE_HANDLE,
        OpCode.ADD_VALUE,
        OpCode.REMOVE_VALUE,
        OpCode.MODIFY_VALUE,
        OpCode.LIST_HANDLES,
    }
)
_AUTH_CODES = frozenset(
    {
        ResponseCode.AUTHENTICATION_FAILED,
        ResponseCode.INVALID_CREDENTIAL,
        ResponseCode.AUTHENTICATION_TIMEOUT,
        ResponseCode.AUTHENTICATION_ERROR,
        ResponseCode.SESSION_TIMEOUT,
        ResponseCode.NOT_AUTHORIZED,
    }
)
#: Operations that act as a session's identity: they need its MAC when they name it.
SESSION_BOUND_OPS = ADMIN_OPS | {OpCode.SESSION_TERMINATE}
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
#: Handles read from the store per page while listing.
LIST_PAGE = 10_000
#: Octets of handle names per LIST_HANDLES message (each name costs 4 + its length).
LIST_CHUNK_BYTES = 256 * 1024
#: Largest ExpirationTime (a 4-octet field).
_U32_MAX = 0xFFFF_FFFF
#: Recursion count from which a recursive node refuses to resolve further.
MAX_RECURSION = 8
#: Largest request held while its challenge is open (Handle.Net's
#: ``Common.MAX_MESSAGE_LENGTH``): larger unauthenticated requests are refused.
MAX_CHALLENGED_BYTES = 256 * 1024
#: What sealed challenge payloads are bound to (``SecretBox`` associated data).
CHALLENGE_AAD = b"iinode pending challenge v1"


class Resolver(Protocol):
    """What a recursive node resolves through (``NativeResolver`` or ``HttpResolver``)."""

    async def resolve(
        self,
        handle: HandleName,
        *,
        types: Sequence[str] = (),
        indexes: Sequence[int] = (),
        recursion_count: int = 0,
    ) -> Resolved: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """The response to send (``None``: send nothing) and whether it may be replayed
    from the fast path's cache to any anonymous client asking the same thing.

    ``more`` continues a streamed answer: the messages to send after ``message``
    (which then has the CN flag), produced lazily; it never raises (a failure
    becomes a last error message).  Transports that cannot stream close it.
    """

    message: Message | None
    cacheable: bool = False
    more: AsyncGenerator[Message, None] | None = None


#: Octets of a challenge nonce (Handle.Net ``Common.CHALLENGE_NONCE_SIZE``).
NONCE_BYTES = 16


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def _error(code: ResponseCode, message: str) -> HandleError:
    return HandleError.for_code(code, message)


class NativeHandler:
    def __init__(
        self,
        service: HandleService,
        site: SiteData,
        *,
        resolver: Resolver | None = None,
        counters: NativeCounters | None = None,
        offenders: OffenderTally | None = None,
        sessions: SessionTable | None = None,
        clock: Callable[[], float] = time.monotonic,
        challenge_timeout: float = 60.0,
        list_chunk_bytes: int = LIST_CHUNK_BYTES,
        max_recursion: int = MAX_RECURSION,
        trust: ServerTrust | None = None,
        message_lifetime: int = DEFAULT_MESSAGE_LIFETIME,
        wall_clock: Callable[[], float] = time.time,
        challenges: ChallengeTable | None = None,
    ) -> None:
        self.service = service
        self.site = site
        self.resolver = resolver
        self.counters = counters if counters is not None else NativeCounters()
        #: Offences per source address (what the transports count, by peer).
        self.offenders = offenders if offenders is not None else OffenderTally()
        #: Open sessions, shared by the node's processes (``shared_sessions``).
        self.sessions = sessions if sessions is not None else self._session_table(service)
        self._clock = clock
        self.challenge_timeout = challenge_timeout
        #: Open challenges, shared by the node's processes (``node.challenges``).
        self.challenges = challenges if challenges is not None else self._challenge_table()
        if service.auth.remote_verifier is None:
            # Answers for identities held by other nodes are checked there.
            service.auth.remote_verifier = RemoteSeckeyVerifier(service)
        self.list_chunk_bytes = list_chunk_bytes
        self.max_recursion = max_recursion
        #: The server key: signs certified answers, published in the site (``native_trust``).
        self.trust = trust if trust is not None else ServerTrust(service.settings.data_dir)
        #: The parent's and the children's server addresses (VERIFY_RESPONSE limits).
        self.neighbours = NeighbourNodes(service)
        if not 0 < message_lifetime <= _U32_MAX:
            raise ConfigurationError("message_lifetime must be a positive number of seconds")
        #: Seconds from now each answer's ExpirationTime lies (Handle.Net: 12 hours).
        self.message_lifetime = message_lifetime
        self._wall_clock = wall_clock

    def expiration(self) -> int:
        """ExpirationTime for a message sent now: seconds since the epoch + ``message_lifetime``."""
        return min(int(self._wall_clock()) + self.message_lifetime, _U32_MAX)

    def stamp(self, message: Message) -> Message:
        """``message`` with its ExpirationTime set (a Handle.Net client refuses an expired
        one) and, as the Handle.Net server does, the site's serial number.  Anything that
        signs an answer must sign the stamped message."""
        if message.expiration:
            return message
        serial = message.site_serial or self.site.serial
        return replace(message, expiration=self.expiration(), site_serial=serial)

    def _stamped(self, outcome: Outcome) -> Outcome:
        if outcome.message is None:
            return outcome
        more = outcome.more
        if more is not None:
            more = self._stamp_stream(more)
        return replace(outcome, message=self.stamp(outcome.message), more=more)

    async def _stamp_stream(
        self, messages: AsyncGenerator[Message, None]
    ) -> AsyncGenerator[Message, None]:
        try:
            async for message in messages:
                yield self.stamp(message)
        finally:
            await messages.aclose()

    async def handle(self, request: Message, state: PeerState) -> Outcome:
        """Answer one decoded message.  Never raises for anything a peer sends."""
        counters = self.counters
        counters.requests += 1
        if request.is_response:
            counters.dropped += 1
            self.offenders.note(state.address, "dropped")
            return Outcome(None)
        maced: Session | None = None
        try:
            identity, maced = self._session_identity(request)
            outcome = await self._dispatch(request, state, identity, maced)
        except Exception as exc:
            outcome = Outcome(self.failure(request, exc, state.address))
        return self._certified(request, self._stamped(outcome), maced)

    def _certified(self, request: Message, outcome: Outcome, session: Session | None) -> Outcome:
        """A certified request's answer with its credential (``native_trust``); the
        last change to an answer.  A signed answer names its request: never cached.

        ``session`` is the session whose MAC the request carried (verified); only
        then is the answer MAC'd with its key, else it is signed with the server key
        (naming someone's session id must not get answers under their key)."""
        if outcome.message is None or not request.flags & OpFlag.CT:
            return outcome
        trust = self.trust
        more = outcome.more
        if more is not None:
            more = trust.finish_stream(request, more, session, self.sessions)
        message = trust.finish(request, outcome.message, session, self.sessions)
        return Outcome(message, False, more)

    def failure(self, request: Message, exc: Exception, address: str | None = None) -> Message:
        """The error answer to ``request`` for ``exc`` (counted, by ``address`` if known)."""
        counters = self.counters
        if isinstance(exc, HandleError):
            if exc.code in _AUTH_CODES:
                counters.auth_failures += 1
                self.offenders.note(address, "auth_failures")
            elif exc.code == ResponseCode.PROTOCOL_ERROR:
                counters.protocol_errors += 1
                self.offenders.note(address, "protocol_errors")
            return request.error_reply(exc.code, exc.message)
        if isinstance(exc, StorageError):
            counters.internal_errors += 1
            return request.error_reply(ResponseCode.ERROR, f"storage failed: {exc}")
        if isinstance(exc, (TransportError, IinodeError)):
            return request.error_reply(ResponseCode.SERVER_NOT_RESP, str(exc))
        counters.internal_errors += 1
        return request.error_reply(ResponseCode.ERROR, "internal error")

    def _challenge_table(self) -> ChallengeTable:
        settings = self.service.settings
        shared = settings.store_url not in ("memory:", "memory://")
        return challenge_table_for(settings.data_dir, shared=shared)

    # -- sessions -----------------------------------------------------------------
    def _session_identity(self, request: Message) -> tuple[IndexedHandle | None, Session | None]:
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
            if request.opcode in SESSION_BOUND_OPS:
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

    # -- dispatch -----------------------------------------------------------------
    async def _dispatch(
        self,
        request: Message,
        state: PeerState,
        identity: IndexedHandle | None,
        maced: Session | None = None,
    ) -> Outcome:
        op = request.opcode
        if op == OpCode.RESOLUTION:
            return await self._resolve(request, identity)
        if op == OpCode.GET_SITEINFO:
            return Outcome(request.reply(SiteInfoResponse(self.trust.site(self.site))))
        if op in ADMIN_OPS:
            if identity is None:
                return Outcome(await self._challenge(request, state, None, maced))
            return await self._admin(request, identity)
        if op == OpCode.CHALLENGE_RESPONSE:
            return await self._challenge_answer(request, state)
        if op == OpCode.VERIFY_RESPONSE:
            return await self._verify(request, state)
        if op == OpCode.SESSION_SETUP:
            body = request.body
            assert isinstance(body, SessionSetupRequest)
            if body.mode == KeyExchangeMode.DIFFIE_HELLMAN:
                return Outcome(await self._open_dh_session(request, state))
            if body.mode != KeyExchangeMode.CIPHER_CLIENT:
                raise _error(
                    ResponseCode.SESSION_NO_SUPPORT,
                    "key exchange DIFFIE_HELLMAN or CIPHER_CLIENT is supported",
                )
            if identity is not None:
                return Outcome(self._open_session(request, identity, state))
            claimed = IndexedHandle(body.identity_index, HandleName.parse(body.identity_handle))
            return Outcome(await self._challenge(request, state, claimed, maced))
        if op == OpCode.SESSION_TERMINATE:
            # A Diffie-Hellman session may end before anyone authenticated in it: its
            # MAC (checked in _session_identity) is what proves the sender holds the key.
            if maced is None:
                raise _error(
                    ResponseCode.INVALID_CREDENTIAL,
                    "SESSION_TERMINATE must name a session and carry its MAC",
                )
            self.sessions.close(request.session_id)
            return Outcome(request.reply(EmptyBody()))
        raise _error(ResponseCode.PROTOCOL_ERROR, f"operation {op.to_text()} is not supported")

    async def _resolve(self, request: Message, identity: IndexedHandle | None) -> Outcome:
        body = request.body
        assert isinstance(body, ResolutionRequest)
        name = HandleName.parse(body.handle)
        try:
            answer = await self.service.answer(
                name, identity=identity, types=body.types, indexes=body.indexes
            )
        except HandleNotFound:
            if self.service.owned is None and self.resolver is not None:
                return await self._recurse(request, name, body)
            raise
        if answer.is_referral:
            recursive = self.service.owned is None or bool(request.flags & OpFlag.REC)
            if self.resolver is not None and recursive and not request.flags & OpFlag.DNRF:
                return await self._recurse(request, name, body)
            delegated = answer.delegated_prefix
            handle = str(delegated.na_handle) if delegated is not None else ""
            reply = request.reply(ReferralResponse(handle, answer.values), answer.code)
            return Outcome(reply, identity is None)
        return Outcome(
            request.reply(ResolutionResponse(str(name), answer.values)), identity is None
        )

    async def _recurse(
        self, request: Message, name: HandleName, body: ResolutionRequest
    ) -> Outcome:
        assert self.resolver is not None
        if request.recursion_count >= self.max_recursion:
            raise RecursionLimitExceeded(
                f"recursion count {request.recursion_count} reached the limit of "
                f"{self.max_recursion}",
                handle=str(name),
            )
        resolved = await self.resolver.resolve(
            name, types=body.types, indexes=body.indexes,
            recursion_count=request.recursion_count + 1,
        )  # fmt: skip
        values = tuple(v for v in resolved.values if v.publicly_readable)
        return Outcome(request.reply(ResolutionResponse(str(name), values)))

    # -- authentication -----------------------------------------------------------
    async def _challenge(
        self,
        request: Message,
        state: PeerState,
        claimed: IndexedHandle | None,
        maced: Session | None = None,
    ) -> Message:
        """AUTHENTICATION_NEEDED for ``request``, its state stored in the shared table.

        Like Handle.Net's ``ChallengeResponse``: the request digest is always there,
        in the algorithm of the answer's version; the session id names the challenge:
        the request's own session id when it carried that session's MAC (``maced``),
        else a fresh one (a session id travels in clear: naming it must not replace
        its owner's open challenge).  The request is stored sealed with the node key
        (it may carry an HS_SECKEY); one above ``MAX_CHALLENGED_BYTES`` is refused.
        """
        nonce = new_nonce()
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

    async def _challenge_answer(self, request: Message, state: PeerState) -> Outcome:
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
        # Answered as the original request, under the answer's request id (Handle.Net).
        original = replace(pending.request, request_id=request.request_id)
        self._bind_session(original, verified)
        if original.opcode == OpCode.SESSION_SETUP:
            return Outcome(self._open_session(original, verified, state))
        return await self._admin(original, verified)

    async def _verify(self, request: Message, state: PeerState) -> Outcome:
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
            return Outcome(request.reply(referral, elsewhere.code))
        # A neighbour node (parent, child) asks for its own clients, whom it limits itself.
        neighbour = await self.neighbours.contains(state.address)
        valid = await self.service.auth.verify_request(
            identity, body.nonce, body.request_digest, body.signed_response,
            old_format=request.version < (2, 1), peer=state.address, neighbour=neighbour,
        )  # fmt: skip
        return Outcome(request.reply(VerifyResponse(valid)))

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

    @staticmethod
    def _session_table(service: HandleService) -> SessionTable:
        shared = service.settings.store_url not in ("memory:", "memory://")
        return session_table_for(service.settings.data_dir, shared=shared)

    async def _open_dh_session(self, request: Message, state: PeerState) -> Message:
        token = OPENING_SOURCE.set(state.address)  # capped per source while unbound
        try:
            reply = await self.trust.open_dh_session(request, self.sessions, self._clock)
        finally:
            OPENING_SOURCE.reset(token)
        self.counters.sessions_opened += 1
        return reply

    def _open_session(self, request: Message, identity: IndexedHandle, state: PeerState) -> Message:
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

    # -- administration -----------------------------------------------------------
    async def _admin(self, request: Message, identity: IndexedHandle) -> Outcome:
        if request.opcode == OpCode.LIST_HANDLES:
            return await self._list(request, identity)
        return Outcome(await self._write(request, identity))

    async def _write(self, request: Message, identity: IndexedHandle) -> Message:
        service = self.service
        body = request.body
        op = request.opcode
        overwrite = bool(request.flags & OpFlag.OW)
        if op == OpCode.CREATE_HANDLE:
            assert isinstance(body, ValuesRequest)
            name = HandleName.parse(body.handle)
            if request.flags & OpFlag.MINT:
                name = service.mint(body.handle)
            await service.create(name, body.values, identity, overwrite=overwrite)
            minted = str(name) if request.flags & OpFlag.MINT else None
            return request.reply(OptionalHandleBody(minted))
        if op in (OpCode.ADD_VALUE, OpCode.MODIFY_VALUE):
            assert isinstance(body, ValuesRequest)
            name = HandleName.parse(body.handle)
            # ADD_VALUE (without OW): all indexes new; MODIFY_VALUE: all present.  The
            # service checks this against the record it replaces, atomically with the write.
            existing = None if overwrite and op == OpCode.ADD_VALUE else op == OpCode.MODIFY_VALUE
            await service.put_values(name, body.values, identity, existing=existing)
            return request.reply(EmptyBody())
        if op == OpCode.REMOVE_VALUE:
            assert isinstance(body, RemoveValueRequest)
            name = HandleName.parse(body.handle)
            await service.remove_values(name, body.indexes, identity)
            return request.reply(EmptyBody())
        assert op == OpCode.DELETE_HANDLE
        assert isinstance(body, HandleBody)
        await service.delete(HandleName.parse(body.handle), identity)
        return request.reply(EmptyBody())

    async def _list(self, request: Message, identity: IndexedHandle) -> Outcome:
        """The first message of the list; the others follow from ``Outcome.more``."""
        body = request.body
        assert isinstance(body, HandleBody)
        na = HandleName.parse(body.handle)
        if not na.is_na_handle:
            raise InvalidHandle(f"list handles names a prefix record 0.NA/..., not {na}")
        prefix = na.authority
        # The first page is read here, so a refusal is an ordinary error answer.
        first = await self.service.list_after(prefix, identity, None, limit=LIST_PAGE)
        messages = self._list_messages(request, self._list_chunks(prefix, identity, first))
        message = await anext(messages)
        if not message.flags & OpFlag.CN:
            await messages.aclose()
            return Outcome(message)
        return Outcome(message, more=messages)

    async def _list_chunks(
        self, prefix: Prefix, identity: IndexedHandle, page: list[str]
    ) -> AsyncIterator[tuple[str, ...]]:
        """The handles under ``prefix`` in chunks of at most ``list_chunk_bytes``.

        Pages by keyset (each page starts after the last handle of the one before).
        """
        budget = self.list_chunk_bytes
        chunk: list[str] = []
        size = 0
        while True:
            for handle in page:
                cost = 4 + len(handle.encode())
                if chunk and size + cost > budget:
                    yield tuple(chunk)
                    chunk, size = [], 0
                chunk.append(handle)
                size += cost
            if len(page) < LIST_PAGE:
                break
            page = await self.service.list_after(prefix, identity, page[-1], limit=LIST_PAGE)
        yield tuple(chunk)

    async def _list_messages(
        self, request: Message, chunks: AsyncIterator[tuple[str, ...]]
    ) -> AsyncGenerator[Message, None]:
        """One message per chunk, CN on all but the last; a failure ends the list."""
        held: tuple[str, ...] | None = None
        try:
            async for chunk in chunks:
                if held is not None:
                    yield request.reply(ListHandlesResponse(held), flags=OpFlag.CN)
                held = chunk
        except Exception as exc:
            yield self.failure(request, exc)
            return
        yield request.reply(ListHandlesResponse(held or ()))


__all__ = [
    "ADMIN_OPS",
    "SESSION_BOUND_OPS",
    "NativeHandler",
    "Outcome",
    "Resolver",
    "session_mac",
]
