"""Warm native resolution over UDP: the stock-client request beside iinode's own form, then NSD
and a bare Python loop, all driven by the same load generator.

    .venv/bin/python bench/native_udp.py --records 10000 --count 500000 --runs 5

One C load generator (``bench/udp_load.c``, compiled here) keeps a window of requests in flight on
127.0.0.1 against each server in turn.  iinode's native workers (SO_REUSEPORT, one per core)
answer RESOLUTION requests for ``--keys`` distinct handles out of ``--records`` in SQLite, in two
request forms measured in alternating runs: iinode's own form (version 2.1, no flags, no
ExpirationTime) and the datagram a Handle.Net 9 client sends (version 2.10 suggesting 2.11,
REC|CA|PO, site serial 1, ExpirationTime now + 12 hours; each template a different second, as
successive requests of a real client are).  Then NSD (``apt-get install nsd``; skipped when
absent) with the same worker count answering TXT queries whose answers have the same size as
iinode's, and the same number of bare Python recvfrom/sendto processes echoing a fixed answer of
that size (the least a Python server can do per datagram).  Each server is charged the
user+system CPU of its process tree during the run.  Medians over ``--runs``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from native_node import request_datagram, start_bench_node, stock_request_datagram
from support_ports import free_udp_port
from udp_reference import (
    LoadResult,
    build_generator,
    dns_answer_size,
    dns_query,
    nsd_server,
    python_loop,
    run_load,
    write_templates,
)


def median_result(results: list[LoadResult]) -> dict[str, float]:
    return {
        "rate": statistics.median(r.rate for r in results),
        "cpu_us": statistics.median(r.cpu_us_per_answer for r in results),
        "p50_us": statistics.median(r.p50_us for r in results),
        "p99_us": statistics.median(r.p99_us for r in results),
        "lost": sum(r.lost for r in results),
    }


def ask(port: int, datagram: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(datagram, ("127.0.0.1", port))
        return sock.recvfrom(4096)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1000, help="distinct handles asked for")
    parser.add_argument("--count", type=int, default=1_000_000, help="requests per run")
    parser.add_argument("--window", type=int, default=128, help="requests in flight")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-references", action="store_true", help="skip NSD and the loop")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="iinode-udp-") as tmp:
        root = Path(tmp)
        generator = build_generator(root)
        keys = min(args.keys, args.records)
        own_file, stock_file = root / "own.bin", root / "stock.bin"
        write_templates(own_file, [request_datagram(n, 0) for n in range(keys)])
        now = int(time.time())
        stock = [stock_request_datagram(n, 0, now + 43_200 + n % 60) for n in range(keys)]
        write_templates(stock_file, stock)

        def once(port: int, templates: Path, offset: int, width: int, pids: list[int],
                 count: int) -> LoadResult:  # fmt: skip
            return run_load(generator, port, templates, id_offset=offset, id_width=width,
                            count=count, window=args.window, server_pids=pids)  # fmt: skip

        port = free_udp_port()
        print(f"loading {args.records:,} records into SQLite ...", flush=True)
        workers = start_bench_node(root / "node", args.records, port, args.workers)
        try:
            answer = ask(port, request_datagram(0, 1))
            stock_answer = ask(port, stock[0])
            pids = [p.pid for p in workers.processes if p.pid is not None]
            # The generator sends from one socket, so the kernel gives each run to one worker
            # (SO_REUSEPORT hashes the source port): warm both workers' caches with several
            # short runs from different ports, or a run may land on a cold worker.
            for _ in range(6):
                for templates in (own_file, stock_file):
                    once(port, templates, 8, 4, pids, max(5 * keys, 5_000))
            own_runs, stock_runs = [], []
            for i in range(args.runs):  # alternating, so both forms see the same machine,
                forms = [(own_runs, own_file), (stock_runs, stock_file)]  # and each goes first
                for runs, templates in forms if i % 2 == 0 else forms[::-1]:  # every other time
                    runs.append(once(port, templates, 8, 4, pids, args.count))
        finally:
            workers.stop()
        own, stock_row = median_result(own_runs), median_result(stock_runs)
        size = len(answer)
        rows = [
            ("iinode, own form", own, f"answer {size} octets"),
            ("iinode, stock form", stock_row, f"answer {len(stock_answer)} octets"),
        ]
        if not args.no_references:

            def measure(port: int, templates: Path, offset: int, width: int, pids: list[int]
                        ) -> dict[str, float]:  # fmt: skip
                once(port, templates, offset, width, pids, min(args.count, 100_000))
                runs = [once(port, templates, offset, width, pids, args.count)
                        for _ in range(args.runs)]  # fmt: skip
                return median_result(runs)

            if shutil.which("nsd") or Path("/usr/sbin/nsd").exists():
                nsd_port = free_udp_port()
                with nsd_server(nsd_port, args.workers, size) as (pid, names):
                    dns_size = dns_answer_size(nsd_port, names[0])
                    dns_file = root / "dns.bin"
                    write_templates(dns_file, [dns_query(n) for n in names])
                    nsd = measure(nsd_port, dns_file, 0, 2, [pid])
                rows.append(("NSD", nsd, f"answer {dns_size} octets"))
            else:
                print("NSD is not installed (apt-get install -y nsd): its row is left out")
            loop_port = free_udp_port()
            with python_loop(loop_port, args.workers, answer) as pid:
                bare = measure(loop_port, own_file, 8, 4, [pid])
            rows.append(("bare Python loop", bare, f"answer {size} octets"))

    print(f"\n{args.workers} server processes, window {args.window}, {args.count:,} requests x "
          f"{args.runs} runs, medians")  # fmt: skip
    print(f"{'server':20} {'answers/s':>12} {'CPU us/answer':>14} {'p50 us':>8} {'p99 us':>8}"
          f" {'lost':>6}")  # fmt: skip
    for name, row, note in rows:
        print(f"{name:20} {row['rate']:12,.0f} {row['cpu_us']:14.2f} {row['p50_us']:8.0f} "
              f"{row['p99_us']:8.0f} {row['lost']:6.0f}  {note}")  # fmt: skip
    # Each stock run is next to an own-form run: the ratio within a pair is robust to load drift.
    pairs = statistics.median(s.rate / o.rate for o, s in zip(own_runs, stock_runs, strict=True))
    print(f"\nstock form / own form: throughput {stock_row['rate'] / own['rate']:.2f}x of the "
          f"medians, {pairs:.2f}x median of adjacent pairs (target >= 0.9), CPU per answer "
          f"{stock_row['cpu_us'] / own['cpu_us']:.2f}x; stock form {stock_row['rate']:,.0f}/s "
          "(target >= 100,000)")  # fmt: skip
    named = {name: row for name, row, _ in rows}
    if "NSD" in named:
        nsd = named["NSD"]
        print(f"iinode (stock form) / NSD: throughput {stock_row['rate'] / nsd['rate']:.2f}x, "
              f"CPU per answer {stock_row['cpu_us'] / nsd['cpu_us']:.2f}x "
              "(target <= 2)")  # fmt: skip
    if "bare Python loop" in named:
        bare = named["bare Python loop"]
        print(f"iinode (own form) / bare Python loop: throughput {own['rate'] / bare['rate']:.2f}x"
              f", CPU per answer {own['cpu_us'] / bare['cpu_us']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
