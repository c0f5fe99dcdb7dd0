"""Diffie-Hellman sessions, the way a stock Handle.Net client sets them up by default.

Reference facts pinned here (Handle.Net 9 ``hdllib`` and server):

* SESSION_SETUP with key exchange mode 4 carries the client's key as
  "DH_PUB_KEY" | 2 reserved octets | y | p | g (``Util.getBytesFromPublicKey``),
  and is certified (``HandleResolver.setupSessionWithServer``): the answer is
  signed with the server key, never with the session key;
* the answer data is the encryption algorithm (3, AES) and the server's DH key;
  the session key is the first 32 octets of the shared secret after leading
  zero octets (``GenericProvider.getKeyFromDH``);
* the session opens at once; the first administrative request in it is
  challenged with the session's own id, and a good answer binds the session
  (``HandleServer.doSessionSetup``, ``setSessionAuthenticated``);
* session requests carry an HS_MAC: HMAC-SHA256 over versions, session id,
  request id and session counter, then header and body; the counter (in the
  signer index) is the replay guard (``AbstractMessage.signMessage(byte[])``);
* session ids are positive Java ints.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    PubKeyData,
    UrlData,
    encode_record,
)
from iinode.node.auth import PUBKEY_AUTH
from iinode.node.public_keys import encode_public_key, pubkey_answer
from iinode.node.server_keys import load_server_key
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import (
    ChallengeAnswer,
    KeyExchangeMode,
    Message,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    ResolutionRequest,
    SessionSetupRequest,
    SessionSetupResponse,
    TcpFramer,
    ValuesRequest,
)
from iinode.resolution.native_client import next_request_id, read_response
from iinode.resolution.native_dh import DhKeyPair, DhPublic, client_finish, session_key
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_sessions import PeerState
from iinode.resolution.native_signing import mac_message, verify_mac, verify_signature
from iinode.storage import MemoryStore, SQLiteStore
from native.nodes import Node

PREFIX = "88.118.8"
ADMIN = IndexedHandle.parse(f"300:0.NA/{PREFIX}")
VERSION = (2, 10)


def url(index: int, text: str) -> HandleValue:
    return HandleValue(index, "URL", UrlData(text))


# -- the exchange itself ----------------------------------------------------------------


def test_dh_keys_are_laid_out_as_java_writes_them() -> None:
    pair = DhKeyPair.generate()
    y, p, g = pair.public.y, pair.public.p, pair.public.g
    raw = pair.public.to_wire()

    def lp(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    def java(n: int) -> bytes:
        return n.to_bytes(n.bit_length() // 8 + 1, "big")

    assert raw == lp(b"DH_PUB_KEY") + b"\x00\x00" + lp(java(y)) + lp(java(p)) + lp(java(g))
    assert DhPublic.from_wire(raw) == pair.public


def test_the_session_key_skips_leading_zero_octets_of_the_secret() -> None:
    p = (1 << 1023) | 1
    shared = int.from_bytes(bytes(3) + bytes(range(1, 125)), "big")
    assert session_key(shared, p) == bytes(range(1, 33))


def test_both_ends_agree_and_bad_groups_are_refused() -> None:
    client, server = DhKeyPair.generate(), DhKeyPair.generate()
    assert client.shared_key(server.public) == server.shared_key(client.public)
    with pytest.raises(HandleError, match="modulus"):
        DhPublic(5, 23, 2).check()


# -- a whole session, in process ------------------------------------------------------


async def _seed(service: HandleService, user_key: rsa.RSAPrivateKey) -> None:
    na = HandleName.parse(f"0.NA/{PREFIX}")
    record = [
        HandleValue(100, "HS_ADMIN", AdminData(AdminPermission.all(), ADMIN)),
        HandleValue(300, "HS_PUBKEY", PubKeyData(encode_public_key(user_key.public_key()))),
    ]
    raw = encode_record(record)
    await service.store.modify(str(na), lambda _old: raw)


def _service(data_dir: Path, store_url: str = "memory:") -> HandleService:
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=data_dir, prefix=PREFIX, store_url=store_url
    )
    store = MemoryStore() if store_url == "memory:" else SQLiteStore(data_dir / "handles.sqlite3")
    return HandleService(settings, store)


def _handler(service: HandleService) -> NativeHandler:
    assert service.owned is not None
    return NativeHandler(service, service._own_site(service.owned))


def _setup(pair: DhKeyPair) -> Message:
    body = SessionSetupRequest(
        KeyExchangeMode.DIFFIE_HELLMAN, 3600, str(ADMIN.handle), ADMIN.index, pair.public.to_wire()
    )
    return Message(
        OpCode.SESSION_SETUP, body, flags=OpFlag.CT | OpFlag.RD, request_id=next_request_id(),
        version=VERSION,
    )  # fmt: skip


def _create(handle: str, session_id: int, key: bytes, counter: int) -> Message:
    request = Message(
        OpCode.CREATE_HANDLE, ValuesRequest(handle, (url(1, f"http://{handle}/"),)),
        request_id=next_request_id(), session_id=session_id, version=VERSION,
    )  # fmt: skip
    return mac_message(request, key, counter)


async def test_a_dh_session_is_set_up_challenged_once_then_writes_by_its_mac(
    tmp_path: Path,
) -> None:
    user_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    service = _service(tmp_path)
    await _seed(service, user_key)
    handler = _handler(service)
    peer = PeerState(address="127.0.0.1")
    pair = DhKeyPair.generate()

    setup = (await handler.handle(_setup(pair), peer)).message
    assert setup is not None
    assert setup.response_code == ResponseCode.SUCCESS
    assert 0 < setup.session_id < 2**31
    # Certified: signed with the server key as the site publishes it, not the session key.
    assert setup.credential is not None
    assert setup.credential.type == "HS_SIGNED"
    assert verify_signature(setup, load_server_key(tmp_path).public_bytes)
    assert isinstance(setup.body, SessionSetupResponse)
    assert setup.body.mode == KeyExchangeMode.DIFFIE_HELLMAN
    assert setup.body.data[:4] == b"\x00\x00\x00\x03"  # AES
    key = client_finish(pair, setup.body.data)
    sid = setup.session_id
    assert handler.sessions.get(sid, handler._clock()).key == key  # type: ignore[union-attr]

    # The first write in the unbound session is challenged, under the session's id.
    first = _create(f"{PREFIX}/DH1", sid, key, 1)
    challenge = (await handler.handle(first, peer)).message
    assert challenge is not None
    assert challenge.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert challenge.session_id == sid
    assert challenge.request_digest is not None
    nonce = challenge.body.nonce  # type: ignore[attr-defined]
    signed = pubkey_answer(user_key, nonce, challenge.request_digest.digest)
    answer = Message(
        OpCode.CHALLENGE_RESPONSE,
        ChallengeAnswer(PUBKEY_AUTH, str(ADMIN.handle), ADMIN.index, signed),
        request_id=first.request_id, session_id=sid, version=VERSION,
    )  # fmt: skip
    done = (await handler.handle(answer, PeerState(address="127.0.0.1"))).message
    assert done is not None
    assert done.response_code == ResponseCode.SUCCESS, done.body
    assert await service.lookup(HandleName.parse(f"{PREFIX}/DH1")) is not None

    # Bound now: the next write goes through on its MAC alone.
    second = _create(f"{PREFIX}/DH2", sid, key, 2)
    reply = (await handler.handle(second, peer)).message
    assert reply is not None
    assert reply.response_code == ResponseCode.SUCCESS
    # Replayed (same counter) or forged (wrong key): refused, nothing written.
    again = (await handler.handle(_create(f"{PREFIX}/DH3", sid, key, 2), peer)).message
    forged = (await handler.handle(_create(f"{PREFIX}/DH4", sid, b"x" * 32, 3), peer)).message
    assert again is not None
    assert forged is not None
    assert again.response_code == ResponseCode.INVALID_CREDENTIAL
    assert forged.response_code == ResponseCode.INVALID_CREDENTIAL
    assert await service.lookup(HandleName.parse(f"{PREFIX}/DH3")) is None
    assert await service.lookup(HandleName.parse(f"{PREFIX}/DH4")) is None

    # A certified request in the session is answered with the session's MAC.
    resolve = mac_message(
        Message(
            OpCode.RESOLUTION, ResolutionRequest(f"{PREFIX}/DH2"), flags=OpFlag.CT,
            request_id=next_request_id(), session_id=sid, version=VERSION,
        ),
        key, 5,
    )  # fmt: skip
    answered = (await handler.handle(resolve, peer)).message
    assert answered is not None
    assert answered.response_code == ResponseCode.SUCCESS
    assert answered.credential is not None
    assert answered.credential.type == "HS_MAC"
    assert answered.credential.signer_index == 1  # the server's first MAC'd answer
    assert verify_mac(answered, key)
    # ... checked the way the reference client does, by hand.
    cred = answered.credential
    octets = bytes(answered.version) + bytes(answered.version)
    octets += struct.pack(">III", sid, answered.request_id, cred.signer_index)
    expected = hmac.new(key, octets + answered.signed_data(), hashlib.sha256).digest()
    if getattr(answered, "suggested_version", None) is None:
        assert cred.signed_data == expected


async def test_an_unbound_session_cannot_be_claimed_by_another_identity(tmp_path: Path) -> None:
    service = _service(tmp_path)
    handler = _handler(service)
    pair = DhKeyPair.generate()
    setup = (await handler.handle(_setup(pair), PeerState())).message
    assert setup is not None
    session = handler.sessions.get(setup.session_id, handler._clock())
    assert session is not None
    assert session.identity is None
    assert session.claimed == ADMIN
    assert not handler.sessions.bind(session, IndexedHandle.parse("300:0.NA/88.118.9"))
    assert session.identity is None


def _dh_key() -> bytes:
    return DhKeyPair.generate().public.to_wire()


async def test_old_clients_get_no_dh_session(tmp_path: Path) -> None:
    handler = _handler(_service(tmp_path))
    request = Message(
        OpCode.SESSION_SETUP,
        SessionSetupRequest(KeyExchangeMode.DIFFIE_HELLMAN, 0, "", 0, _dh_key()),
        request_id=next_request_id(), version=(2, 3),
    )  # fmt: skip
    reply = (await handler.handle(request, PeerState())).message
    assert reply is not None
    assert reply.response_code == ResponseCode.SESSION_NO_SUPPORT


async def test_a_session_set_up_in_one_worker_serves_in_another(tmp_path: Path) -> None:
    one = _service(tmp_path, "sqlite:handles.sqlite3")
    two = _service(tmp_path, "sqlite:handles.sqlite3")
    user_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    await _seed(one, user_key)
    first, second = _handler(one), _handler(two)
    try:
        pair = DhKeyPair.generate()
        setup = (await first.handle(_setup(pair), PeerState())).message
        assert setup is not None
        assert isinstance(setup.body, SessionSetupResponse)
        key = client_finish(pair, setup.body.data)
        sid = setup.session_id
        # Challenged by the second worker, answered to the first (as stock clients may).
        request = _create(f"{PREFIX}/W1", sid, key, 1)
        challenge = (await second.handle(request, PeerState())).message
        assert challenge is not None
        assert challenge.response_code == ResponseCode.AUTHENTICATION_NEEDED
        assert challenge.request_digest is not None
        signed = pubkey_answer(
            user_key,
            challenge.body.nonce,
            challenge.request_digest.digest,  # type: ignore[attr-defined]
        )
        answer = Message(
            OpCode.CHALLENGE_RESPONSE,
            ChallengeAnswer(PUBKEY_AUTH, str(ADMIN.handle), ADMIN.index, signed),
            request_id=request.request_id, session_id=sid, version=VERSION,
        )  # fmt: skip
        done = (await first.handle(answer, PeerState())).message
        assert done is not None
        assert done.response_code == ResponseCode.SUCCESS, done.body
        # Bound for both: the second worker accepts the next write on its MAC.
        reply = (await second.handle(_create(f"{PREFIX}/W2", sid, key, 2), PeerState())).message
        assert reply is not None
        assert reply.response_code == ResponseCode.SUCCESS
        # A counter used through one worker is refused by the other.
        replay = (await first.handle(_create(f"{PREFIX}/W3", sid, key, 2), PeerState())).message
        assert replay is not None
        assert replay.response_code == ResponseCode.INVALID_CREDENTIAL
    finally:
        await one.store.close()
        await two.store.close()


# -- over TCP, one connection per message as the stock client does --------------------


async def _send(node: Node, message: Message) -> Message:
    reader, writer = await asyncio.open_connection(*node.address)
    try:
        writer.write(message.to_wire())
        await writer.drain()
        return await asyncio.wait_for(read_response(reader, TcpFramer(), message.request_id), 5)
    finally:
        writer.close()


async def test_a_dh_session_over_tcp(enterprise: Node) -> None:
    pair = DhKeyPair.generate()
    setup = await _send(enterprise, _setup(pair))
    assert setup.response_code == ResponseCode.SUCCESS
    assert verify_signature(setup, load_server_key(enterprise.settings.data_dir).public_bytes)
    assert isinstance(setup.body, SessionSetupResponse)
    key = client_finish(pair, setup.body.data)
    challenge = await _send(enterprise, _create(f"{PREFIX}/T1", setup.session_id, key, 1))
    assert challenge.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert challenge.session_id == setup.session_id


async def test_a_malformed_dh_key_fails_the_setup_and_opens_nothing(tmp_path: Path) -> None:
    handler = _handler(_service(tmp_path))
    for key in (b"", b"\x00\x00\x00\x0aDH_PUB_KEY", DhPublic(5, 23, 2).to_wire()):
        request = Message(
            OpCode.SESSION_SETUP,
            SessionSetupRequest(KeyExchangeMode.DIFFIE_HELLMAN, 0, "", 0, key),
            request_id=next_request_id(), version=VERSION,
        )  # fmt: skip
        reply = (await handler.handle(request, PeerState())).message
        assert reply is not None
        assert reply.response_code == ResponseCode.SESSION_FAILED, reply.body
    assert len(handler.sessions) == 0


async def test_a_bound_dh_session_ends_on_a_maced_terminate(tmp_path: Path) -> None:
    handler = _handler(_service(tmp_path))
    pair = DhKeyPair.generate()
    setup = (await handler.handle(_setup(pair), PeerState())).message
    assert setup is not None
    assert isinstance(setup.body, SessionSetupResponse)
    key, sid = client_finish(pair, setup.body.data), setup.session_id
    session = handler.sessions.get(sid, handler._clock())
    assert session is not None
    assert handler.sessions.bind(session, ADMIN)
    terminate = Message(
        OpCode.SESSION_TERMINATE, OptionalHandleBody(), request_id=next_request_id(),
        session_id=sid, version=VERSION,
    )  # fmt: skip
    forged = (await handler.handle(mac_message(terminate, b"y" * 32, 1), PeerState())).message
    assert forged is not None
    assert forged.response_code == ResponseCode.INVALID_CREDENTIAL
    assert handler.sessions.get(sid, handler._clock()) is not None
    ended = (await handler.handle(mac_message(terminate, key, 2), PeerState())).message
    assert ended is not None
    assert ended.response_code == ResponseCode.SUCCESS
    assert handler.sessions.get(sid, handler._clock()) is None


async def test_an_unbound_dh_session_ends_on_its_mac_alone(tmp_path: Path) -> None:
    handler = _handler(_service(tmp_path))
    pair = DhKeyPair.generate()
    setup = (await handler.handle(_setup(pair), PeerState())).message
    assert setup is not None
    assert isinstance(setup.body, SessionSetupResponse)
    key, sid = client_finish(pair, setup.body.data), setup.session_id
    terminate = Message(
        OpCode.SESSION_TERMINATE, OptionalHandleBody(), request_id=next_request_id(),
        session_id=sid, version=VERSION,
    )  # fmt: skip
    bare = (await handler.handle(terminate, PeerState())).message
    assert bare is not None
    assert bare.response_code == ResponseCode.INVALID_CREDENTIAL
    ended = (await handler.handle(mac_message(terminate, key, 1), PeerState())).message
    assert ended is not None
    assert ended.response_code == ResponseCode.SUCCESS
    assert handler.sessions.get(sid, handler._clock()) is None
