"""The server side of trust: signed answers and Diffie-Hellman sessions.

``ServerTrust`` is what ``NativeHandler`` asks for

* ``site``: the node's HS_SITE with the current server public key (a rotated
  key shows within ``ServerKeyFile.check_interval`` seconds);
* ``finish``: the last step before an answer leaves.  When the request is
  certified (CT), the answer gets a credential: an HS_MAC with the session key
  when the request came in a Handle.Net-style session (except SESSION_SETUP,
  whose answer the client must check against the server key), else an
  HS_SIGNED with the server key (``native_signing``).  A signed answer names
  its request id, so it is never cached for replay to others;
* ``open_dh_session``: SESSION_SETUP with key exchange DIFFIE_HELLMAN (in a
  known safe-prime group, computed in a worker thread) opens a session at once,
  not yet bound to an identity (``Session.identity`` None), as a Handle.Net
  server does; the client's first administrative request in it is challenged and
  a successful answer binds the session.

The key file is read on first use, so handlers that never sign never create one.

``learn_server_key`` is the other direction: the key of another node's server
(the parent's, for the SERVICE_REFERRALs a node sends upward and the verdicts it
takes from its parent), asked from that server itself with a certified
GET_SITEINFO and taken only if the answer is signed with one of the keys its
site names.  That proves the server holds the key's private half; it does not
prove the server is the parent (a node that must not trust its network path to
the parent should have the parent's delegation hold its site instead).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from pathlib import Path

from iinode.codes import ResponseCode
from iinode.errors import HandleError, IinodeError, LocalProtocolError
from iinode.identifiers import HandleName, IndexedHandle, SiteData
from iinode.identifiers.site import with_public_key
from iinode.node.server_keys import ServerKey, ServerKeyFile
from iinode.proto import (
    KeyExchangeMode,
    Message,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    RequestDigest,
    SessionSetupRequest,
    SessionSetupResponse,
    SiteInfoResponse,
)
from iinode.resolution.native_client import NativeClient, random_request_id
from iinode.resolution.native_dh import DhPublic, server_exchange
from iinode.resolution.native_sessions import Session, SessionTable
from iinode.resolution.native_signing import (
    mac_message,
    sign_message,
    suggested_version,
    verify_signature,
)

log = logging.getLogger(__name__)

#: The oldest suggested version whose DH answer carries the encryption algorithm.
DH_MIN_VERSION = (2, 4)
#: The oldest version whose session MAC this node computes (Handle.Net's 2.5/2.6 one is flawed).
MAC_MIN_VERSION = (2, 7)
#: Diffie-Hellman set-ups computed at once per handler (each in a worker thread).
DH_THREADS = 1
#: Set-ups that may wait for a thread; more are answered SERVER_BUSY.
DH_WAITING = 32
#: Seconds ``learn_server_key`` waits for a GET_SITEINFO answer.
LEARN_TIMEOUT = 2.0


def answers_request(request: Message, response: Message) -> bool:
    """Whether ``response`` carries the digest of ``request`` as sent (with RD), in the
    response's digest algorithm (Handle.Net's ``verifyRequestDigestIfNeeded``).

    ``request`` must be the message as it went out (``NativeClient.stamp`` adds an
    ExpirationTime to the header the digest covers).
    """
    echoed = response.request_digest
    if echoed is None:
        return False
    try:
        digest = RequestDigest.of(request.signed_data(), echoed.algorithm).digest
    except LocalProtocolError:  # an algorithm this node cannot compute
        return False
    return hmac.compare_digest(digest, echoed.digest)


class ServerTrust:
    def __init__(self, data_dir: Path | None = None, keys: ServerKeyFile | None = None) -> None:
        self._data_dir = data_dir
        self._keys = keys
        self._dh_threads = asyncio.Semaphore(DH_THREADS)
        self._dh_queued = 0

    @property
    def keys(self) -> ServerKeyFile:
        if self._keys is None:
            if self._data_dir is None:
                raise HandleError.for_code(ResponseCode.ERROR, "this server has no key")
            self._keys = ServerKeyFile(self._data_dir)
        return self._keys

    def key(self) -> ServerKey:
        return self.keys.current()

    def site(self, site: SiteData) -> SiteData:
        """``site`` with the current public key in its server records."""
        public = self.key().public_bytes
        if all(server.public_key == public for server in site.servers):
            return site
        return with_public_key(site, public)

    # -- answers ----------------------------------------------------------------------
    def finish(
        self,
        request: Message,
        response: Message,
        session: Session | None,
        sessions: SessionTable | None = None,
    ) -> Message:
        """``response`` with the credential a certified ``request`` asks for (``sessions``:
        the table that numbers a session's MAC'd answers)."""
        if not request.flags & OpFlag.CT or not response.is_response:
            return response
        if (
            session is not None
            and session.session_id == response.session_id
            and session.handle_net
            and request.opcode != OpCode.SESSION_SETUP
        ):
            counter = sessions.next_counter(session) if sessions else session.next_counter()
            return mac_message(response, session.key, counter)
        return sign_message(response, self.key().private)

    async def finish_stream(
        self,
        request: Message,
        messages: AsyncGenerator[Message, None],
        session: Session | None,
        sessions: SessionTable | None = None,
    ) -> AsyncGenerator[Message, None]:
        """The continued messages of a streamed answer, each finished like the first."""
        try:
            async for message in messages:
                yield self.finish(request, message, session, sessions)
        finally:
            await messages.aclose()

    # -- sessions ---------------------------------------------------------------------
    async def open_dh_session(
        self, request: Message, sessions: SessionTable, clock: Callable[[], float]
    ) -> Message:
        """Answer a SESSION_SETUP with key exchange DIFFIE_HELLMAN: a new, unbound session.

        The client's key is read and its group checked on the event loop; the two
        exponentiations run in a worker thread, ``DH_THREADS`` at a time, with at most
        ``DH_WAITING`` set-ups waiting (more: SERVER_BUSY), so that set-ups never hold
        up resolutions.  ``clock`` gives the time the session opens.
        """
        body = request.body
        assert isinstance(body, SessionSetupRequest)
        if suggested_version(request) < DH_MIN_VERSION or request.version < MAC_MIN_VERSION:
            raise HandleError.for_code(
                ResponseCode.SESSION_NO_SUPPORT,
                "Diffie-Hellman sessions need protocol 2.7 or later",
            )
        client = DhPublic.from_wire(body.public_key)
        if self._dh_queued >= DH_THREADS + DH_WAITING:
            raise HandleError.for_code(
                ResponseCode.SERVER_BUSY, "too many Diffie-Hellman set-ups at once"
            )
        self._dh_queued += 1
        try:
            async with self._dh_threads:
                data, key = await asyncio.to_thread(server_exchange, client)
        finally:
            self._dh_queued -= 1
        claimed = None
        if body.identity_handle:
            claimed = IndexedHandle(body.identity_index, HandleName.parse(body.identity_handle))
        session = sessions.open(
            None, clock(), body.timeout, key=key, claimed=claimed, handle_net=True
        )
        reply = request.reply(SessionSetupResponse(KeyExchangeMode.DIFFIE_HELLMAN, data))
        return replace(reply, session_id=session.session_id)


async def learn_server_key(address: tuple[str, int], client: NativeClient | None = None) -> bytes:
    """The public key (HS_PUBKEY encoding) of the native server at ``address``.

    Asks GET_SITEINFO over TCP, certified and with RD, and returns the key among
    the site's server records that the answer's signature verifies with; ``b""``
    when the server does not answer, answers without this request's digest, names
    no key, or signed with none of them.
    """
    own = client is None
    client = client or NativeClient(timeout=LEARN_TIMEOUT, retries=0)
    request = client.stamp(
        Message(
            OpCode.GET_SITEINFO, OptionalHandleBody(), request_id=random_request_id(),
            flags=OpFlag.CT | OpFlag.RD,
        )
    )  # fmt: skip
    try:
        response = await client.tcp(address, request)
    except (IinodeError, OSError) as exc:
        log.info("no site information from %s:%s: %s", *address, exc)
        return b""
    finally:
        if own:
            await client.aclose()
    body = response.body
    if not isinstance(body, SiteInfoResponse):
        log.info("%s:%s answered GET_SITEINFO with %s", *address, response.response_code.to_text())
        return b""
    if not answers_request(request, response):
        log.warning("the site information from %s:%s answers another request", *address)
        return b""
    for key in dict.fromkeys(s.public_key for s in body.site.servers if s.public_key):
        if verify_signature(response, key):
            return key
    log.warning("the site information from %s:%s is not signed by a key it names", *address)
    return b""


__all__ = ["DH_THREADS", "DH_WAITING", "ServerTrust", "answers_request", "learn_server_key"]
