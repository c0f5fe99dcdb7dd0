"""Golden wire vectors written by hand from the field layouts of RFC 3651/3652.

Each vector is spelled out field by field (big-endian), independent of the
codec; a test checks both directions: the bytes decode to the expected message
and the message encodes to exactly those bytes.
"""

from __future__ import annotations

import pytest

from iinode.codes import ResponseCode
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleValue,
    HashOption,
    IndexedHandle,
    Interface,
    Permissions,
    Server,
    ServiceType,
    SiteData,
    TransportProtocol,
    UrlData,
    VListData,
)
from iinode.identifiers.wire import WireReader
from iinode.proto import (
    ChallengeAnswer,
    ChallengeBody,
    Credential,
    DigestAlgorithm,
    EmptyBody,
    ErrorBody,
    Message,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    ReferralResponse,
    RequestDigest,
    ResolutionRequest,
    ResolutionResponse,
    SiteInfoResponse,
    to_packets,
)


def h(*fields: str) -> bytes:
    """Concatenate hex fields (spaces ignored)."""
    return bytes.fromhex("".join(fields))


NA_88 = "00000007 302e4e412f3838"  # UTF8-String "0.NA/88"
H_88_1_A = "00000006 38382e312f61"  # UTF8-String "88.1/a"
NO_CREDENTIAL = "00000000"


def envelope(request_id: str, length: str, seq: str = "00000000", session: str = "00000000") -> str:
    # MajorVersion 2, MinorVersion 1, MessageFlag 0
    return "02 01 0000" + session + request_id + seq + length


def header(opcode: str, rc: str, flags: str, body_length: str) -> str:
    # SiteInfoSerialNumber 0, RecursionCount 0, reserved 0, ExpirationTime 0
    return opcode + rc + flags + "0000 00 00 00000000" + body_length


URL_VALUE = (
    "00000001"  # index 1
    "5f5e1000"  # timestamp 1600000000
    "00"  # TTL type relative
    "00015180"  # TTL 86400
    "0e"  # admin read | admin write | public read
    "00000003 55524c"  # type "URL"
    "0000000c 687474703a2f2f782e636e2f"  # data "http://x.cn/"
    "00000000"  # no references
)
URL_HV = HandleValue(
    1, "URL", UrlData("http://x.cn/"), 86400, timestamp=1600000000, permissions=Permissions(0x0E)
)

CASES: list[tuple[str, bytes, Message]] = [
    (
        "resolution request, all values, REC|PO",
        h(
            envelope("01020304", "0000002f"),
            header("00000001", "00000000", "11000000", "00000013"),
            NA_88,
            "00000000",
            "00000000",
            NO_CREDENTIAL,
        ),
        Message(
            OpCode.RESOLUTION,
            ResolutionRequest("0.NA/88"),
            flags=OpFlag.REC | OpFlag.PO,
            request_id=0x01020304,
        ),
    ),
    (
        "resolution request for index 100 and type HS_SITE",
        h(
            envelope("00000001", "0000003e"),
            header("00000001", "00000000", "00000000", "00000022"),
            NA_88,
            "00000001 00000064",
            "00000001 00000007 48535f53495445",
            NO_CREDENTIAL,
        ),
        Message(
            OpCode.RESOLUTION, ResolutionRequest("0.NA/88", (100,), ("HS_SITE",)), request_id=1
        ),
    ),
    (
        "resolution response with one URL value, AT",
        h(
            envelope("00000002", "00000053"),
            header("00000001", "00000001", "80000000", "00000037"),
            H_88_1_A,
            "00000001",
            URL_VALUE,
            NO_CREDENTIAL,
        ),
        Message(
            OpCode.RESOLUTION,
            ResolutionResponse("88.1/a", (URL_HV,)),
            ResponseCode.SUCCESS,
            OpFlag.AT,
            request_id=2,
        ),
    ),
    (
        "HANDLE_NOT_FOUND error",
        h(
            envelope("00000009", "00000029"),
            header("00000001", "00000064", "00000000", "0000000d"),
            "00000009 6e6f7420666f756e64",
            NO_CREDENTIAL,
        ),
        Message(
            OpCode.RESOLUTION, ErrorBody("not found"), ResponseCode.HANDLE_NOT_FOUND, request_id=9
        ),
    ),
    (
        "delete-handle success with an MD5 request digest (RD)",
        h(
            envelope("00000003", "0000002d"),
            header("00000065", "00000001", "00800000", "00000011"),
            "01",
            "000102030405060708090a0b0c0d0e0f",
            NO_CREDENTIAL,
        ),
        Message(
            OpCode.DELETE_HANDLE,
            EmptyBody(),
            ResponseCode.SUCCESS,
            OpFlag.RD,
            request_id=3,
            request_digest=RequestDigest(DigestAlgorithm.MD5, bytes(range(16))),
        ),
    ),
    (
        "get-siteinfo request with an empty body",
        h(
            envelope("00000004", "0000001c"),
            header("00000002", "00000000", "00000000", "00000000"),
            NO_CREDENTIAL,
        ),
        Message(OpCode.GET_SITEINFO, OptionalHandleBody(), request_id=4),
    ),
    (
        "PREFIX_REFERRAL naming a service handle, no values",
        h(
            envelope("00000005", "0000002b"),
            header("00000001", "0000012f", "00000000", "0000000f"),
            NA_88,
            "00000000",
            NO_CREDENTIAL,
        ),
        Message(
            OpCode.RESOLUTION,
            ReferralResponse("0.NA/88"),
            ResponseCode.PREFIX_REFERRAL,
            request_id=5,
        ),
    ),
    (
        "AUTHENTICATION_NEEDED challenge with a 4-octet nonce, session 7",
        h(
            envelope("00000006", "00000024", session="00000007"),
            header("00000064", "00000192", "00000000", "00000008"),
            "00000004 cafebabe",
            NO_CREDENTIAL,
        ),
        Message(
            OpCode.CREATE_HANDLE,
            ChallengeBody(b"\xca\xfe\xba\xbe"),
            ResponseCode.AUTHENTICATION_NEEDED,
            request_id=6,
            session_id=7,
        ),
    ),
    (
        "CHALLENGE_RESPONSE answer with HS_SECKEY",
        h(
            envelope("00000006", "00000040"),
            header("000000c8", "00000000", "00000000", "00000024"),
            "00000009 48535f5345434b4559",
            NA_88,
            "0000012c",
            "00000004 01020304",
            NO_CREDENTIAL,
        ),
        Message(
            OpCode.CHALLENGE_RESPONSE,
            ChallengeAnswer("HS_SECKEY", "0.NA/88", 300, b"\x01\x02\x03\x04"),
            request_id=6,
        ),
    ),
]


