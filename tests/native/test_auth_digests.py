"""Golden vectors of Handle.Net secret-key authentication.

Each answer type is computed here from its definition (Handle.Net ``Util.doMac``
and ``SecretKeyAuthenticationInfo.authenticate``) with hashlib and hmac, and
pinned as hex; the challenge a node sends for a known request is written octet by
octet from RFC 3652 and the reference server's behaviour (request digest always
present, session id naming the challenge).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iinode.codes import ResponseCode
from iinode.identifiers import HandleName, HandleValue, UrlData, encode_record
from iinode.node import challenges
from iinode.node import dsa_keys as dsa
from iinode.node.challenges import MemoryChallengeTable
from iinode.node.public_keys import verify_pubkey_answer
from iinode.node.seckey_answers import (
    answer_type_for,
    check_answer,
    hashed_secret,
    pbkdf2_body,
    seckey_answer,
)
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import DigestAlgorithm, Message
from iinode.resolution import native_handler
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_sessions import PeerState
from iinode.storage import MemoryStore

KEY = b"s3cret"
NONCE = bytes(range(16))
DIGEST = hashlib.sha256(b"request").digest()
MESSAGE = NONCE + DIGEST
SALT = b"\xaa" * 16

D = DigestAlgorithm


def enclosed(name: str, key: bytes = KEY) -> bytes:
    """``H(key || nonce || digest || key)``: MD5, SHA-1 and SHA-256 answers."""
    return hashlib.new(name, key + MESSAGE + key).digest()


def pbkdf2(key: bytes = KEY, password: bytes | None = None) -> bytes:
    derived = hashlib.pbkdf2_hmac("sha1", password or key, SALT, 10_000, 20)
    mac = hmac.new(derived, MESSAGE, hashlib.sha1).digest()
    return struct.pack(">I", 16) + SALT + struct.pack(">II", 10_000, 160) + b"\0\0\0\x14" + mac


GOLDEN = {
    D.MD5_OLD_FORMAT: (enclosed("md5"), "a54529b76faa32467aaea3bc58568241"),
    D.MD5: (b"\x01" + enclosed("md5"), "01a54529b76faa32467aaea3bc58568241"),
    D.SHA1: (b"\x02" + enclosed("sha1"), "026e280e7d926c514aa7b2d8cf5e8abc1aa89c3218"),
    D.SHA256: (
        b"\x03" + enclosed("sha256"),
        "033fc4586039c38e366f5d230eabacc816875f7750bde130306254c4ba38b0e253",
    ),
    D.HMAC_SHA1: (
        b"\x12" + hmac.new(KEY, MESSAGE, hashlib.sha1).digest(),
        "127c7a3b11ec9006440846f4b1626db9f5aa3a951a",
    ),
    D.HMAC_SHA256: (
        b"\x13" + hmac.new(KEY, MESSAGE, hashlib.sha256).digest(),
        "135e050a3d0b148afd9c35878e77ae5aaf3ec80c2cdf5a7316237cc0f175d6ff8b",
    ),
    D.PBKDF2_HMAC_SHA1: (
        b"\x22" + pbkdf2(),
        "22" + "00000010" + "aa" * 16 + "00002710" + "000000a0" + "00000014"
        "0dd19c3f5c65f3641f55e1217ee2399f9ed6cafc",
    ),
}


@pytest.mark.parametrize("kind", list(GOLDEN), ids=lambda k: k.name)
def test_each_answer_type_matches_its_definition(kind: DigestAlgorithm) -> None:
    computed, pinned = GOLDEN[kind]
    assert computed.hex() == pinned
    assert seckey_answer(KEY, NONCE, DIGEST, kind, salt=SALT) == computed
    old = kind == D.MD5_OLD_FORMAT
    assert check_answer(KEY, NONCE, DIGEST, computed, old_format=old)
    tampered = computed[:-1] + bytes([computed[-1] ^ 1])
    assert not check_answer(KEY, NONCE, DIGEST, tampered, old_format=old)
    assert not check_answer(b"s3creT", NONCE, DIGEST, computed, old_format=old)
    assert not check_answer(KEY, NONCE[::-1], DIGEST, computed, old_format=old)
    assert not check_answer(KEY, NONCE, DIGEST[::-1], computed, old_format=old)
    # The old format is told by the version, not by the answer: no type octet there.
    assert not check_answer(KEY, NONCE, DIGEST, computed, old_format=not old)


def test_answer_type_by_version_as_the_reference_client_chooses() -> None:
    assert answer_type_for((2, 0)) == D.MD5_OLD_FORMAT
    assert answer_type_for((2, 1)) == D.SHA1
    assert answer_type_for((2, 6)) == D.SHA1
    assert answer_type_for((2, 7)) == D.PBKDF2_HMAC_SHA1
    assert answer_type_for((2, 11)) == D.PBKDF2_HMAC_SHA1


def test_pbkdf2_answers_carry_fresh_salt_and_any_valid_parameters_are_accepted() -> None:
    one, two = (seckey_answer(KEY, NONCE, DIGEST, D.PBKDF2_HMAC_SHA1) for _ in range(2))
    assert one != two  # 16 random octets of salt each time
    assert check_answer(KEY, NONCE, DIGEST, one, old_format=False)
    own = b"\x22" + pbkdf2_body(KEY, MESSAGE, salt=b"salt", iterations=1000, bits=256)
    assert check_answer(KEY, NONCE, DIGEST, own, old_format=False)
    # Parameters the server will not compute: too many iterations, a key not in octets.
    too_many = b"\x22" + struct.pack(">I", 16) + SALT + struct.pack(">II", 10**7, 160)
    assert not check_answer(
        KEY, NONCE, DIGEST, too_many + b"\0\0\0\x14" + b"x" * 20, old_format=False
    )
    odd_bits = b"\x22" + struct.pack(">I", 16) + SALT + struct.pack(">II", 10, 161)
    assert not check_answer(
        KEY, NONCE, DIGEST, odd_bits + b"\0\0\0\x14" + b"x" * 20, old_format=False
    )
    assert not check_answer(KEY, NONCE, DIGEST, b"\x22\x00", old_format=False)
    assert not check_answer(KEY, NONCE, DIGEST, b"\x7f" + b"x" * 20, old_format=False)
    assert not check_answer(KEY, NONCE, DIGEST, b"", old_format=False)


def test_pbkdf2_takes_each_password_octet_as_a_character_like_java() -> None:
    """``Util.doPBKDF2`` makes a char per octet; PBEKeySpec encodes chars as UTF-8."""
    key = "pässwort".encode("latin-1")
    expected = b"\x22" + pbkdf2(key, password="pässwort".encode())
    assert seckey_answer(key, NONCE, DIGEST, D.PBKDF2_HMAC_SHA1, salt=SALT) == expected
    assert check_answer(key, NONCE, DIGEST, expected, old_format=False)


def test_hashed_password_mode_is_lower_case_hex_sha1() -> None:
    """``Encoder.encodeSecretKey(secret, true)``."""
    assert hashed_secret(b"s3cret") == hashlib.sha1(b"s3cret").hexdigest().lower().encode()
    hashed = hashed_secret(b"s3cret")
    answer = seckey_answer(hashed, NONCE, DIGEST, D.HMAC_SHA256)
    assert answer == b"\x13" + hmac.new(hashed, MESSAGE, hashlib.sha256).digest()


# -- the challenge on the wire -----------------------------------------------------------
EXPIRES_AT = 1_700_000_000
CHALLENGE_ID = 0x0BADCAFE
REQUEST_ID = 0x01020304


def delete_request(version: tuple[int, int], suggested: tuple[int, int] | None) -> bytes:
    """DELETE_HANDLE 88.118.8/X as a Handle.Net client writes it (RFC 3652 layouts)."""
    body = struct.pack(">I", 10) + b"88.118.8/X"
    header = struct.pack(">IIIHBBII", 101, 0, 0, 0, 0, 0, 0, len(body))
    payload = header + body + b"\0\0\0\0"
    flags = 0 if suggested is None else (suggested[0] << 8) | suggested[1]
    envelope = struct.pack(">BBHIIII", *version, flags, 0, REQUEST_ID, 0, len(payload))
    return envelope + payload


@pytest.fixture
def handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NativeHandler:
    monkeypatch.setattr(native_handler, "new_nonce", lambda: NONCE)
    monkeypatch.setattr(challenges, "new_challenge_id", lambda: CHALLENGE_ID)
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    service = HandleService(settings, MemoryStore())
    assert service.owned is not None
    return NativeHandler(
        service, service._own_site(service.owned), challenges=MemoryChallengeTable(),
        wall_clock=lambda: float(EXPIRES_AT - 43_200),
    )  # fmt: skip


async def challenge_for(handler: NativeHandler, request: bytes) -> bytes:
    await handler.service.initialise("s3cret")
    raw = encode_record([HandleValue(1, "URL", UrlData("http://x/"))])
    await handler.service.store.modify("88.118.8/X", lambda _old: raw)
    outcome = await handler.handle(Message.from_wire(request), PeerState("192.0.2.1"))
    assert outcome.message is not None
    return outcome.message.to_wire()


async def test_challenge_of_a_v2_10_request_carries_a_sha256_digest_and_a_session_id(
    handler: NativeHandler,
) -> None:
    request = delete_request((2, 10), (2, 11))
    signed = request[20:-4]  # header and body: what the request digest covers
    body = b"\x03" + hashlib.sha256(signed).digest() + struct.pack(">I", 16) + NONCE
    # opcode, AUTHENTICATION_NEEDED, RD|REC, site serial 1, recursion 0, reserved, expiration
    header = struct.pack(">IIIHBBII", 101, 402, 0x1080_0000, 1, 0, 0, EXPIRES_AT, len(body))
    payload = header + body + b"\0\0\0\0"
    # version 2.11 (what the request suggests), suggesting 2.11; the session id names it
    envelope = struct.pack(">BBHIIII", 2, 11, 0x020B, CHALLENGE_ID, REQUEST_ID, 0, len(payload))
    assert await challenge_for(handler, request) == envelope + payload


async def test_challenge_of_a_v2_5_request_carries_a_sha1_digest(handler: NativeHandler) -> None:
    request = delete_request((2, 5), None)
    signed = request[20:-4]
    body = b"\x02" + hashlib.sha1(signed).digest() + struct.pack(">I", 16) + NONCE
    header = struct.pack(">IIIHBBII", 101, 402, 0x1080_0000, 1, 0, 0, EXPIRES_AT, len(body))
    payload = header + body + b"\0\0\0\0"
    envelope = struct.pack(">BBHIIII", 2, 5, 0x020B, CHALLENGE_ID, REQUEST_ID, 0, len(payload))
    assert await challenge_for(handler, request) == envelope + payload


async def test_challenge_of_a_v2_0_request_has_the_md5_digest_in_its_body(
    handler: NativeHandler,
) -> None:
    """Before 2.1 (``Encoder.encodeChallenge``): nonce then digest, no RD flag."""
    request = delete_request((2, 0), None)
    signed = request[20:-4]
    body = struct.pack(">I", 16) + NONCE + struct.pack(">I", 16) + hashlib.md5(signed).digest()
    header = struct.pack(">IIIHBBII", 101, 402, 0x1000_0000, 1, 0, 0, EXPIRES_AT, len(body))
    payload = header + body + b"\0\0\0\0"
    envelope = struct.pack(">BBHIIII", 2, 0, 0x020B, CHALLENGE_ID, REQUEST_ID, 0, len(payload))
    assert await challenge_for(handler, request) == envelope + payload


@pytest.mark.parametrize(
    ("version", "kind"),
    [((2, 10), D.PBKDF2_HMAC_SHA1), ((2, 5), D.SHA1), ((2, 0), D.MD5_OLD_FORMAT)],
)
async def test_the_golden_answer_on_the_wire_is_accepted_once(
    handler: NativeHandler, version: tuple[int, int], kind: DigestAlgorithm
) -> None:
    request = delete_request(version, (2, 11) if version >= (2, 1) else None)
    challenge = Message.from_wire(await challenge_for(handler, request))
    digest = (
        challenge.request_digest.digest
        if challenge.request_digest is not None
        else challenge.body.old_digest  # type: ignore[union-attr]
    )
    answer = seckey_answer(KEY, NONCE, digest, kind, salt=SALT)
    handle, index = b"0.NA/88.118.8", 300
    body = struct.pack(">I", 9) + b"HS_SECKEY" + struct.pack(">I", len(handle)) + handle
    body += struct.pack(">I", index) + struct.pack(">I", len(answer)) + answer
    header = struct.pack(">IIIHBBII", 200, 0, 0, 0, 0, 0, 0, len(body))
    payload = header + body + b"\0\0\0\0"
    flags = 0x020B if version >= (2, 1) else 0
    envelope = struct.pack(">BBHIIII", *version, flags, CHALLENGE_ID, 77, 0, len(payload))
    message = Message.from_wire(envelope + payload)
    outcome = await handler.handle(message, PeerState("192.0.2.9"))  # another peer
    assert outcome.message is not None
    assert outcome.message.response_code == ResponseCode.SUCCESS
    assert (outcome.message.opcode, outcome.message.request_id) == (101, 77)
    assert await handler.service.lookup(HandleName.parse("88.118.8/X")) is None
    again = await handler.handle(message, PeerState("192.0.2.9"))
    assert again.message is not None
    assert again.message.response_code == ResponseCode.AUTHENTICATION_TIMEOUT


# -- public-key answers as Handle.Net clients sign them --------------------------------------
@pytest.mark.parametrize("kind", ["rsa", "dsa"])
@pytest.mark.parametrize(("name", "algorithm"), [("SHA-256", "sha256"), ("SHA256", "sha256"),
                                                 ("SHA1", "sha1"), ("SHA-1", "sha1")])  # fmt: skip
def test_pubkey_answers_signed_as_the_reference_client_signs(
    kind: str, name: str, algorithm: str
) -> None:
    """``PublicKeyAuthenticationInfo``: byte string hash id, byte string signature over
    ``nonce || digest`` (SHA-1 below 2.7, and for DSA below 2.11)."""
    chosen = hashes.SHA256() if algorithm == "sha256" else hashes.SHA1()
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signature = key.sign(MESSAGE, padding.PKCS1v15(), chosen)
    else:
        key = dsa.generate_private_key(key_size=2048)  # type: ignore[assignment]
        signature = key.sign(MESSAGE, chosen)  # type: ignore[call-arg]
    answer = struct.pack(">I", len(name)) + name.encode() + struct.pack(">I", len(signature))
    answer += signature
    public = key.public_key()
    assert verify_pubkey_answer(public, NONCE, DIGEST, answer)
    assert not verify_pubkey_answer(public, NONCE, DIGEST[::-1], answer)
    wrong_name = struct.pack(">I", 3) + b"MD5" + answer[4 + len(name) :]
    assert not verify_pubkey_answer(public, NONCE, DIGEST, wrong_name)
