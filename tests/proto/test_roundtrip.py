"""Table-driven round trips: every message layout and every value type, plus bad input."""

from __future__ import annotations

import pytest

from iinode.codes import ResponseCode
from iinode.errors import LocalProtocolError, RemoteProtocolError
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    AliasData,
    BinaryData,
    EmailData,
    HandleValue,
    IndexedHandle,
    PubKeyData,
    SecKeyData,
    ServData,
    StringData,
    UrlData,
    VListData,
    site_for,
)
from iinode.identifiers.wire import WireWriter
from iinode.proto import (
    ChallengeAnswer,
    ChallengeBody,
    Credential,
    DigestAlgorithm,
    EmptyBody,
    EnvelopeFlag,
    ErrorBody,
    HandleBody,
    KeyExchangeMode,
    ListHandlesResponse,
    Message,
    OpaqueBody,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    ReferralResponse,
    RemoveValueRequest,
    RequestDigest,
    ResolutionRequest,
    ResolutionResponse,
    SessionExchangeKeyRequest,
    SessionSetupRequest,
    SessionSetupResponse,
    SiteInfoResponse,
    ValuesRequest,
    VerifyRequest,
    VerifyResponse,
)

ADMIN = IndexedHandle.parse("300:0.NA/88")
SITE = site_for("10.0.0.1", http_port=8000, handle_port=2641, description="top")
PUBKEY = PubKeyData(WireWriter().utf8("RSA_PUB_KEY").u16(0).byte_string(b"\x01\x00\x01").getvalue())

VALUES = [
    HandleValue(1, "URL", UrlData("https://example.cn/a")),
    HandleValue(2, "EMAIL", EmailData("ops@example.cn")),
    HandleValue(3, "DESC", StringData("机床 #7")),
    HandleValue(4, "BLOB", BinaryData(b"\xff\x00\x80")),
    HandleValue(100, "HS_ADMIN", AdminData(AdminPermission.all(), ADMIN)),
    HandleValue(101, "HS_SITE", SITE),
    HandleValue(102, "HS_VLIST", VListData((ADMIN, IndexedHandle.parse("1:88.1/x")))),
    HandleValue(300, "HS_PUBKEY", PUBKEY),
    HandleValue(301, "HS_SECKEY", SecKeyData(b"secret")),
    HandleValue(5, "HS_ALIAS", AliasData("88.1/other")),
    HandleValue(6, "HS_SERV", ServData("0.NA/88")),
    HandleValue(7, "URL", UrlData("http://a.cn/"), ttl=-5, references=(ADMIN,)),
]

