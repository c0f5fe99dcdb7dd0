"""Fuzz the Handle wire decoders with random and mutated inputs, and count the outcomes.

Every input goes to ``Message.from_wire``, to one long-lived ``UdpReassembler``
(so its bounded state is exercised across inputs) and to a fresh ``TcpFramer``
fed in random chunks.  The only acceptable failure is ``RemoteProtocolError``;
anything else is counted as a crash and printed.  Exit status 1 if any crash.

    .venv/bin/python bench/fuzz_proto.py --inputs 1000000 --seed 1
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable

from iinode.codes import ResponseCode
from iinode.errors import RemoteProtocolError
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleValue,
    IndexedHandle,
    StringData,
    UrlData,
    VListData,
    site_for,
)
from iinode.proto import (
    ChallengeAnswer,
    ChallengeBody,
    Credential,
    DigestAlgorithm,
    EmptyBody,
    ErrorBody,
    Frame,
    KeyExchangeMode,
    ListHandlesResponse,
    Message,
    OpCode,
    OpFlag,
    ProtoLimits,
    ReferralResponse,
    RemoveValueRequest,
    RequestDigest,
    ResolutionRequest,
    ResolutionResponse,
    SessionSetupRequest,
    SiteInfoResponse,
    TcpFramer,
    UdpReassembler,
    ValuesRequest,
    to_packets,
)

ADMIN = IndexedHandle.parse("300:0.NA/88")
SITE = site_for("10.0.0.1", http_port=8000, handle_port=2641)
VALUES = (
    HandleValue(1, "URL", UrlData("https://example.cn/p/1")),
    HandleValue(2, "DESC", StringData("pump 7")),
    HandleValue(100, "HS_ADMIN", AdminData(AdminPermission.all(), ADMIN)),
    HandleValue(101, "HS_SITE", SITE),
    HandleValue(102, "HS_VLIST", VListData((ADMIN,)), references=(ADMIN,)),
)
BIG = HandleValue(3, "DESC", StringData("long text " * 150))
OK = ResponseCode.SUCCESS


def seed_corpus() -> list[bytes]:
    """Valid messages of every layout, as TCP messages and as UDP packets."""
    msgs = [
        Message(OpCode.RESOLUTION, ResolutionRequest("88.1/x", (1,), ("URL",)), request_id=1),
        Message(OpCode.RESOLUTION, ResolutionResponse("88.1/x", VALUES), OK, OpFlag.AT),
        Message(OpCode.RESOLUTION, ResolutionResponse("88.1/big", (BIG,)), OK, request_id=9),
        Message(OpCode.RESOLUTION, ReferralResponse("0.NA/88", VALUES[3:4]),
                ResponseCode.SERVICE_REFERRAL),
        Message(OpCode.RESOLUTION, ErrorBody("no", (1,)), ResponseCode.HANDLE_NOT_FOUND),
        Message(OpCode.GET_SITEINFO, SiteInfoResponse(SITE), OK),
        Message(OpCode.CREATE_HANDLE, ValuesRequest("88.1/n", VALUES[:3]),
                credential=Credential("0.NA/88", 300, signed_data=b"s" * 64)),
        Message(OpCode.REMOVE_VALUE, RemoveValueRequest("88.1/n", (1, 2))),
        Message(OpCode.DELETE_HANDLE, EmptyBody(), OK, OpFlag.RD,
                request_digest=RequestDigest(DigestAlgorithm.SHA256, bytes(32))),
        Message(OpCode.LIST_HANDLES, ListHandlesResponse(("88.1/a", "88.1/b")), OK),
        Message(OpCode.CREATE_HANDLE, ChallengeBody(b"n" * 16), ResponseCode.AUTHENTICATION_NEEDED),
        Message(OpCode.CHALLENGE_RESPONSE, ChallengeAnswer("HS_SECKEY", "0.NA/88", 300, b"m")),
        Message(OpCode.SESSION_SETUP,
                SessionSetupRequest(KeyExchangeMode.CIPHER_CLIENT, 60, "0.NA/88", 300, b"k")),
    ]  # fmt: skip
    corpus = [m.to_wire() for m in msgs]
    corpus += [p for m in msgs for p in to_packets(m)]
    return corpus


def mutate(rnd: random.Random, corpus: list[bytes]) -> bytes:
    """One input: random bytes, or a corpus entry with one of several mutations."""
    kind = rnd.randrange(8)
    if kind == 0:
        return rnd.randbytes(rnd.randrange(0, 600))
    data = bytearray(rnd.choice(corpus))
    if kind == 1:  # overwrite random octets
        for _ in range(rnd.randrange(1, 6)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
    elif kind == 2:  # flip bits
        for _ in range(rnd.randrange(1, 6)):
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
    elif kind == 3:  # truncate
        del data[rnd.randrange(len(data)) :]
    elif kind == 4:  # lying 4-octet field (lengths and counts live on 4-octet boundaries)
        pos = rnd.randrange(0, max(1, len(data) - 4))
        edge = rnd.choice([0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rnd.getrandbits(32)])
        data[pos : pos + 4] = edge.to_bytes(4, "big")
    elif kind == 5:  # insert or delete a run
        pos = rnd.randrange(len(data))
        if rnd.random() < 0.5:
            data[pos:pos] = rnd.randbytes(rnd.randrange(1, 40))
        else:
            del data[pos : pos + rnd.randrange(1, 40)]
    elif kind == 6:  # splice two corpus entries
        other = rnd.choice(corpus)
        data = data[: rnd.randrange(len(data))] + other[rnd.randrange(len(other)) :]
    else:  # the valid input itself
        pass
    return bytes(data)


def tcp_decode(data: bytes, rnd: random.Random) -> None:
    framer = TcpFramer(ProtoLimits(max_message_bytes=1 << 20))
    pos = 0
    while pos < len(data):
        step = rnd.randrange(1, 200)
        framer.receive_data(data[pos : pos + step])
        pos += step
    framer.receive_data(b"")
    while isinstance(event := framer.next_event(), Frame):
        Message.from_frame(event)


def run(inputs: int, seed: int) -> int:
    rnd = random.Random(seed)
    corpus = seed_corpus()
    udp = UdpReassembler(ProtoLimits(max_pending_messages=64, max_pending_bytes=1 << 20))
    outcomes: Counter[str] = Counter()
    crashes = 0

    def udp_decode(data: bytes, now: float) -> None:
        frame = udp.receive(rnd.randrange(4), data, now)
        if frame is not None:
            Message.from_frame(frame)

    def message_decode(data: bytes, now: float) -> None:
        Message.from_wire(data)

    decoders: list[tuple[str, Callable[[bytes, float], None]]] = [
        ("message", message_decode),
        ("udp", udp_decode),
        ("tcp", lambda d, now: tcp_decode(d, rnd)),
    ]
    started = time.perf_counter()
    for i in range(inputs):
        data = mutate(rnd, corpus)
        now = i / 1000.0
        for name, decode in decoders:
            try:
                decode(data, now)
                outcomes[f"{name}:accepted"] += 1
            except RemoteProtocolError:
                outcomes[f"{name}:protocol_error"] += 1
            except Exception:
                crashes += 1
                outcomes[f"{name}:crash"] += 1
                if crashes <= 5:
                    print(f"CRASH on input {data.hex()}", file=sys.stderr)
                    traceback.print_exc()
        if udp.pending_messages > 64 or udp.pending_bytes > 1 << 20:
            print("UDP reassembler exceeded its limits", file=sys.stderr)
            return 1
    elapsed = time.perf_counter() - started
    print(f"inputs: {inputs}  seed: {seed}  seconds: {elapsed:.1f}  "
          f"inputs/s: {inputs / elapsed:,.0f}")  # fmt: skip
    for key in sorted(outcomes):
        print(f"  {key:24} {outcomes[key]:>10,}")
    stats = udp.stats
    print(
        f"  udp reassembler: completed={stats.completed:,} rejected={stats.rejected:,} "
        f"duplicates={stats.duplicates:,} expired={stats.expired:,} evicted={stats.evicted:,}"
    )
    print(f"crashes (exceptions other than RemoteProtocolError): {crashes}")
    return 1 if crashes else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(run(args.inputs, args.seed))


if __name__ == "__main__":
    main()
