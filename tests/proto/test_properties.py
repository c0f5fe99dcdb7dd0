"""Hypothesis properties: round trips for every message type, and decoders under fuzz."""

from __future__ import annotations

import contextlib
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iinode.codes import ResponseCode
from iinode.errors import RemoteProtocolError
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    BinaryData,
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    StringData,
    TTLType,
    UrlData,
    VListData,
    site_for,
)
from iinode.proto import (
    NEED_DATA,
    RESPONSE_BODIES,
    ChallengeAnswer,
    ChallengeBody,
    Credential,
    DigestAlgorithm,
    EmptyBody,
    EnvelopeFlag,
    ErrorBody,
    Frame,
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
    TcpFramer,
    UdpReassembler,
    ValuesRequest,
    VerifyRequest,
    VerifyResponse,
    body_type,
    to_packets,
)

text = st.text(max_size=20)
blob = st.binary(max_size=40)
u32 = st.integers(0, 2**32 - 1)
indexes = st.lists(u32, max_size=4).map(tuple)
handles = st.sampled_from(["88.1/a", "0.NA/88", "88.118.8/JXDY2106023", "10.1000/中文"])
refs = st.builds(IndexedHandle, st.integers(1, 2**31 - 1), handles.map(HandleName.parse))
sites = st.builds(lambda port: site_for("192.0.2.1", handle_port=port), st.integers(1, 65535))

value_data = st.one_of(
    st.tuples(st.just("URL"), st.builds(UrlData, st.sampled_from(["http://a.cn/", "https://b/c"]))),
    st.tuples(st.sampled_from(["DESC", "X"]), st.builds(StringData, text)),
    st.tuples(st.just("BLOB"), st.builds(BinaryData, st.just(b"\xff\xfe"))),
    st.tuples(st.just("HS_ADMIN"), st.builds(AdminData, st.builds(AdminPermission,
                                                                   st.integers(0, 0xFFF)), refs)),
    st.tuples(st.just("HS_VLIST"), st.builds(VListData, st.lists(refs, max_size=3).map(tuple))),
    st.tuples(st.just("HS_SITE"), sites),
)  # fmt: skip


@st.composite
def handle_values(draw: st.DrawFn) -> HandleValue:
    vtype, data = draw(value_data)
    return HandleValue(
        draw(st.integers(1, 2**31 - 1)), vtype, data, draw(st.integers(-(2**31), 2**31 - 1)),
        draw(st.sampled_from(TTLType)), draw(u32), Permissions(draw(st.integers(0, 15))),
        tuple(draw(st.lists(refs, max_size=2))),
    )  # fmt: skip


values = st.lists(handle_values(), max_size=3).map(tuple)

BODIES: dict[type, st.SearchStrategy[object]] = {
    EmptyBody: st.just(EmptyBody()),
    OpaqueBody: st.builds(OpaqueBody, blob),
    HandleBody: st.builds(HandleBody, text),
    OptionalHandleBody: st.builds(OptionalHandleBody, st.none() | text),
    ResolutionRequest: st.builds(ResolutionRequest, text, indexes, st.lists(text).map(tuple)),
    ValuesRequest: st.builds(ValuesRequest, text, values),
    ResolutionResponse: st.builds(ResolutionResponse, text, values),
    ReferralResponse: st.builds(ReferralResponse, text, values),
    RemoveValueRequest: st.builds(RemoveValueRequest, text, indexes),
    ListHandlesResponse: st.builds(ListHandlesResponse, st.lists(text, max_size=4).map(tuple)),
    SiteInfoResponse: st.builds(SiteInfoResponse, sites),
    ErrorBody: st.builds(ErrorBody, text, indexes),
    ChallengeBody: st.builds(ChallengeBody, blob),
    ChallengeAnswer: st.builds(ChallengeAnswer, text, text, u32, blob),
    VerifyRequest: st.builds(VerifyRequest, text, u32, blob, blob, blob),
    VerifyResponse: st.builds(VerifyResponse, st.booleans()),
    SessionSetupRequest: st.builds(
        SessionSetupRequest, st.sampled_from(KeyExchangeMode), u32, text, u32, blob, text, u32
    ).map(lambda b: SessionSetupRequest.from_wire(b.to_wire())),
    SessionSetupResponse: st.builds(SessionSetupResponse, st.sampled_from(KeyExchangeMode), blob),
    SessionExchangeKeyRequest: st.builds(SessionExchangeKeyRequest, blob),
}