OK = ResponseCode.SUCCESS
MESSAGES = [
    Message(OpCode.RESOLUTION, ResolutionRequest("88.1/x", (1, 2), ("URL", "HS_"))),
    Message(OpCode.RESOLUTION, ResolutionResponse("88.1/x", tuple(VALUES)), OK),
    Message(OpCode.GET_SITEINFO, OptionalHandleBody("/")),
    Message(OpCode.GET_SITEINFO, SiteInfoResponse(SITE), OK),
    Message(OpCode.CREATE_HANDLE, ValuesRequest("88.1/new", tuple(VALUES[:3]))),
    Message(OpCode.CREATE_HANDLE, OptionalHandleBody("88.1/new"), OK),
    Message(OpCode.CREATE_HANDLE, OptionalHandleBody(), OK),
    Message(OpCode.DELETE_HANDLE, HandleBody("88.1/x")),
    Message(OpCode.DELETE_HANDLE, EmptyBody(), OK),
    Message(OpCode.ADD_VALUE, ValuesRequest("88.1/x", (VALUES[0],)), flags=OpFlag.OW),
    Message(OpCode.ADD_VALUE, EmptyBody(), OK),
    Message(OpCode.REMOVE_VALUE, RemoveValueRequest("88.1/x", (1, 2, 3))),
    Message(OpCode.REMOVE_VALUE, EmptyBody(), OK),
    Message(OpCode.MODIFY_VALUE, ValuesRequest("88.1/x", (VALUES[4],))),
    Message(OpCode.MODIFY_VALUE, EmptyBody(), OK),
    Message(OpCode.LIST_HANDLES, HandleBody("0.NA/88.1")),
    Message(OpCode.LIST_HANDLES, ListHandlesResponse(("88.1/a", "88.1/b")), OK),
    Message(OpCode.LIST_NAS, HandleBody("0.NA/88")),
    Message(OpCode.LIST_NAS, ListHandlesResponse(("0.NA/88.1",)), OK),
    Message(OpCode.CREATE_HANDLE, ChallengeBody(b"n" * 16), ResponseCode.AUTHENTICATION_NEEDED),
    Message(OpCode.CHALLENGE_RESPONSE, ChallengeAnswer("HS_PUBKEY", "0.NA/88", 300, b"sig")),
    Message(OpCode.VERIFY_RESPONSE, VerifyRequest("0.NA/88", 301, b"nonce", b"dig", b"mac")),
    Message(OpCode.VERIFY_RESPONSE, VerifyResponse(True), OK),
    Message(OpCode.SESSION_SETUP, SessionSetupRequest(KeyExchangeMode.CIPHER_CLIENT, 60,
                                                      "0.NA/88", 300, public_key=b"pk")),
    Message(OpCode.SESSION_SETUP, SessionSetupRequest(KeyExchangeMode.CIPHER_HDL, 60, "0.NA/88",
                                                      300, exchange_key_handle="0.NA/88",
                                                      exchange_key_index=301)),
    Message(OpCode.SESSION_SETUP, SessionSetupRequest(KeyExchangeMode.CIPHER_SERVER)),
    Message(OpCode.SESSION_SETUP, SessionSetupResponse(KeyExchangeMode.CIPHER_CLIENT, b"k"), OK),
    Message(OpCode.SESSION_EXCHANGEKEY, SessionExchangeKeyRequest(b"encrypted")),
    Message(OpCode.SESSION_EXCHANGEKEY, EmptyBody(), OK),
    Message(OpCode.SESSION_TERMINATE, OptionalHandleBody()),
    Message(OpCode.SESSION_TERMINATE, EmptyBody(), OK),
    Message(OpCode.RESOLUTION, ReferralResponse("0.NA/88", (VALUES[5],)),
            ResponseCode.SERVICE_REFERRAL),
    Message(OpCode.RESOLUTION, ErrorBody("bad", (4, 5)), ResponseCode.VALUE_INVALID),
    Message(OpCode.RESOLUTION, ErrorBody("later"), ResponseCode(999)),
    Message(OpCode(7777), OpaqueBody(b"\x00\x01future")),
    Message(OpCode.DELETE_HANDLE, EmptyBody(), OK, OpFlag.RD | OpFlag.AT, request_id=2**32 - 1,
            session_id=5, site_serial=65535, recursion_count=255, expiration=2**32 - 1,
            request_digest=RequestDigest(DigestAlgorithm.SHA256, bytes(32)),
            credential=Credential("0.NA/88", 300, "HS_MAC", "HMAC-SHA256", b"m" * 32),
            version=(2, 10), envelope_flags=EnvelopeFlag.TC | EnvelopeFlag(0x0400),
            suggested_version=(2, 11)),
    Message(OpCode.DELETE_HANDLE, EmptyBody(), OK, OpFlag.RD,
            request_digest=RequestDigest(DigestAlgorithm.MD5_OLD_FORMAT, b"d" * 16)),
]  # fmt: skip


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{m.opcode.name}-{m.body!r:.40}")
def test_message_round_trip(message: Message) -> None:
    wire = message.to_wire()
    decoded = Message.from_wire(wire)
    assert decoded == message
    assert decoded.to_wire() == wire
    assert decoded.signed_data() == message.signed_data()


