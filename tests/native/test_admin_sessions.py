"""iinode's admin client opens sessions as a stock Handle.Net client does, against iinode's server.

Reference facts pinned here (Handle.Net 9 ``hdllib`` and server; checked by hand against
the stock 9.2 server, see docs/interop.md):

* the default session is Diffie-Hellman (``SessionSetupInfo``), set up with a certified
  SESSION_SETUP whose answer is signed with the server key of the site;
* every request in the session carries an HS_MAC with an empty signer, the session
  counter (from 1) in the signer index, HMAC-SHA256 over versions, suggested version,
  session id, request id and counter, then header and body
  (``AbstractRequest.signMessageForSession``), in the version the set-up was answered in;
* the first administrative request of the unbound session is challenged under the
  session's id and answered by a CHALLENGE_RESPONSE without credential;
* a Handle.Net server writes two zero octets after a SESSION_SETUP answer's data
  (``Encoder.encodeSessionSetupResponse`` sizes the mode as an int) and four after an
  RSA key's modulus (``Util.getBytesFromPublicKey`` sizes four length fields).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from iinode.codes import ResponseCode
from iinode.errors import AuthenticationFailed, HandleError
from iinode.identifiers import HandleName, HandleValue, IndexedHandle, UrlData
from iinode.identifiers.wire import WireReader, WireWriter
from iinode.node.public_keys import decode_public_key, encode_public_key
from iinode.node.server_keys import load_server_key
from iinode.proto import (
    CredentialType,
    HandleBody,
    KeyExchangeMode,
    Message,
    OpCode,
    OpFlag,
    SessionSetupResponse,
)
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_client import next_request_id
from iinode.resolution.native_signing import verify_mac
from native.nodes import SECRET, Node

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")


def url(index: int, text: str) -> HandleValue:
    return HandleValue(index, "URL", UrlData(text))


async def test_a_dh_session_creates_modifies_and_deletes(enterprise: Node) -> None:
    key = load_server_key(enterprise.settings.data_dir).public_bytes
    counters = enterprise.server.counters
    handle = HandleName.parse("88.118.8/DH-1")
    async with NativeAdminClient(
        *enterprise.address, SecretKeyAuth(ADMIN, SECRET), server_key=key
    ) as admin:
        session_id = await admin.open_session()
        assert 0 < session_id < 2**31
        assert counters.sessions_opened == 1
        before = counters.requests
        await admin.create(handle, [url(1, "http://dh/1")])  # challenged once: binds the session
        assert counters.requests == before + 2
        await admin.modify_values(handle, [url(1, "http://dh/2")])
        await admin.add_values(handle, [url(2, "http://dh/3")])
        assert counters.requests == before + 4  # by the MAC alone from now on
        await admin.delete(handle)
        await admin.close_session()
        assert admin.session_id == 0
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as check:
        with pytest.raises(HandleError) as gone:
            await check.delete(handle)
        assert gone.value.code == ResponseCode.HANDLE_NOT_FOUND


async def test_session_requests_carry_the_reference_mac_with_rising_counters(
    enterprise: Node,
) -> None:
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.open_session()
        plain = Message(OpCode.DELETE_HANDLE, HandleBody("88.118.8/X"), request_id=7)
        first, second = admin._sign(plain), admin._sign(plain)
        for n, signed in enumerate((first, second), start=1):
            cred = signed.credential
            assert cred is not None
            assert (cred.type, cred.signer_handle, cred.signer_index) == (CredentialType.MAC, "", n)
            assert cred.digest_algorithm == "HMAC-SHA256"
            assert signed.session_id == admin.session_id
            assert verify_mac(signed, admin._session_key)
        assert not verify_mac(first, bytes(32))


async def test_a_set_up_answer_not_signed_by_the_known_key_is_refused(enterprise: Node) -> None:
    other = encode_public_key(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    )
    auth = SecretKeyAuth(ADMIN, SECRET)
    async with NativeAdminClient(*enterprise.address, auth, server_key=other) as admin:
        with pytest.raises(HandleError) as refused:
            await admin.open_session()
        assert refused.value.code == ResponseCode.SESSION_FAILED
        assert admin.session_id == 0


async def test_a_session_with_a_wrong_secret_writes_nothing(enterprise: Node) -> None:
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, "wrong")) as admin:
        await admin.open_session()  # opens unbound: nobody is named yet
        with pytest.raises(HandleError) as refused:
            await admin.create(HandleName.parse("88.118.8/DH-NO"), [url(1, "http://no/")])
        assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as check:
        with pytest.raises(HandleError) as absent:
            await check.delete(HandleName.parse("88.118.8/DH-NO"))
        assert absent.value.code == ResponseCode.HANDLE_NOT_FOUND


async def test_cipher_client_sessions_use_the_reference_mac_too(enterprise: Node) -> None:
    counters = enterprise.server.counters
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.open_session(exchange=KeyExchangeMode.CIPHER_CLIENT)
        before = counters.requests
        await admin.create(HandleName.parse("88.118.8/CC-1"), [url(1, "http://cc/1")])
        assert counters.requests == before + 1  # bound at set-up: no challenge
        signed = admin._sign(
            Message(
                OpCode.DELETE_HANDLE,
                HandleBody("88.118.8/CC-1"),
                request_id=next_request_id(),
                flags=OpFlag.KA,
            )
        )
        assert signed.credential is not None
        assert signed.credential.signer_handle == ""
        await admin.delete(HandleName.parse("88.118.8/CC-1"))
        await admin.close_session()


def test_a_reference_session_setup_answer_with_its_two_trailing_octets_is_read() -> None:
    data = b"\x00\x00\x00\x03" + b"DH key octets"
    body = WireWriter().u16(4).byte_string(data).getvalue() + b"\x00\x00"
    read = SessionSetupResponse.read(WireReader(body))
    assert read == SessionSetupResponse(KeyExchangeMode.DIFFIE_HELLMAN, data)
    with pytest.raises(HandleError):
        SessionSetupResponse.read(WireReader(body[:-2] + b"\x00\x01"))


def test_a_reference_rsa_key_with_its_four_trailing_octets_is_read() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ours = encode_public_key(key)
    java = ours + bytes(4)  # what Util.getBytesFromPublicKey writes for an RSA key
    assert decode_public_key(java).public_numbers() == key.public_numbers()
    assert decode_public_key(ours).public_numbers() == key.public_numbers()
    with pytest.raises(AuthenticationFailed):
        decode_public_key(ours + b"\x00\x00\x00\x01")
    with pytest.raises(AuthenticationFailed):
        decode_public_key(ours + bytes(2))
