"""Golden vectors of the Handle protocol as the Handle.Net 9 reference writes it.

The octets are spelled out field by field from RFC 3652 (envelope, header,
body) and from what the reference encoder puts in the fields the RFC leaves
open (``Encoder.encodeEnvelope``, ``writeHeader``, ``AbstractResponse``):

- MessageFlag: the suggested major version in the two low bits of its first
  octet, the suggested minor version in its second; zero means "none stated";
- a stock ``HandleResolver`` resolution: version 2.10 (what a site of version
  2.10 gets), suggesting 2.11, op flags REC|CA|PO, the site's serial number,
  ExpirationTime now + 12 hours, no credential;
- the server's answer: written in the version the request suggests (at most
  2.11), suggesting 2.11, REC plus the request's AT, CT, CA, PO and DNRF, the
  request digest of the answer's version (SHA-1 from 2.1, SHA-256 from 2.7);
- a request of several UDP packets has TC in each packet; an answer does not.
"""

from __future__ import annotations

import hashlib

import pytest

from iinode.codes import ResponseCode
from iinode.errors import LocalProtocolError
from iinode.identifiers import HandleValue, Permissions, UrlData
from iinode.proto import (
    DigestAlgorithm,
    Envelope,
    EnvelopeFlag,
    Message,
    OpCode,
    OpFlag,
    RequestDigest,
    ResolutionRequest,
    ResolutionResponse,
    digest_algorithm_for,
    to_packets,
)


def h(*fields: str) -> bytes:
    return bytes.fromhex("".join(fields))


EXPIRES = 0x69F0C3A0  # a request's "now + 12 hours"
ANSWER_EXPIRES = 0x69F0C3A5  # the server's, a few seconds later

#: What HandleResolver.resolveHandle("88.118.8/X") sends to a site of version 2.10 (serial 1).
STOCK_REQUEST = h(
    "02 0a",  # MajorVersion 2, MinorVersion 10
    "02 0b",  # MessageFlag: no CP/EC/TC; suggested version 2.11
    "00000000",  # SessionId
    "1234abcd",  # RequestId
    "00000000",  # SequenceNumber
    "00000032",  # MessageLength: 24 + 22 + 4
    "00000001",  # OpCode RESOLUTION
    "00000000",  # ResponseCode 0 (a request)
    "19000000",  # OpFlag REC | CA | PO
    "0001",  # SiteInfoSerialNumber
    "00",  # RecursionCount
    "00",  # reserved
    "69f0c3a0",  # ExpirationTime
    "00000016",  # BodyLength
    "0000000a 38382e3131382e382f58",  # "88.118.8/X"
    "00000000",  # no indexes
    "00000000",  # no types
    "00000000",  # no credential
)

URL_VALUE = (
    "00000001 5f5e1000 00 00015180 0e"  # index 1, timestamp, relative TTL 86400, PUB_READ...
    "00000003 55524c"  # "URL"
    "0000000c 687474703a2f2f782e636e2f"  # "http://x.cn/"
    "00000000"  # no references
)
URL_HV = HandleValue(
    1, "URL", UrlData("http://x.cn/"), 86400, timestamp=1600000000, permissions=Permissions(0x0E)
)

#: The node's answer to STOCK_REQUEST (the node's stamp sets ExpirationTime and the site serial).
#: The reference server's ``sendResponse`` also sets AT when its site is primary; the node does
#: not (no client reads AT in an answer).
STOCK_ANSWER = h(
    "02 0b",  # written in 2.11, what the request suggested
    "02 0b",  # suggesting 2.11
    "00000000",
    "1234abcd",  # the request's id
    "00000000",
    "00000057",  # 24 + 59 + 4
    "00000001",  # RESOLUTION
    "00000001",  # SUCCESS
    "19000000",  # REC | CA | PO: REC always, CA and PO echoed (the reference adds AT, below)
    "0001",  # the site's serial number
    "00 00",
    "69f0c3a5",  # the server's ExpirationTime
    "0000003b",  # 14 + 4 + 41
    "0000000a 38382e3131382e382f58",
    "00000001",
    URL_VALUE,
    "00000000",
)


def stock_request() -> Message:
    return Message(
        OpCode.RESOLUTION,
        ResolutionRequest("88.118.8/X"),
        flags=OpFlag.REC | OpFlag.CA | OpFlag.PO,
        request_id=0x1234ABCD,
        site_serial=1,
        expiration=EXPIRES,
        version=(2, 10),
        suggested_version=(2, 11),
    )


def test_the_stock_resolution_datagram_decodes_and_encodes_exactly() -> None:
    decoded = Message.from_wire(STOCK_REQUEST)
    assert decoded == stock_request()
    assert (decoded.version, decoded.suggested_version, decoded.suggests) == (
        (2, 10),
        (2, 11),
        (2, 11),
    )
    assert decoded.envelope_flags == EnvelopeFlag(0)
    assert stock_request().to_wire() == STOCK_REQUEST
    assert to_packets(stock_request()) == [STOCK_REQUEST]
    assert Envelope.from_wire(STOCK_REQUEST).suggested_version == (2, 11)