opcodes = st.sampled_from(OpCode) | st.integers(0, 2**32 - 1).map(OpCode)
codes = st.sampled_from([ResponseCode.RESERVED, ResponseCode.SUCCESS, *RESPONSE_BODIES]) | (
    st.sampled_from(ResponseCode)
)
digests = st.sampled_from([DigestAlgorithm.MD5, DigestAlgorithm.SHA1, DigestAlgorithm.SHA256]).map(
    lambda a: RequestDigest.of(b"request", a)
)
credentials = st.builds(Credential, text, u32, text, text, blob, st.integers(0, 255),
                        st.integers(0, 65535), st.integers(0, 255))  # fmt: skip


@st.composite
def messages(draw: st.DrawFn) -> Message:
    opcode, code = draw(opcodes), draw(codes)
    body = draw(BODIES[body_type(opcode, code)])
    flags = OpFlag(draw(u32)) & ~OpFlag.RD
    digest = None
    if code != ResponseCode.RESERVED and draw(st.booleans()):
        digest, flags = draw(digests), flags | OpFlag.RD
    return Message(
        opcode, body, code, flags, draw(u32), draw(u32), draw(st.integers(0, 65535)),  # type: ignore[arg-type]
        draw(st.integers(0, 255)), draw(u32), digest, draw(st.none() | credentials),
        (2, draw(st.integers(0, 255))), EnvelopeFlag(draw(st.integers(0, 0x1FFF)) & ~0x03FF),
        draw(st.none() | st.tuples(st.integers(1, 3), st.integers(0, 255))),
    )  # fmt: skip


@given(messages())
def test_every_message_round_trips(message: Message) -> None:
    assert Message.from_wire(message.to_wire()) == message


@given(messages(), st.randoms(use_true_random=False))
def test_udp_packets_reassemble_in_any_order(message: Message, rnd: random.Random) -> None:
    packets = to_packets(message)
    rnd.shuffle(packets)
    r = UdpReassembler()
    frames = [f for p in packets if (f := r.receive("peer", p, 0.0)) is not None]
    assert len(frames) == 1
    assert Message.from_frame(frames[0]) == message


@given(st.lists(messages(), min_size=1, max_size=3), st.lists(st.integers(1, 300), min_size=1))
def test_tcp_stream_frames_survive_any_chunking(msgs: list[Message], cuts: list[int]) -> None:
    stream = b"".join(m.to_wire() for m in msgs)
    framer, got, pos, i = TcpFramer(), [], 0, 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        framer.receive_data(stream[pos : pos + size])
        pos, i = pos + size, i + 1
        while (event := framer.next_event()) is not NEED_DATA:
            assert isinstance(event, Frame)
            got.append(Message.from_frame(event))
    assert got == msgs


def _decode_all(data: bytes) -> None:
    for decode in (
        Message.from_wire,
        lambda d: UdpReassembler().receive("x", d, 0.0),
        _framer_decode,
    ):
        with contextlib.suppress(RemoteProtocolError):
            decode(data)


def _framer_decode(data: bytes) -> None:
    framer = TcpFramer()
    framer.receive_data(data)
    framer.receive_data(b"")
    while isinstance(event := framer.next_event(), Frame):
        Message.from_frame(event)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    _decode_all(data)
    _decode_all(b"\x02\x01" + data)


@FUZZ
@given(messages(), st.data())
def test_mutated_messages_only_raise_remote_protocol_error(
    message: Message, data: st.DataObject
) -> None:
    wire = bytearray(message.to_wire())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    _decode_all(bytes(wire))
    _decode_all(bytes(wire[:cut]))