@pytest.mark.parametrize("value", VALUES, ids=lambda v: v.type)
def test_value_round_trip(value: HandleValue) -> None:
    assert HandleValue.from_wire(value.to_wire()) == value


def test_reply_echoes_request_and_digest() -> None:
    req = Message(OpCode.RESOLUTION, ResolutionRequest("88.1/x"), flags=OpFlag.RD, request_id=42,
                  session_id=3)  # fmt: skip
    decoded = Message.from_wire(req.to_wire())
    answer = decoded.reply(ResolutionResponse("88.1/x", (VALUES[0],)), flags=OpFlag.AT)
    assert (answer.request_id, answer.session_id) == (42, 3)
    assert answer.flags == OpFlag.AT | OpFlag.REC | OpFlag.RD
    # a 2.1 request: the answer is written in 2.1, whose request digest is SHA-1
    assert (answer.version, answer.suggested_version) == ((2, 1), (2, 11))
    assert answer.request_digest == RequestDigest.of(req.signed_data(), DigestAlgorithm.SHA1)
    err = req.error_reply(ResponseCode.HANDLE_NOT_FOUND, "no such handle")
    assert Message.from_wire(err.to_wire()).body == ErrorBody("no such handle")


def test_java_style_session_setup_padding_is_accepted() -> None:
    msg = Message(OpCode.SESSION_SETUP, SessionSetupRequest(KeyExchangeMode.CIPHER_SERVER))
    signed = bytearray(msg.signed_data())
    signed[20:24] = (len(signed) - 24 + 2).to_bytes(4, "big")
    payload = bytes(signed) + b"\x00\x00" + b"\x00" * 4
    wire = msg.envelope(length=len(payload)).to_wire() + payload
    assert Message.from_wire(wire).body == msg.body


BAD_BUILDS = [
    lambda: Message(OpCode.RESOLUTION, EmptyBody()),
    lambda: Message(OpCode.RESOLUTION, ResolutionRequest("x"), request_id=2**32),
    lambda: Message(OpCode.RESOLUTION, ResolutionRequest("x"), recursion_count=256),
    lambda: Message(OpCode.RESOLUTION, ResolutionRequest("x"), envelope_flags=EnvelopeFlag.CP),
    lambda: Message(OpCode.RESOLUTION, EmptyBody(), OK, OpFlag.RD),
    lambda: Message(OpCode.RESOLUTION, ResolutionRequest("x"), version=(256, 0)),
    lambda: ResolutionRequest("x", (-1,)),
    lambda: ResolutionRequest("x", types="URL"),  # type: ignore[arg-type]
    lambda: ErrorBody(b"text"),  # type: ignore[arg-type]
    lambda: RequestDigest(DigestAlgorithm.SHA1, b"short"),
    lambda: Credential("0.NA/88", -1),
]


@pytest.mark.parametrize("build", BAD_BUILDS)
def test_invalid_messages_raise_local_protocol_error(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


GOOD = Message(OpCode.RESOLUTION, ResolutionRequest("88.1/x", (), ("URL",))).to_wire()
BAD_WIRE = {
    "empty": b"",
    "short envelope": GOOD[:19],
    "wrong major version": b"\x05" + GOOD[1:],
    "length lies (long)": GOOD + b"\x00",
    "length lies (short)": GOOD[:-1],
    "compressed": GOOD[:2] + b"\x80\x00" + GOOD[4:],
    "body length past end": GOOD[:40] + b"\x00\x00\x01\x00" + GOOD[44:],
    "type count lies": GOOD.replace(b"\x00\x00\x00\x01\x00\x00\x00\x03URL", b"\x00\x00\x00\x09"
                                    b"\x00\x00\x00\x03URL"),
    "credential length lies": GOOD[:-4] + b"\x00\x00\x00\x07",
}  # fmt: skip


@pytest.mark.parametrize("wire", BAD_WIRE.values(), ids=BAD_WIRE.keys())
def test_malformed_wire_raises_remote_protocol_error(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        Message.from_wire(wire)
