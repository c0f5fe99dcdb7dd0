"""The native protocol's request handler: a decoded request in, the response out.

No sockets here.  Transports (``native_udp``, ``native_tcp``) decode a message,
pass it with the peer's ``PeerState``, and send back what ``handle`` returns.
Every operation goes through ``HandleService`` and its ``Authorizer``, exactly
as the REST API does, so both front ends answer and refuse alike.

The handler answers resolutions and site information itself and hands the rest
on: who a request acts as, challenges and sessions to
``native_authentication``; administrative operations, once authenticated, to
``native_admin_ops`` (LIST_HANDLES answers are streamed, ``Outcome.more``).
Every answer leaves stamped with its expiration time and, for a certified
request, with its credential (``native_trust``).  A recursive node refuses with
RECUR_LIMIT_EXCEEDED a request whose recursion count reached ``max_recursion``,
and sends its own requests with the count plus one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from iinode.codes import ResponseCode
from iinode.errors import (
    ConfigurationError,
    HandleError,
    HandleNotFound,
    IinodeError,
    RecursionLimitExceeded,
    StorageError,
    TransportError,
)
from iinode.identifiers import HandleName, IndexedHandle, SiteData
from iinode.node.challenges import ChallengeTable, challenge_table_for
from iinode.node.oid import is_oid_name
from iinode.node.service import HandleService
from iinode.proto import (
    DEFAULT_MESSAGE_LIFETIME,
    EmptyBody,
    KeyExchangeMode,
    Message,
    OpCode,
    OpFlag,
    ReferralResponse,
    ResolutionRequest,
    ResolutionResponse,
    SessionSetupRequest,
    SiteInfoResponse,
)
from iinode.resolution.driver import Resolved
from iinode.resolution.native_admin_ops import LIST_CHUNK_BYTES, LIST_PAGE, list_handles, write
from iinode.resolution.native_authentication import (
    CHALLENGE_AAD,
    MAX_CHALLENGED_BYTES,
    NativeAuthentication,
    new_nonce,
)
from iinode.resolution.native_sessions import (
    NativeCounters,
    OffenderTally,
    PeerState,
    Session,
    SessionTable,
    session_mac,
)
from iinode.resolution.native_trust import ServerTrust
from iinode.resolution.native_verify import RemoteSeckeyVerifier
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
#: Largest ExpirationTime (a 4-octet field).
_U32_MAX = 0xFFFF_FFFF
#: Recursion count from which a recursive node refuses to resolve further.
MAX_RECURSION = 8


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
        self._clock = clock
        if service.auth.remote_verifier is None:
            # Answers for identities held by other nodes are checked there.
            service.auth.remote_verifier = RemoteSeckeyVerifier(service)
        self.list_chunk_bytes = list_chunk_bytes
        self.max_recursion = max_recursion
        #: The server key: signs certified answers, published in the site (``native_trust``).
        self.trust = trust if trust is not None else ServerTrust(service.settings.data_dir)
        # Open sessions and challenges, by default shared by the node's processes
        # (``shared_sessions``, ``node.challenges``) unless its store is in memory.
        settings = service.settings
        shared = settings.store_url not in ("memory:", "memory://")
        if sessions is None:
            sessions = session_table_for(settings.data_dir, shared=shared)
        if challenges is None:
            challenges = challenge_table_for(settings.data_dir, shared=shared)
        #: Challenges and sessions (``native_authentication``).
        self.auth = NativeAuthentication(
            service,
            sessions=sessions,
            challenges=challenges,
            trust=self.trust,
            counters=self.counters,
            session_bound=SESSION_BOUND_OPS,
            clock=clock,
            challenge_timeout=challenge_timeout,
        )
        if not 0 < message_lifetime <= _U32_MAX:
            raise ConfigurationError("message_lifetime must be a positive number of seconds")
        #: Seconds from now each answer's ExpirationTime lies (Handle.Net: 12 hours).
        self.message_lifetime = message_lifetime
        self._wall_clock = wall_clock

    @property
    def sessions(self) -> SessionTable:
        """Open sessions, shared by the node's processes (``shared_sessions``)."""
        return self.auth.sessions

    @property
    def challenges(self) -> ChallengeTable:
        """Open challenges, shared by the node's processes (``node.challenges``)."""
        return self.auth.challenges

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
            identity, maced = self.auth.session_identity(request)
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
            original, verified = await self.auth.accept_answer(request, state)
            if original.opcode == OpCode.SESSION_SETUP:
                return Outcome(self.auth.open_session(original, verified, state))
            return await self._admin(original, verified)
        if op == OpCode.VERIFY_RESPONSE:
            return Outcome(await self.auth.verify(request, state))
        if op == OpCode.SESSION_SETUP:
            body = request.body
            assert isinstance(body, SessionSetupRequest)
            if body.mode == KeyExchangeMode.DIFFIE_HELLMAN:
                return Outcome(await self.auth.open_dh_session(request, state))
            if body.mode != KeyExchangeMode.CIPHER_CLIENT:
                raise _error(
                    ResponseCode.SESSION_NO_SUPPORT,
                    "key exchange DIFFIE_HELLMAN or CIPHER_CLIENT is supported",
                )
            if identity is not None:
                return Outcome(self.auth.open_session(request, identity, state))
            claimed = IndexedHandle(body.identity_index, HandleName.parse(body.identity_handle))
            return Outcome(await self._challenge(request, state, claimed, maced))
        if op == OpCode.SESSION_TERMINATE:
            # A Diffie-Hellman session may end before anyone authenticated in it: its
            # MAC (checked in session_identity) is what proves the sender holds the key.
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
        if is_oid_name(body.handle):
            found = await self.service.answer_oid(
                body.handle, identity=identity, types=body.types, indexes=body.indexes
            )
            reply = request.reply(ResolutionResponse(body.handle, found.values))
            return Outcome(reply, identity is None)
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

    async def _challenge(
        self,
        request: Message,
        state: PeerState,
        claimed: IndexedHandle | None,
        maced: Session | None,
    ) -> Message:
        """AUTHENTICATION_NEEDED for ``request`` (``NativeAuthentication.challenge``)."""
        return await self.auth.challenge(request, state, claimed, maced, new_nonce())

    # -- administration -----------------------------------------------------------
    async def _admin(self, request: Message, identity: IndexedHandle) -> Outcome:
        if request.opcode != OpCode.LIST_HANDLES:
            return Outcome(await write(self.service, request, identity))
        # The first page is read here, so a refusal is an ordinary error answer; the
        # other messages follow from ``Outcome.more``.
        messages = await list_handles(
            self.service, request, identity, chunk_bytes=self.list_chunk_bytes,
            page_size=LIST_PAGE, failure=self.failure,
        )  # fmt: skip
        message = await anext(messages)
        if not message.flags & OpFlag.CN:
            await messages.aclose()
            return Outcome(message)
        return Outcome(message, more=messages)


__all__ = [
    "ADMIN_OPS",
    "CHALLENGE_AAD",
    "LIST_CHUNK_BYTES",
    "LIST_PAGE",
    "MAX_CHALLENGED_BYTES",
    "MAX_RECURSION",
    "SESSION_BOUND_OPS",
    "NativeHandler",
    "Outcome",
    "Resolver",
    "new_nonce",
    "session_mac",
]
