"""Authenticated administration over the native protocol (HS_SECKEY, HS_PUBKEY, sessions)."""

from __future__ import annotations

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
    SecKeyData,
    UrlData,
)
from iinode.node import dsa_keys as dsa
from iinode.node.public_keys import decode_public_key, encode_public_key
from iinode.proto import Credential, CredentialType, HandleBody, Message, OpCode, OpFlag
from iinode.resolution.native_admin import NativeAdminClient, PublicKeyAuth, SecretKeyAuth
from iinode.resolution.native_client import NativeClient
from native.nodes import SECRET, Node

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")
USER = IndexedHandle.parse("300:88.118.8/USER")


def url(index: int, text: str) -> HandleValue:
    return HandleValue(index, "URL", UrlData(text))


async def values_of(node: Node, handle: str) -> dict[int, bytes]:
    from iinode.proto import ResolutionRequest, ResolutionResponse
    from iinode.resolution.native_client import next_request_id

    request = Message(OpCode.RESOLUTION, ResolutionRequest(handle), request_id=next_request_id())
    response = await NativeClient().request(node.address, request)
    if response.response_code == ResponseCode.HANDLE_NOT_FOUND:
        return {}
    assert isinstance(response.body, ResolutionResponse)
    return {v.index: v.data.to_wire() for v in response.body.values}


async def test_seckey_create_add_modify_remove_delete(enterprise: Node) -> None:
    h = HandleName.parse("88.118.8/NEW")
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.create(h, [url(1, "http://a/")])
        assert (await values_of(enterprise, str(h)))[1] == b"http://a/"
        await admin.add_values(h, [url(2, "http://b/")])
        with pytest.raises(HandleError) as exists:
            await admin.add_values(h, [url(2, "http://c/")])
        assert exists.value.code == ResponseCode.VALUE_ALREADY_EXISTS
        await admin.modify_values(h, [url(2, "http://c/")])
        assert (await values_of(enterprise, str(h)))[2] == b"http://c/"
        with pytest.raises(HandleError) as missing:
            await admin.modify_values(h, [url(9, "http://z/")])
        assert missing.value.code == ResponseCode.VALUES_NOT_FOUND
        await admin.remove_values(h, [2])
        assert 2 not in await values_of(enterprise, str(h))
        assert "88.118.8/NEW" in await admin.list_handles(HandleName.parse("0.NA/88.118.8"))
        await admin.delete(h)
    assert await values_of(enterprise, str(h)) == {}


async def test_wrong_secret_is_refused_and_counted(enterprise: Node) -> None:
    before = enterprise.server.counters.auth_failures
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, "wrong")) as admin:
        with pytest.raises(HandleError) as refused:
            await admin.create(HandleName.parse("88.118.8/NO"), [url(1, "http://a/")])
    assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    assert enterprise.server.counters.auth_failures == before + 1
    assert await values_of(enterprise, "88.118.8/NO") == {}


@pytest.mark.parametrize("kind", ["rsa", "dsa"])
async def test_pubkey_identity_and_permission_bits(enterprise: Node, kind: str) -> None:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else dsa.generate_private_key(key_size=2048)
    )
    raw = encode_public_key(key.public_key())
    assert decode_public_key(raw).public_numbers() == key.public_key().public_numbers()
    owned = HandleName.parse("88.118.8/OWNED")
    grant = AdminPermission.ADD_VALUE | AdminPermission.MODIFY_VALUE | AdminPermission.REMOVE_VALUE
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.create(USER.handle, [HandleValue(300, "HS_PUBKEY", PubKeyData(raw))])
        await admin.create(
            owned, [url(1, "http://o/"), HandleValue(100, "HS_ADMIN", AdminData(grant, USER))]
        )
    async with NativeAdminClient(*enterprise.address, PublicKeyAuth(USER, key)) as user:
        await user.add_values(owned, [url(2, "http://u/")])  # granted
        with pytest.raises(HandleError) as denied:
            await user.delete(owned)  # DELETE_HANDLE not granted
        assert denied.value.code == ResponseCode.NOT_AUTHORIZED
        with pytest.raises(HandleError) as no_add:
            await user.create(HandleName.parse("88.118.8/MINE"), [url(1, "http://m/")])
        assert no_add.value.code == ResponseCode.NOT_AUTHORIZED
    assert (await values_of(enterprise, str(owned)))[2] == b"http://u/"
    assert await values_of(enterprise, "88.118.8/MINE") == {}


async def test_secret_key_of_a_plain_user_and_wrong_key_type(enterprise: Node) -> None:
    user = IndexedHandle.parse("301:88.118.8/U2")
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.create(user.handle, [HandleValue(301, "HS_SECKEY", SecKeyData(b"pw"))])
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(user, "pw")) as client:
        with pytest.raises(HandleError) as denied:  # authenticated, but no ADD_HANDLE bit
            await client.create(HandleName.parse("88.118.8/U3"), [url(1, "http://x/")])
        assert denied.value.code == ResponseCode.NOT_AUTHORIZED
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with NativeAdminClient(*enterprise.address, PublicKeyAuth(user, key)) as client:
        with pytest.raises(HandleError) as wrong:  # index 301 holds a secret, not a public key
            await client.create(HandleName.parse("88.118.8/U3"), [url(1, "http://x/")])
        assert wrong.value.code == ResponseCode.AUTHENTICATION_FAILED


async def test_session_skips_challenges_and_checks_the_mac(enterprise: Node) -> None:
    counters = enterprise.server.counters
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        session_id = await admin.open_session()
        assert session_id
        assert counters.sessions_opened == 1
        before = counters.requests
        for n in range(20):
            await admin.create(HandleName.parse(f"88.118.8/BULK-{n}"), [url(1, f"http://b/{n}")])
        # One message per write, and one challenge answer: the Diffie-Hellman session opens
        # unbound and its first write is challenged once.
        assert counters.requests == before + 21
        # A request whose MAC is wrong is refused and changes nothing.
        bad = Message(
            OpCode.DELETE_HANDLE, HandleBody("88.118.8/BULK-0"), flags=OpFlag.KA,
            request_id=424242, session_id=session_id,
            credential=Credential(str(ADMIN.handle), ADMIN.index, CredentialType.MAC,
                                  "HMAC-SHA256", b"\x00" * 32),
        )  # fmt: skip
        response = await admin._exchange(bad)
        assert response.response_code == ResponseCode.INVALID_CREDENTIAL
        await admin.close_session()
    assert (await values_of(enterprise, "88.118.8/BULK-0"))[1] == b"http://b/0"
    assert (await values_of(enterprise, "88.118.8/BULK-19"))[1] == b"http://b/19"


async def test_a_changed_secret_takes_effect_at_once(enterprise: Node) -> None:
    na = HandleName.parse("0.NA/88.118.8")
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.modify_values(na, [HandleValue(300, "HS_SECKEY", SecKeyData(b"new-secret"))])
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as old:
        with pytest.raises(HandleError) as refused:
            await old.create(HandleName.parse("88.118.8/K1"), [url(1, "http://k/1")])
        assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, "new-secret")) as new:
        await new.create(HandleName.parse("88.118.8/K1"), [url(1, "http://k/1")])
    assert (await values_of(enterprise, "88.118.8/K1"))[1] == b"http://k/1"
