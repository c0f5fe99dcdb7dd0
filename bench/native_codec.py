"""Codec cost on the resolution hot path: decode a UDP request, encode its one-packet answer.

.venv/bin/python bench/native_codec.py --seconds 3
"""

from __future__ import annotations

import argparse
import time

from iinode.identifiers import HandleValue, StringData, UrlData
from iinode.proto import Message, OpCode, OpFlag, ResolutionRequest, ResolutionResponse, to_packets

REQUEST = Message(OpCode.RESOLUTION, ResolutionRequest("88.118.8/JXDY2106023"), flags=OpFlag.REC,
                  request_id=12345).to_wire()  # fmt: skip
VALUES = (
    HandleValue(1, "URL", UrlData("https://example.cn/products/JXDY2106023")),
    HandleValue(2, "DESC", StringData("pump, model JX-7, line 3")),
)


def one_round() -> bytes:
    req = Message.from_wire(REQUEST)
    body = req.body
    assert isinstance(body, ResolutionRequest)
    (packet,) = to_packets(req.reply(ResolutionResponse(body.handle, VALUES)))
    return packet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    size = len(one_round())
    count, started = 0, time.perf_counter()
    deadline = started + args.seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            one_round()
        count += 1000
    elapsed = time.perf_counter() - started
    print(f"request {len(REQUEST)} octets, answer {size} octets")
    print(f"{count / elapsed:,.0f} decode+encode rounds/s on one core "
          f"({elapsed / count * 1e6:.1f} us each)")  # fmt: skip


if __name__ == "__main__":
    main()
