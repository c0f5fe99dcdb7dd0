"""What someone who only sees a session id (it travels in clear) cannot do with it,
and what an unauthenticated request cannot make the node hold."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from iinode.codes import ResponseCode
from iinode.identifiers import HandleName
from iinode.node.challenges import CHALLENGES_FILE
from iinode.node.public_keys import encode_public_key
from iinode.node.settings import Role
from iinode.proto import (
    Credential,
    CredentialType,
    KeyExchangeMode,
    Message,
    OpCode,
    OpFlag,
    ResolutionRequest,
    SessionSetupRequest,
    SessionSetupResponse,
    ValuesRequest,
)
from iinode.resolution.native_client import next_request_id
from iinode.resolution.native_dh import DhKeyPair, client_finish
from iinode.resolution.native_handler import CHALLENGE_AAD, MAX_CHALLENGED_BYTES, NativeHandler
from iinode.resolution.native_sessions import MAX_UNBOUND_PER_SOURCE, PeerState, PendingChallenge
from iinode.resolution.native_signing import mac_message, verify_mac
from iinode.resolution.shared_sessions import SESSIONS_FILE
from native.nodes import start_node
from native.test_dh_sessions import (
    ADMIN,
    PREFIX,
    VERSION,
    _create,
    _handler,
    _send,
    _service,
    _setup,
    url,
)

VICTIM = PeerState(address="192.0.2.10")
ATTACKER = PeerState(address="198.51.100.66")


async def _dh_session(handler: NativeHandler) -> tuple[int, bytes]:
    pair = DhKeyPair.generate()
    setup = (await handler.handle(_setup(pair), VICTIM)).message
    assert setup is not None
    assert isinstance(setup.body, SessionSetupResponse)
    return setup.session_id, client_finish(pair, setup.body.data)


async def test_naming_a_session_without_its_mac_gets_no_answer_under_its_key(
    tmp_path: Path,
) -> None:
    handler = _handler(_service(tmp_path))
    sid, key = await _dh_session(handler)
    resolve = Message(
        OpCode.RESOLUTION, ResolutionRequest(f"{PREFIX}/X"), flags=OpFlag.CT,
        request_id=next_request_id(), session_id=sid, version=VERSION,
    )  # fmt: skip
    answer = (await handler.handle(resolve, ATTACKER)).message
    assert answer is not None
    assert answer.credential is not None
    assert answer.credential.type == CredentialType.SIGNED  # the server key, not the session's
    session = handler.sessions.get(sid, handler._clock())
    assert session is not None
    assert session.sent == 0  # the victim's answer counter did not move
    # With the session's MAC the answer is MAC'd, numbered from 1.
    maced = (await handler.handle(mac_message(resolve, key, 1), VICTIM)).message
    assert maced is not None
    assert maced.credential is not None
    assert maced.credential.signer_index == 1
    assert verify_mac(maced, key)


def _legacy_mac(message: Message, key: bytes, signer: str, counter: int) -> Message:
    mac = hmac.new(key, message.signed_data(), hashlib.sha256).digest()
    credential = Credential(signer, counter, CredentialType.MAC, "HMAC-SHA256", mac)
    return replace(message, credential=credential)


async def test_macs_that_leave_the_replay_guard_unsigned_are_refused(tmp_path: Path) -> None:
    service = _service(tmp_path)
    handler = _handler(service)
    session = handler.sessions.open(ADMIN, handler._clock())
    request = Message(
        OpCode.CREATE_HANDLE, ValuesRequest(f"{PREFIX}/OLD", (url(1, "http://o/"),)),
        request_id=next_request_id(), session_id=session.session_id, version=VERSION,
    )  # fmt: skip
    old = replace(request, version=(2, 4))
    attempts = [
        _legacy_mac(request, session.key, "", 1),  # header and body only, 2.10
        _legacy_mac(request, session.key, str(ADMIN), 2),  # the former own layout
        _legacy_mac(old, session.key, "", 3),  # the <2.5 layout
        mac_message(old, session.key, 4),
    ]
    for attempt in attempts:
        answer = (await handler.handle(attempt, VICTIM)).message
        assert answer is not None
        assert answer.response_code == ResponseCode.INVALID_CREDENTIAL, attempt.credential
    assert await service.lookup(HandleName.parse(f"{PREFIX}/OLD")) is None
    # The 2.7+ layout (what stock 2.10/2.11 clients send) works, once per counter.
    good = mac_message(request, session.key, 5)
    answer = (await handler.handle(good, VICTIM)).message
    assert answer is not None
    assert answer.response_code == ResponseCode.SUCCESS
    again = mac_message(replace(request, request_id=next_request_id()), session.key, 5)
    answer = (await handler.handle(again, VICTIM)).message
    assert answer is not None
    assert answer.response_code == ResponseCode.INVALID_CREDENTIAL


async def test_naming_a_session_does_not_replace_its_open_challenge(tmp_path: Path) -> None:
    handler = _handler(_service(tmp_path))
    sid, key = await _dh_session(handler)
    challenge = (await handler.handle(_create(f"{PREFIX}/C1", sid, key, 1), VICTIM)).message
    assert challenge is not None
    assert challenge.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert challenge.session_id == sid  # MAC'd: the session's own id, as Handle.Net does
    exchange = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    knock = Message(
        OpCode.SESSION_SETUP,
        SessionSetupRequest(
            KeyExchangeMode.CIPHER_CLIENT, 0, str(ADMIN.handle), ADMIN.index,
            encode_public_key(exchange),
        ),
        request_id=next_request_id(), session_id=sid, version=VERSION,
    )  # fmt: skip
    other = (await handler.handle(knock, ATTACKER)).message
    assert other is not None
    assert other.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert other.session_id != sid  # a fresh id
    assert await handler.challenges.take(sid) is not None  # the victim's is still open


async def test_large_unauthenticated_requests_are_not_held(tmp_path: Path) -> None:
    handler = _handler(_service(tmp_path))
    big = Message(
        OpCode.CREATE_HANDLE,
        ValuesRequest(f"{PREFIX}/BIG", (url(1, "http://b/" + "x" * MAX_CHALLENGED_BYTES),)),
        request_id=next_request_id(), version=VERSION,
    )  # fmt: skip
    answer = (await handler.handle(big, ATTACKER)).message
    assert answer is not None
    assert answer.response_code == ResponseCode.OPERATION_DENIED
    assert "too large" in getattr(answer.body, "message", "")
    assert len(handler.challenges) == 0


async def test_an_open_challenge_is_stored_sealed(tmp_path: Path) -> None:
    service = _service(tmp_path, "sqlite:handles.sqlite3")
    handler = _handler(service)
    try:
        marker = "http://challenged.example/SECRET-LOOKING"
        request = Message(
            OpCode.CREATE_HANDLE, ValuesRequest(f"{PREFIX}/S", (url(1, marker),)),
            request_id=next_request_id(), version=VERSION,
        )  # fmt: skip
        answer = (await handler.handle(request, VICTIM)).message
        assert answer is not None
        assert answer.response_code == ResponseCode.AUTHENTICATION_NEEDED
        db = sqlite3.connect(tmp_path / CHALLENGES_FILE)
        (payload,) = db.execute("SELECT payload FROM challenges").fetchone()
        db.close()
        assert marker.encode() not in bytes(payload)
        assert f"{PREFIX}/S".encode() not in bytes(payload)
    finally:
        await service.store.close()


def test_a_stopped_native_server_leaves_no_session_wal(tmp_path: Path) -> None:
    node = start_node(tmp_path, Role.ENTERPRISE, PREFIX, {})
    wal = node.settings.data_dir / f"{SESSIONS_FILE}-wal"
    try:
        setup = asyncio.run(_send(node, _setup(DhKeyPair.generate())))
        assert setup.response_code == ResponseCode.SUCCESS
        assert wal.exists()
    finally:
        node.server.stop()
    assert not wal.exists()


async def test_replaying_a_request_of_an_unbound_session_cannot_replace_its_challenge(
    tmp_path: Path,
) -> None:
    one = _service(tmp_path, "sqlite:handles.sqlite3")
    two = _service(tmp_path, "sqlite:handles.sqlite3")
    first, second = _handler(one), _handler(two)
    try:
        sid, key = await _dh_session(first)
        request = _create(f"{PREFIX}/R1", sid, key, 1)
        challenge = (await first.handle(request, VICTIM)).message
        assert challenge is not None
        assert challenge.response_code == ResponseCode.AUTHENTICATION_NEEDED
        replayed = (await second.handle(request, ATTACKER)).message  # another worker
        assert replayed is not None
        assert replayed.response_code == ResponseCode.INVALID_CREDENTIAL
        payload = await first.challenges.take(sid)
        assert payload is not None
        pending = PendingChallenge.from_bytes(one.secrets.box.open(payload, CHALLENGE_AAD))
        assert challenge.body.nonce == pending.nonce  # type: ignore[attr-defined]
    finally:
        first.sessions.shutdown()
        second.sessions.shutdown()
        await one.store.close()
        await two.store.close()


async def test_one_address_holds_a_bounded_number_of_unbound_dh_sessions(tmp_path: Path) -> None:
    handler = _handler(_service(tmp_path))
    ids = [(await _dh_session(handler))[0] for _ in range(MAX_UNBOUND_PER_SOURCE + 4)]
    assert len(handler.sessions) == MAX_UNBOUND_PER_SOURCE
    now = handler._clock()
    assert handler.sessions.get(ids[-1], now) is not None
    assert handler.sessions.get(ids[0], now) is None
    # Another address is not affected.
    pair = DhKeyPair.generate()
    other = (await handler.handle(_setup(pair), ATTACKER)).message
    assert other is not None
    assert handler.sessions.get(other.session_id, now) is not None
    assert len(handler.sessions) == MAX_UNBOUND_PER_SOURCE + 1