@pytest.mark.parametrize(("name", "wire", "message"), CASES, ids=[c[0] for c in CASES])
def test_golden_message(name: str, wire: bytes, message: Message) -> None:
    assert Message.from_wire(wire) == message
    assert message.to_wire() == wire


CREDENTIAL_SECTION = h(
    "00000037",  # CredentialLength 55
    "00 00 0000",  # version, reserved, options
    NA_88,
    "0000012c",  # signer 300:0.NA/88
    "00000009 48535f5349474e4544",  # type "HS_SIGNED"
    "00000013",  # SignedInfo length 19
    "00000007 5348412d323536",  # digest algorithm "SHA-256"
    "00000004 deadbeef",  # signed data
)


def test_golden_credential() -> None:
    cred = Credential("0.NA/88", 300, "HS_SIGNED", "SHA-256", b"\xde\xad\xbe\xef")
    assert cred.to_wire() == CREDENTIAL_SECTION
    assert Credential.read_section(WireReader(CREDENTIAL_SECTION)) == cred


def test_golden_signed_message() -> None:
    wire = h(
        envelope("0000000a", "00000053"),
        header("00000065", "00000001", "00000000", "00000000"),
        CREDENTIAL_SECTION.hex(),
    )
    cred = Credential("0.NA/88", 300, "HS_SIGNED", "SHA-256", b"\xde\xad\xbe\xef")
    msg = Message(
        OpCode.DELETE_HANDLE, EmptyBody(), ResponseCode.SUCCESS, request_id=10, credential=cred
    )
    assert msg.to_wire() == wire
    decoded = Message.from_wire(wire)
    assert decoded == msg
    assert decoded.signed_data() == wire[20:44]


def test_golden_hs_admin() -> None:
    wire = h("0fff", NA_88, "0000012c")
    data = AdminData(AdminPermission.all(), IndexedHandle.parse("300:0.NA/88"))
    assert data.to_wire() == wire
    assert AdminData.from_wire(wire) == data


def test_golden_hs_vlist() -> None:
    wire = h("00000002", NA_88, "0000012c", H_88_1_A, "00000064")
    data = VListData((IndexedHandle.parse("300:0.NA/88"), IndexedHandle.parse("100:88.1/a")))
    assert data.to_wire() == wire
    assert VListData.from_wire(wire) == data


SITE = h(
    "0001",  # HS_SITE version 1
    "02 0a",  # protocol version 2.10
    "0001",  # serial number
    "80",  # primary mask: primary site
    "02",  # hash option: by handle
    "00000000",  # empty hash filter
    "00000001 00000004 64657363 00000002 6f6b",  # one attribute desc=ok
    "00000001",  # one server
    "00000001",  # server id 1
    "00000000 00000000 00000000 7f000001",  # 127.0.0.1 in 16 octets
    "00000000",  # no public key
    "00000002",  # two interfaces
    "03 01 00000a51",  # admin+query, TCP, port 2641
    "02 00 00000a51",  # query, UDP, port 2641
)
SITE_DATA = SiteData(
    (
        Server(
            1,
            "127.0.0.1",
            (
                Interface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.TCP, 2641),
                Interface(ServiceType.QUERY, TransportProtocol.UDP, 2641),
            ),
        ),
    ),
    serial=1,
    hash_option=HashOption.BY_HANDLE,
    attributes=(("desc", "ok"),),
)


def test_golden_hs_site() -> None:
    assert SITE_DATA.to_wire() == SITE
    assert SiteData.from_wire(SITE) == SITE_DATA


def test_golden_siteinfo_response() -> None:
    body_len = len(SITE)
    wire = h(
        envelope("0000000b", f"{24 + body_len + 4:08x}"),
        header("00000002", "00000001", "00000000", f"{body_len:08x}"),
        SITE.hex(),
        NO_CREDENTIAL,
    )
    msg = Message(
        OpCode.GET_SITEINFO, SiteInfoResponse(SITE_DATA), ResponseCode.SUCCESS, request_id=11
    )
    assert msg.to_wire() == wire
    assert Message.from_wire(wire) == msg


def test_golden_udp_split() -> None:
    """A 600-octet message: packet 0 holds 492 octets, packet 1 the last 108."""
    big = HandleValue(1, "URL", UrlData("http://x.cn/" + "a" * 517))
    msg = Message(
        OpCode.RESOLUTION,
        ResolutionResponse("88.1/a", (big,)),
        ResponseCode.SUCCESS,
        request_id=0x2A,
    )
    payload = msg.to_wire()[20:]
    assert len(payload) == 600
    first, second = to_packets(msg)
    assert first == h(envelope("0000002a", "00000258", seq="00000000")) + payload[:492]
    assert second == h(envelope("0000002a", "00000258", seq="00000001")) + payload[492:]
    assert len(first) == 512
