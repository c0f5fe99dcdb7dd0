"""Administrative client of the native protocol: authenticated writes over one TCP connection.

``NativeAdminClient`` keeps one connection open (every request has KA set) and
answers the server's challenges with an HS_SECKEY secret (``SecretKeyAuth``: the
SCRAM client proof of ``node.verifier``, derived from the secret with the salt and
iterations the challenge announces; the secret itself is never sent) or an
HS_PUBKEY private key (``PublicKeyAuth``).  ``open_session`` sets up a
session (key exchange CIPHER_CLIENT: a fresh RSA key receives the session key)
so that later requests are MAC'd with the session key instead of challenged.
Sessions live in the server process that set them up, which is the one holding
this connection.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import TracebackType

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iinode.codes import ResponseCode
from iinode.errors import HandleError, TransportError
from iinode.identifiers import HandleName, HandleValue, IndexedHandle
from iinode.node.auth import (
    KDF_NAME,
    PUBKEY_AUTH,
    SECKEY_AUTH,
    KeyDerivation,
    PrivateKey,
    derive_keys,
    encode_public_key,
    pubkey_answer,
    seckey_answer,
)
from iinode.node.verifier import ClientKeys
from iinode.proto import (
    Body,
    ChallengeAnswer,
    ChallengeBody,
    Credential,
    CredentialType,
    HandleBody,
    KeyExchangeMode,
    ListHandlesResponse,
    Message,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    RemoveValueRequest,
    SessionSetupRequest,
    SessionSetupResponse,
    TcpFramer,
    ValuesRequest,
)
from iinode.resolution.native_client import next_request_id, read_response
from iinode.resolution.native_sessions import session_mac

_NO_FLAGS = OpFlag(0)
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@dataclass(frozen=True, slots=True)
class SecretKeyAuth:
    identity: IndexedHandle
    secret: str


@dataclass(frozen=True, slots=True)
class PublicKeyAuth:
    identity: IndexedHandle
    key: PrivateKey


Authentication = SecretKeyAuth | PublicKeyAuth


class NativeAdminClient:
    def __init__(
        self, host: str, port: int, auth: Authentication, *, timeout: float = 10.0
    ) -> None:
        self.address = (host, port)
        self.auth = auth
        self.timeout = timeout
        self.session_id = 0
        self._session_key = b""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = TcpFramer()
        self._derived: dict[tuple[bytes, int], ClientKeys] = {}
        #: Key parameters of our HS_SECKEY learnt from an earlier challenge: later
        #: challenges are answered at once, saving the round trip that asks for them.
        self._derivation: KeyDerivation | None = None

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

    async def open_session(self, lifetime: int = 0) -> int:
        """Set up a session; later requests are authenticated by its MAC."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        identity = self.auth.identity
        body = SessionSetupRequest(
            KeyExchangeMode.CIPHER_CLIENT, lifetime, str(identity.handle), identity.index,
            encode_public_key(private.public_key()),
        )  # fmt: skip
        response = await self.call(OpCode.SESSION_SETUP, body, session=False)
        assert isinstance(response.body, SessionSetupResponse)
        self._session_key = private.decrypt(response.body.data, _OAEP)
        self.session_id = response.session_id
        return self.session_id

    async def close_session(self) -> None:
        if self.session_id:
            await self.call(OpCode.SESSION_TERMINATE, OptionalHandleBody(), session=True)
            self.session_id, self._session_key = 0, b""

    # -- the exchange ---------------------------------------------------------------
    async def call(
        self, opcode: OpCode, body: Body, flags: OpFlag = _NO_FLAGS, *, session: bool = True
    ) -> Message:
        """Send a request, answer challenges, return the success response or raise."""
        reused = self._derivation is not None
        try:
            return await self._call(opcode, body, flags, session=session)
        except HandleError as exc:
            if not (reused and exc.code == ResponseCode.AUTHENTICATION_FAILED):
                raise
        # The remembered key parameters may be stale (the secret was changed): ask again.
        self._derivation = None
        return await self._call(opcode, body, flags, session=session)

    async def _call(self, opcode: OpCode, body: Body, flags: OpFlag, *, session: bool) -> Message:
        request = Message(opcode, body, flags=flags | OpFlag.KA, request_id=next_request_id())
        if session and self.session_id:
            request = self._sign(request)
        response = await self._exchange(request)
        derivation = self._derivation
        rounds = 0
        while response.response_code == ResponseCode.AUTHENTICATION_NEEDED and rounds < 3:
            rounds += 1
            challenge = response.body
            assert isinstance(challenge, ChallengeBody)
            digest = hashlib.sha256(request.signed_data()).digest()
            if challenge.kdf:
                derivation = KeyDerivation(challenge.salt, challenge.iterations)
                if isinstance(self.auth, SecretKeyAuth):
                    self._derivation = derivation
            answer = self._answer(challenge, digest, derivation, first=rounds == 1)
            reply = Message(
                OpCode.CHALLENGE_RESPONSE, answer, flags=OpFlag.KA, request_id=request.request_id
            )
            response = await self._exchange(reply)
        if response.response_code != ResponseCode.SUCCESS:
            message = getattr(response.body, "message", "") or response.response_code.to_text()
            raise HandleError.for_code(response.response_code, message)
        return response

    def _answer(
        self,
        challenge: ChallengeBody,
        digest: bytes,
        derivation: KeyDerivation | None,
        *,
        first: bool,
    ) -> ChallengeAnswer:
        auth = self.auth
        handle, index = str(auth.identity.handle), auth.identity.index
        if isinstance(auth, PublicKeyAuth):
            signed = pubkey_answer(auth.key, challenge.nonce, digest)
            return ChallengeAnswer(PUBKEY_AUTH, handle, index, signed)
        if first and not challenge.kdf and derivation is None:
            # Ask for the key derivation parameters of our HS_SECKEY.
            return ChallengeAnswer(SECKEY_AUTH, handle, index, b"")
        if challenge.kdf and challenge.kdf != KDF_NAME:
            raise HandleError.for_code(
                ResponseCode.AUTHENTICATION_ERROR, f"unknown key derivation {challenge.kdf}"
            )
        if derivation is None:
            raise HandleError.for_code(
                ResponseCode.AUTHENTICATION_ERROR,
                f"the server announced no {KDF_NAME} parameters for {auth.identity}",
            )
        keys = self._keys(auth.secret, derivation)
        return ChallengeAnswer(
            SECKEY_AUTH, handle, index, seckey_answer(keys, challenge.nonce, digest)
        )

    def _keys(self, secret: str, derivation: KeyDerivation) -> ClientKeys:
        cache_key = (derivation.salt, derivation.iterations)
        keys = self._derived.get(cache_key)
        if keys is None:
            keys = self._derived[cache_key] = derive_keys(secret, derivation)
        return keys

    def _sign(self, request: Message) -> Message:
        request = replace(request, session_id=self.session_id)
        identity = self.auth.identity
        credential = Credential(
            str(identity.handle), identity.index, CredentialType.MAC, "HMAC-SHA256",
            session_mac(self._session_key, request.signed_data()),
        )  # fmt: skip
        return replace(request, credential=credential)

    async def _exchange(self, request: Message) -> Message:
        if self._writer is None or self._reader is None:
            await self.connect()
        assert self._writer is not None
        assert self._reader is not None
        try:
            self._writer.write(request.to_wire())
            await self._writer.drain()
            return await asyncio.wait_for(
                read_response(self._reader, self._framer, request.request_id), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise TransportError(f"native exchange with {self.address} failed: {exc}") from exc


__all__ = ["Authentication", "NativeAdminClient", "PublicKeyAuth", "SecretKeyAuth"]