def test_the_answer_to_the_stock_datagram_is_written_as_the_reference_server_writes_it() -> None:
    request = Message.from_wire(STOCK_REQUEST)
    answer = request.reply(
        ResolutionResponse("88.118.8/X", (URL_HV,)), site_serial=1, expiration=ANSWER_EXPIRES
    )
    assert answer.to_wire() == STOCK_ANSWER
    assert Message.from_wire(STOCK_ANSWER) == answer


VERSIONS = [(2, minor) for minor in range(1, 12)]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v[0]}.{v[1]}")
@pytest.mark.parametrize("suggested", [None, (2, 11), (2, 12)], ids=["none", "2.11", "2.12"])
def test_an_answer_is_written_in_the_suggested_version_at_most_the_nodes(
    version: tuple[int, int], suggested: tuple[int, int] | None
) -> None:
    request = Message(
        OpCode.RESOLUTION, ResolutionRequest("88.1/x"), flags=OpFlag.RD | OpFlag.PO,
        request_id=7, version=version, suggested_version=suggested,
    )  # fmt: skip
    decoded = Message.from_wire(request.to_wire())
    answer = decoded.reply(ResolutionResponse("88.1/x", ()))
    expected = min(suggested or version, (2, 11))
    assert (answer.version, answer.suggested_version) == (expected, (2, 11))
    wire = answer.to_wire()
    assert wire[:4] == bytes([2, expected[1], 0x02, 0x0B])
    # The request digest is the one the answer's version implies, over header and body.
    algorithm = DigestAlgorithm.SHA256 if expected >= (2, 7) else DigestAlgorithm.SHA1
    assert digest_algorithm_for(expected) == algorithm
    assert answer.request_digest == RequestDigest.of(request.signed_data(), algorithm)
    assert answer.flags == OpFlag.REC | OpFlag.PO | OpFlag.RD


def test_request_digest_octets_follow_the_version() -> None:
    request = Message(OpCode.RESOLUTION, ResolutionRequest("88.1/x"), flags=OpFlag.RD,
                      version=(2, 6), suggested_version=(2, 6))  # fmt: skip
    answer = request.reply(ResolutionResponse("88.1/x", ()))
    body = answer.signed_data()[24:]
    assert body[:21] == b"\x02" + hashlib.sha1(request.signed_data()).digest()
    newer = Message(OpCode.RESOLUTION, ResolutionRequest("88.1/x"), flags=OpFlag.RD,
                    version=(2, 7))  # fmt: skip
    body = newer.reply(ResolutionResponse("88.1/x", ())).signed_data()[24:]
    assert body[:33] == b"\x03" + hashlib.sha256(newer.signed_data()).digest()


@pytest.mark.parametrize(
    "flags",
    [OpFlag(0), OpFlag.AT, OpFlag.CT | OpFlag.CA, OpFlag.DNRF | OpFlag.KA, OpFlag.CN | OpFlag.MINT],
    ids=["none", "AT", "CT|CA", "DNRF|KA", "CN|MINT"],
)
def test_an_answer_echoes_the_flags_the_reference_copies(flags: OpFlag) -> None:
    request = Message(OpCode.RESOLUTION, ResolutionRequest("88.1/x"), flags=flags)
    answer = request.reply(ResolutionResponse("88.1/x", ()), flags=OpFlag.CN)
    echoed = flags & (OpFlag.AT | OpFlag.CT | OpFlag.CA | OpFlag.PO | OpFlag.DNRF)
    assert answer.flags == OpFlag.REC | OpFlag.CN | echoed


def test_expiration_is_what_the_caller_passes() -> None:
    request = stock_request()
    assert request.reply(ResolutionResponse("88.118.8/X", ())).expiration == 0
    answer = request.reply(ResolutionResponse("88.118.8/X", ()), expiration=123)
    assert Message.from_wire(answer.to_wire()).expiration == 123
    error = answer.as_error("too large")
    assert (error.expiration, error.version, error.suggested_version) == (123, (2, 11), (2, 11))
    assert error.response_code == ResponseCode.ERROR


def test_a_request_of_several_packets_has_tc_in_each_and_an_answer_has_not() -> None:
    values = tuple(HandleValue(n, "URL", UrlData("http://x.cn/" + "a" * 300)) for n in (1, 2))
    request = Message(OpCode.RESOLUTION, ResolutionRequest("88.1/x", (), ("A" * 600,)))
    packets = to_packets(request)
    assert len(packets) == 2
    assert all(int.from_bytes(p[2:4], "big") & EnvelopeFlag.TC for p in packets)
    answer = Message(OpCode.RESOLUTION, ResolutionResponse("88.1/x", values),
                     ResponseCode.SUCCESS)  # fmt: skip
    packets = to_packets(answer)
    assert len(packets) == 2
    assert not any(int.from_bytes(p[2:4], "big") & EnvelopeFlag.TC for p in packets)


def test_a_suggested_version_must_fit_the_message_flag() -> None:
    with pytest.raises(LocalProtocolError):
        Message(OpCode.RESOLUTION, ResolutionRequest("x"), suggested_version=(4, 1))
    with pytest.raises(LocalProtocolError):
        Message(OpCode.RESOLUTION, ResolutionRequest("x"), envelope_flags=EnvelopeFlag(0x020B))
    # Zero suggestion bits: none stated; the answer follows the request's own version.
    plain = Message.from_wire(Message(OpCode.RESOLUTION, ResolutionRequest("x")).to_wire())
    assert plain.suggested_version is None
    assert plain.suggests == (2, 1)
