"""Throw random and mutated datagrams and TCP frames at a running native node.

Starts an enterprise node (``88.118.8``, 1,000 records, ``--workers`` native
worker processes on 127.0.0.1) and then:

* **UDP**: sends ``--datagrams`` inputs (the decoder fuzzer's mutations of valid
  messages and packets, random bytes, and one valid resolution request in
  eight) from 16 sockets, paced at ``--udp-rate`` per second, reading whatever
  comes back.
* **TCP**: opens connections (``--concurrency`` at a time), each carrying 0-7
  valid resolution requests with keep-alive followed by one mutated frame and
  the end of the stream, until ``--tcp-frames`` frames were sent.  Every frame
  of a connection is therefore read by the server (the valid ones keep the
  connection open), and a connection the server never closes counts as a hang.

Afterwards it checks that every worker process is alive and answers valid
requests (asked from 64 source ports, so each worker gets some), that the
node-wide counters (``read_native_counters``) moved, and how the workers'
resident memory changed.  Exit status 1 on any failure.

    .venv/bin/python bench/fuzz_server.py --datagrams 1000000 --tcp-frames 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

from fuzz_proto import mutate, seed_corpus
from iinode.proto import CLOSED, NEED_DATA, Frame, Message, OpFlag, TcpFramer
from iinode.resolution.native_counters import read_native_counters
from native_node import request_datagram, start_bench_node
from native_ports import free_native_port

RECORDS = 1000


def valid_request(n: int, request_id: int, *, keep_alive: bool = False) -> bytes:
    data = bytearray(request_datagram(n % RECORDS, request_id))
    if keep_alive:  # op flags live at octet 8 of the header (20 + 8)
        data[28:32] = int(OpFlag.KA).to_bytes(4, "big")
    return bytes(data)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def udp_phase(port: int, count: int, rate: float, rnd: random.Random) -> dict[str, int]:
    corpus = seed_corpus()
    socks = []
    for _ in range(16):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        socks.append(sock)
    sent = answers = 0
    burst = 200
    started = time.perf_counter()
    try:
        while sent < count:
            for _ in range(min(burst, count - sent)):
                sock = socks[rnd.randrange(len(socks))]
                if rnd.randrange(8) == 0:
                    data = valid_request(rnd.randrange(RECORDS), rnd.getrandbits(31) + 1)
                else:
                    data = mutate(rnd, corpus)
                with contextlib.suppress(OSError):  # e.g. an oversized datagram; still counted
                    sock.send(data)
                sent += 1
            for sock in socks:
                while True:
                    try:
                        sock.recv(65_535)
                    except OSError:
                        break
                    answers += 1
            ahead = sent / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
    finally:
        for sock in socks:
            sock.close()
    elapsed = time.perf_counter() - started
    return {"sent": sent, "answers": answers, "ms": int(elapsed * 1000)}


async def tcp_connection(port: int, stream: bytes, limit: float) -> tuple[int, bool]:
    """Send ``stream`` then EOF; return (responses read, server closed within ``limit`` s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    responses = 0
    framer = TcpFramer()
    try:
        writer.write(stream)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(limit):
            while True:
                data = await reader.read(65_536)
                if not data:
                    return responses, True
                framer.receive_data(data)
                try:
                    while isinstance(framer.next_event(), Frame):
                        responses += 1
                except Exception:  # the server's error stream: fine, keep reading
                    framer = TcpFramer()
    except TimeoutError:
        return responses, False
    except ConnectionError:
        return responses, True
    finally:
        writer.close()


async def tcp_phase(port: int, frames: int, concurrency: int, rnd: random.Random) -> dict[str, int]:
    corpus = seed_corpus()
    result = {"frames": 0, "mutated": 0, "connections": 0, "responses": 0, "hangs": 0}
    started = time.perf_counter()

    def next_stream() -> bytes | None:
        if result["frames"] >= frames:
            return None
        valid = [
            valid_request(rnd.randrange(RECORDS), rnd.getrandbits(31) + 1, keep_alive=True)
            for _ in range(rnd.randrange(8))
        ]
        result["frames"] += len(valid) + 1
        result["mutated"] += 1
        return b"".join(valid) + mutate(rnd, corpus)

    async def worker() -> None:
        while (stream := next_stream()) is not None:
            try:
                responses, closed = await tcp_connection(port, stream, 10.0)
            except OSError:
                continue
            result["connections"] += 1
            result["responses"] += responses
            result["hangs"] += not closed

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result["ms"] = int((time.perf_counter() - started) * 1000)
    return result


def still_answers(port: int) -> int:
    """Valid requests from 64 source ports; how many got the right answer."""
    good = 0
    for n in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(valid_request(n, 1000 + n), ("127.0.0.1", port))
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            message = Message.from_wire(data)
            if message.request_id == 1000 + n and message.response_code == 1:
                good += 1
    return good


def tcp_still_answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(valid_request(1, 77))
        framer = TcpFramer()
        while True:
            event = framer.next_event()
            if event is NEED_DATA:
                framer.receive_data(conn.recv(65_536))
                continue
            if event is CLOSED:
                return False
            assert isinstance(event, Frame)
            return Message.from_frame(event).response_code == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=1_000_000)
    parser.add_argument("--tcp-frames", type=int, default=1_000_000)
    parser.add_argument("--udp-rate", type=float, default=20_000, help="datagrams per second")
    parser.add_argument("--concurrency", type=int, default=16, help="TCP connections at once")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        port = free_native_port()
        workers = start_bench_node(data_dir, RECORDS, port, args.workers)
        try:
            pids = [p.pid for p in workers.processes if p.pid is not None]
            time.sleep(0.5)
            before = read_native_counters(data_dir)
            rss_before = {pid: rss_kib(pid) for pid in pids}
            udp = udp_phase(port, args.datagrams, args.udp_rate, rnd)
            print(f"UDP: {udp['sent']:,} datagrams in {udp['ms'] / 1000:.1f} s, "
                  f"{udp['answers']:,} answers read")  # fmt: skip
            tcp = asyncio.run(tcp_phase(port, args.tcp_frames, args.concurrency, rnd))
            print(f"TCP: {tcp['frames']:,} frames ({tcp['mutated']:,} mutated) on "
                  f"{tcp['connections']:,} connections in {tcp['ms'] / 1000:.1f} s, "
                  f"{tcp['responses']:,} responses, {tcp['hangs']} never closed")  # fmt: skip
            if tcp["hangs"]:
                failures.append(f"{tcp['hangs']} TCP connections were never closed")
            alive = [p.is_alive() for p in workers.processes]
            if not all(alive):
                failures.append(f"worker processes alive: {alive}")
            good = still_answers(port)
            print(f"after the fuzz: {good}/64 valid UDP requests answered correctly; "
                  f"TCP answers: {tcp_still_answers(port)}")  # fmt: skip
            if good < 64:
                failures.append(f"only {good}/64 valid requests answered")
            time.sleep(0.6)  # one publishing interval
            after = read_native_counters(data_dir)
            moved = {k: after[k] - before[k] for k in after}
            print("node-wide counter deltas: " + ", ".join(f"{k}={v:,}" for k, v in moved.items()))
            if moved["protocol_errors"] <= 0 or moved["requests"] <= 0:
                failures.append("the counters did not move")
            rss_after = {pid: rss_kib(pid) for pid in pids}
            for pid in pids:
                print(f"worker {pid}: RSS {rss_before[pid] / 1024:.1f} MiB -> "
                      f"{rss_after[pid] / 1024:.1f} MiB")  # fmt: skip
        finally:
            workers.stop()
    if failures:
        print("FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("clean: workers alive and answering, counters moved")


if __name__ == "__main__":
    main()
