"""What one challenge answer may cost the node: PBKDF2 work and secrets tried."""

from __future__ import annotations

import hashlib
from pathlib import Path

from iinode.identifiers import HandleName, HandleValue, IndexedHandle, SecKeyData, encode_record
from iinode.node.seckey_answers import check_answer, pbkdf2_body
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import DigestAlgorithm
from iinode.storage import MemoryStore

NONCE = bytes(range(16))
DIGEST = hashlib.sha256(b"request").digest()
KEY = b"s3cret"


def _pbkdf2(key: bytes, iterations: int, bits: int) -> bytes:
    body = pbkdf2_body(key, NONCE + DIGEST, salt=b"salt", iterations=iterations, bits=bits)
    return bytes([DigestAlgorithm.PBKDF2_HMAC_SHA1]) + body


def test_pbkdf2_work_is_bounded_by_iterations_times_blocks() -> None:
    for iterations, bits in ((10_000, 160), (10_000, 320), (5_000, 512), (20_000, 160)):
        assert check_answer(KEY, NONCE, DIGEST, _pbkdf2(KEY, iterations, bits), old_format=False)
    for iterations, bits in ((20_000, 512), (10_000, 512), (20_000, 168), (7_000, 512)):
        answer = _pbkdf2(KEY, iterations, bits)
        assert not check_answer(KEY, NONCE, DIGEST, answer, old_format=False), (iterations, bits)


async def test_an_answer_for_index_zero_tries_at_most_four_secrets(tmp_path: Path) -> None:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    service = HandleService(settings, MemoryStore())
    secrets = [f"secret-{n}".encode() for n in range(8)]
    record = [
        HandleValue(300 + n, "HS_SECKEY", SecKeyData(service.secrets.seal(s)))
        for n, s in enumerate(secrets)
    ]
    raw = encode_record(record)
    await service.store.modify("88.118.8/USER", lambda _old: raw)
    anyone = IndexedHandle(0, HandleName.parse("88.118.8/USER"))
    auth = service.auth
    first = _pbkdf2(secrets[0], 1000, 160)
    last = _pbkdf2(secrets[-1], 1000, 160)
    assert await auth.check_seckey_answer(anyone, NONCE, DIGEST, first)
    assert not await auth.check_seckey_answer(anyone, NONCE, DIGEST, last)
    # Naming the index still works for any of them.
    named = IndexedHandle(307, HandleName.parse("88.118.8/USER"))
    assert await auth.check_seckey_answer(named, NONCE, DIGEST, last)
