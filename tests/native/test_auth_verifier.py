"""Native HS_SECKEY challenges against SCRAM verifiers: what a reader of the store can't do."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3

import pytest

from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers import HandleName, IndexedHandle, SecKeyData, decode_record
from iinode.node.auth import KDF_NAME, SECKEY_AUTH, KeyDerivation
from iinode.node.verifier import SecretVerifier
from iinode.proto import ChallengeAnswer, ChallengeBody
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from native.nodes import SECRET, Node, url

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")


def stolen_verifier(node: Node) -> SecretVerifier:
    """The HS_SECKEY of 300:0.NA/88.118.8 as read straight from the database file."""
    db = sqlite3.connect(node.settings.data_dir / "handles.sqlite3")
    try:
        (raw,) = db.execute(
            "SELECT data FROM handles WHERE handle = ?", ("0.NA/88.118.8",)
        ).fetchone()
    finally:
        db.close()
    value = next(v for v in decode_record(bytes(raw)) if v.index == 300)
    assert isinstance(value.data, SecKeyData)
    return SecretVerifier.parse(value.data.raw)


class StolenKeyClient(NativeAdminClient):
    """Answers challenges with what the stolen verifier offers instead of the secret."""

    def __init__(self, node: Node, answer: str) -> None:
        super().__init__(*node.address, SecretKeyAuth(ADMIN, "unknown"))
        self.verifier = stolen_verifier(node)
        self.how = answer

    def _answer(
        self,
        challenge: ChallengeBody,
        digest: bytes,
        derivation: KeyDerivation | None,
        *,
        first: bool,
    ) -> ChallengeAnswer:
        message = challenge.nonce + digest
        stored = self.verifier.stored_key
        signature = hmac.new(stored, message, hashlib.sha256).digest()
        proof = {
            # the old scheme: the stored hash used as the HMAC key
            "stored-as-key": signature,
            # SCRAM's proof with StoredKey standing in for ClientKey
            "stored-as-client-key": bytes(a ^ b for a, b in zip(stored, signature, strict=True)),
            "server-key": hmac.new(self.verifier.server_key, message, hashlib.sha256).digest(),
        }[self.how]
        return ChallengeAnswer(SECKEY_AUTH, str(ADMIN.handle), ADMIN.index, proof)


@pytest.mark.parametrize("how", ["stored-as-key", "stored-as-client-key", "server-key"])
async def test_a_reader_of_the_store_cannot_answer_a_challenge(enterprise: Node, how: str) -> None:
    async with StolenKeyClient(enterprise, how) as thief:
        with pytest.raises(HandleError) as refused:
            await thief.create(HandleName.parse("88.118.8/STOLEN"), [url(1, "http://x/")])
    assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        with pytest.raises(HandleError) as missing:
            await admin.delete(HandleName.parse("88.118.8/STOLEN"))
    assert missing.value.code == ResponseCode.HANDLE_NOT_FOUND


async def test_challenge_announces_the_verifier_parameters(enterprise: Node) -> None:
    verifier = stolen_verifier(enterprise)
    seen: list[ChallengeBody] = []

    class Watching(NativeAdminClient):
        def _answer(
            self,
            challenge: ChallengeBody,
            digest: bytes,
            derivation: KeyDerivation | None,
            *,
            first: bool,
        ) -> ChallengeAnswer:
            seen.append(challenge)
            return super()._answer(challenge, digest, derivation, first=first)

    async with Watching(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.create(HandleName.parse("88.118.8/SEEN"), [url(1, "http://s/")])
    announced = [c for c in seen if c.kdf]
    assert announced, seen
    assert announced[-1].kdf == KDF_NAME == "SCRAM-SHA-256"
    assert (announced[-1].salt, announced[-1].iterations) == (verifier.salt, verifier.iterations)


async def test_unknown_and_known_identities_get_alike_challenges(enterprise: Node) -> None:
    """An unknown identity is challenged with stable made-up parameters, refused alike."""
    nobody = IndexedHandle.parse("300:88.118.8/NOBODY")
    messages = []
    for who, secret in ((ADMIN, "wrong"), (nobody, SECRET)):
        async with NativeAdminClient(*enterprise.address, SecretKeyAuth(who, secret)) as c:
            with pytest.raises(HandleError) as refused:
                await c.create(HandleName.parse("88.118.8/NO"), [url(1, "http://n/")])
        assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
        messages.append(refused.value.message.replace(str(who), "ID"))
    assert messages[0] == messages[1]
