"""Administrative client of the native protocol: authenticated writes over TCP.

``NativeAdminClient`` keeps one connection open (every request has KA set) and
answers the server's challenges as a Handle.Net 9 client does, so it works
against a stock Handle.Net server as against iinode: it checks that the
challenge's request digest is the digest of the request it sent (refusing to
sign anything else), answers with CHALLENGE_RESPONSE naming the challenge's
session id, in the challenge's version, and, if the server closed the
connection after the challenge, on a new connection (``answer_on_new_connection``
always does so, as the reference client does).  With an HS_SECKEY secret
(``SecretKeyAuth``) the answer is of the type the version implies (PBKDF2-HMAC-SHA1
from 2.7, SHA-1 from 2.1, MD5 before: ``node.seckey_answers``) unless one is
chosen; ``hashed=True`` uses the lower-case hex SHA-1 of the secret, as
Handle.Net's "hashed password" mode.  With an HS_PUBKEY private key
(``PublicKeyAuth``) the answer is a SHA-256 signature.

``open_session`` sets up a session as a stock Handle.Net client does by default:
a certified SESSION_SETUP with key exchange DIFFIE_HELLMAN (``native_dh``; the
answer's signature is checked when the server's key is known), which a
Handle.Net server and iinode open at once, unbound; the first administrative
request in it is challenged under the session's id and the answer binds the
session to the identity.  Every request in a session carries Handle.Net's HS_MAC
(``native_signing.mac_message``: HMAC-SHA256 over versions, session id, request
id and session counter, then header and body; counters from 1), in the version
the server answered the set-up in.  Key exchange CIPHER_CLIENT (a fresh RSA key
receives the session key, RSA-OAEP) is iinode's own: the Handle.Net 9 server
refuses it for every client ("Error performing client cipher key exchange":
its ``Util.encrypt`` asks the JCE for the transformation "RSA/EBC/PKCS1", which
does not exist), so it only works against iinode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import TracebackType

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iinode.codes import ResponseCode
from iinode.errors import HandleError, TransportError
from iinode.identifiers import HandleName, HandleValue, IndexedHandle
from iinode.node.auth import PUBKEY_AUTH, SECKEY_AUTH
from iinode.node.public_keys import PrivateKey, encode_public_key, pubkey_answer
from iinode.node.seckey_answers import answer_type_for, hashed_secret, seckey_answer
from iinode.proto import (
    CLIENT_VERSION,
    DEFAULT_MESSAGE_LIFETIME,
    Body,
    ChallengeAnswer,
    ChallengeBody,
    DigestAlgorithm,
    HandleBody,
    KeyExchangeMode,
    ListHandlesResponse,
    Message,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    RemoveValueRequest,
    RequestDigest,
    SessionSetupRequest,
    SessionSetupResponse,
    TcpFramer,
    ValuesRequest,
)
from iinode.resolution.native_client import next_request_id, read_response
from iinode.resolution.native_dh import DhKeyPair, client_finish
from iinode.resolution.native_signing import mac_message, verify_signature

_NO_FLAGS = OpFlag(0)
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
#: The session lifetime a stock client asks for (``SessionSetupInfo.timeout``: 24 hours).
DEFAULT_SESSION_LIFETIME = 86_400


@dataclass(frozen=True, slots=True)
class SecretKeyAuth:
    """An HS_SECKEY identity and its secret.

    ``answer_type``: the digest type of every answer (``None``: the one the
    challenge's version implies, as Handle.Net clients choose).  ``hashed``: use
    the hex SHA-1 of ``secret`` as the key (Handle.Net's "hashed password").
    """

    identity: IndexedHandle
    secret: str | bytes
    answer_type: DigestAlgorithm | None = None
    hashed: bool = False

    @property
    def key(self) -> bytes:
        raw = self.secret.encode("utf-8") if isinstance(self.secret, str) else self.secret
        return hashed_secret(raw) if self.hashed else raw


@dataclass(frozen=True, slots=True)
class PublicKeyAuth:
    identity: IndexedHandle
    key: PrivateKey


Authentication = SecretKeyAuth | PublicKeyAuth


def _expiration() -> int:
    """The expiration time every request carries, as the reference client sets it."""
    return int(time.time()) + DEFAULT_MESSAGE_LIFETIME


class NativeAdminClient:
    def __init__(
        self,
        host: str,
        port: int,
        auth: Authentication,
        *,
        timeout: float = 10.0,
        version: tuple[int, int] = CLIENT_VERSION,
        answer_on_new_connection: bool = False,
        server_key: bytes = b"",
    ) -> None:
        self.address = (host, port)
        self.auth = auth
        self.timeout = timeout
        #: The protocol version of our requests (a Handle.Net 9 client sends 2.10).
        self.version = version
        self.answer_on_new_connection = answer_on_new_connection
        #: The server's public key (HS_PUBKEY encoding, as its HS_SITE has it): when given,
        #: a Diffie-Hellman set-up answer must be signed with it.
        self.server_key = server_key
        self.session_id = 0
        self._session_key = b""
        self._session_version = version
        self._session_counter = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = TcpFramer()

    async def __aenter__(self) -> NativeAdminClient:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(*self.address), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"cannot connect to {self.address}: {exc}") from exc
        self._framer = TcpFramer()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- operations -----------------------------------------------------------------
    async def create(
        self, handle: HandleName, values: Sequence[HandleValue], *, overwrite: bool = False
    ) -> None:
        flags = OpFlag.OW if overwrite else OpFlag(0)
        await self.call(OpCode.CREATE_HANDLE, ValuesRequest(str(handle), tuple(values)), flags)

    async def add_values(
        self, handle: HandleName, values: Sequence[HandleValue], *, overwrite: bool = False
    ) -> None:
        flags = OpFlag.OW if overwrite else OpFlag(0)
        await self.call(OpCode.ADD_VALUE, ValuesRequest(str(handle), tuple(values)), flags)

    async def modify_values(self, handle: HandleName, values: Sequence[HandleValue]) -> None:
        await self.call(OpCode.MODIFY_VALUE, ValuesRequest(str(handle), tuple(values)))

    async def remove_values(self, handle: HandleName, indexes: Sequence[int]) -> None:
        await self.call(OpCode.REMOVE_VALUE, RemoveValueRequest(str(handle), tuple(indexes)))

    async def delete(self, handle: HandleName) -> None:
        await self.call(OpCode.DELETE_HANDLE, HandleBody(str(handle)))

    async def list_handles(self, prefix_record: HandleName) -> tuple[str, ...]:
        response = await self.call(OpCode.LIST_HANDLES, HandleBody(str(prefix_record)))
        assert isinstance(response.body, ListHandlesResponse)
        return response.body.handles

    async def open_session(
        self,
        lifetime: int = DEFAULT_SESSION_LIFETIME,
        *,
        exchange: KeyExchangeMode = KeyExchangeMode.DIFFIE_HELLMAN,
    ) -> int:
        """Set up a session (Diffie-Hellman, as stock clients; or iinode's CIPHER_CLIENT);
        later requests are authenticated by its MAC.  Returns the session id."""
        identity = self.auth.identity
        handle, index = str(identity.handle), identity.index
        if exchange == KeyExchangeMode.DIFFIE_HELLMAN:
            pair = DhKeyPair.generate()
            body = SessionSetupRequest(exchange, lifetime, handle, index, pair.public.to_wire())
            # Certified, as the reference client asks: the answer is signed by the server.
            response = await self.call(OpCode.SESSION_SETUP, body, OpFlag.CT, session=False)
            assert isinstance(response.body, SessionSetupResponse)
            if self.server_key and not verify_signature(response, self.server_key):
                raise HandleError.for_code(
                    ResponseCode.SESSION_FAILED,
                    "the session set-up answer is not signed by the server's key",
                )
            key = client_finish(pair, response.body.data)
        elif exchange == KeyExchangeMode.CIPHER_CLIENT:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = encode_public_key(private.public_key())
            body = SessionSetupRequest(exchange, lifetime, handle, index, public)
            response = await self.call(OpCode.SESSION_SETUP, body, session=False)
            assert isinstance(response.body, SessionSetupResponse)
            key = private.decrypt(response.body.data, _OAEP)
        else:
            raise ValueError(f"key exchange {exchange.to_text()} is not supported by this client")
        self._session_key = key
        self._session_version = response.version
        self._session_counter = 0
        self.session_id = response.session_id
        return self.session_id

    async def close_session(self) -> None:
        if self.session_id:
            try:
                await self.call(OpCode.SESSION_TERMINATE, OptionalHandleBody(), session=True)
            finally:
                self.session_id, self._session_key = 0, b""

    # -- the exchange ---------------------------------------------------------------
    async def call(
        self, opcode: OpCode, body: Body, flags: OpFlag = _NO_FLAGS, *, session: bool = True
    ) -> Message:
        """Send a request, answer challenges, return the success response or raise."""
        request = Message(
            opcode, body, flags=flags | OpFlag.KA, request_id=next_request_id(),
            version=self.version, expiration=_expiration(),
        )  # fmt: skip
        if session and self.session_id:
            request = self._sign(request)
        response = await self._exchange(request)
        # Handle.Net clients answer at most twice (a server may challenge again to
        # lower the version for a third server that verifies the answer).
        for _ in range(2):
            if response.response_code != ResponseCode.AUTHENTICATION_NEEDED:
                break
            response = await self._answer(request, response)
        if response.response_code != ResponseCode.SUCCESS:
            message = getattr(response.body, "message", "") or response.response_code.to_text()
            raise HandleError.for_code(response.response_code, message)
        return response

    async def _answer(self, request: Message, challenge: Message) -> Message:
        """Send CHALLENGE_RESPONSE to ``challenge``; the response to it (the request's)."""
        body = challenge.body
        assert isinstance(body, ChallengeBody)
        digest = self._challenge_digest(request, challenge)
        version = min(challenge.version, self.version)
        answer = Message(
            OpCode.CHALLENGE_RESPONSE, self._signed(body.nonce, digest, challenge),
            flags=OpFlag.KA, request_id=next_request_id(), session_id=challenge.session_id,
            version=version, expiration=_expiration(),
        )  # fmt: skip
        if self.answer_on_new_connection:
            await self.close()
        # A server that closed the connection after its challenge (the reference server
        # does) gets the answer on a new one: the challenge stays open (``_exchange``).
        return await self._exchange(answer)

    @staticmethod
    def _challenge_digest(request: Message, challenge: Message) -> bytes:
        """The challenge's request digest, checked against our own request."""
        body = challenge.body
        assert isinstance(body, ChallengeBody)
        if challenge.request_digest is not None:
            algorithm, digest = challenge.request_digest.algorithm, challenge.request_digest.digest
        elif body.old_digest:
            algorithm, digest = DigestAlgorithm.MD5_OLD_FORMAT, body.old_digest
        else:
            raise HandleError.for_code(
                ResponseCode.AUTHENTICATION_ERROR, "the challenge carries no request digest"
            )
        if RequestDigest.of(request.signed_data(), algorithm).digest != digest:
            raise HandleError.for_code(
                ResponseCode.AUTHENTICATION_ERROR, "asked to sign a request we did not send"
            )
        return digest

    def _signed(self, nonce: bytes, digest: bytes, challenge: Message) -> ChallengeAnswer:
        auth = self.auth
        handle, index = str(auth.identity.handle), auth.identity.index
        if isinstance(auth, PublicKeyAuth):
            return ChallengeAnswer(
                PUBKEY_AUTH, handle, index, pubkey_answer(auth.key, nonce, digest)
            )
        # The type by the lower of the challenge's version and the one it suggests.
        kind = auth.answer_type
        if kind is None:
            kind = answer_type_for(min(challenge.version, challenge.suggests))
        return ChallengeAnswer(
            SECKEY_AUTH, handle, index, seckey_answer(auth.key, nonce, digest, kind)
        )

    def _sign(self, request: Message) -> Message:
        """``request`` in the session: its id, its version, the next counter's HS_MAC
        (``AbstractRequest.signMessageForSession``)."""
        request = replace(request, session_id=self.session_id, version=self._session_version)
        self._session_counter += 1
        return mac_message(request, self._session_key, self._session_counter)

    async def _exchange(self, request: Message) -> Message:
        """Send ``request`` on the open connection (or a new one) and read its answer.

        A Handle.Net server closes the connection after each answer: when the kept
        connection turns out closed before answering, the request goes once more on
        a new connection (it was never read; a timeout is not retried).
        """
        reader = self._reader
        reused = self._writer is not None and reader is not None and not reader.at_eof()
        if not reused:
            await self.close()
            await self.connect()
        try:
            return await self._send(request)
        except _ConnectionClosed:
            if not reused:
                raise
        await self.connect()
        return await self._send(request)

    async def _send(self, request: Message) -> Message:
        assert self._writer is not None
        assert self._reader is not None
        try:
            self._writer.write(request.to_wire())
            await self._writer.drain()
            return await asyncio.wait_for(
                read_response(self._reader, self._framer, request.request_id), self.timeout
            )
        except (TransportError, ConnectionError) as exc:
            await self.close()
            raise _ConnectionClosed(f"{self.address} closed the connection: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise TransportError(f"native exchange with {self.address} failed: {exc}") from exc


class _ConnectionClosed(TransportError):
    """The server closed the connection without answering."""


__all__ = ["Authentication", "NativeAdminClient", "PublicKeyAuth", "SecretKeyAuth"]
