"""Warm native resolution over UDP: iinode beside NSD and a bare Python loop, same load generator.

    .venv/bin/python bench/native_udp.py --records 100000 --count 1000000 --runs 3

One C load generator (``bench/udp_load.c``, compiled here) keeps a window of requests in flight on
127.0.0.1 against each server in turn: iinode's native workers (SO_REUSEPORT, one per core)
answering RESOLUTION requests for ``--keys`` distinct handles out of ``--records`` in SQLite; NSD
(``apt-get install nsd``) with the same worker count answering TXT queries whose answers have the
same size as iinode's; and the same number of bare Python recvfrom/sendto processes echoing a
fixed answer of that size (the least a Python server can do per datagram).  Each server is charged
the user+system CPU of its process tree during the run.  Medians over ``--runs``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from native_node import request_datagram, start_bench_node
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1000, help="distinct handles asked for")
    parser.add_argument("--count", type=int, default=1_000_000, help="requests per run")
    parser.add_argument("--window", type=int, default=128, help="requests in flight")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="iinode-udp-") as tmp:
        root = Path(tmp)
        generator = build_generator(root)
        handle_requests = [request_datagram(n, 0) for n in range(min(args.keys, args.records))]
        handle_file = root / "handle.bin"
        write_templates(handle_file, handle_requests)

        def measure(
            port: int, templates: Path, offset: int, width: int, pids: list[int]
        ) -> list[LoadResult]:
            def once(count: int) -> LoadResult:
                return run_load(
                    generator,
                    port,
                    templates,
                    id_offset=offset,
                    id_width=width,
                    count=count,
                    window=args.window,
                    server_pids=pids,
                )

            once(min(args.count, 100_000))  # warm-up
            return [once(args.count) for _ in range(args.runs)]

        port = free_udp_port()
        print(f"loading {args.records:,} records into SQLite ...", flush=True)
        workers = start_bench_node(root / "node", args.records, port, args.workers)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(2)
                sock.sendto(handle_requests[0], ("127.0.0.1", port))
                answer = sock.recvfrom(4096)[0]
            pids = [p.pid for p in workers.processes if p.pid is not None]
            iinode = median_result(measure(port, handle_file, 8, 4, pids))
        finally:
            workers.stop()
        size = len(answer)

        nsd_port = free_udp_port()
        with nsd_server(nsd_port, args.workers, size) as (pid, names):
            dns_size = dns_answer_size(nsd_port, names[0])
            dns_file = root / "dns.bin"
            write_templates(dns_file, [dns_query(n) for n in names])
            nsd = median_result(measure(nsd_port, dns_file, 0, 2, [pid]))

        loop_port = free_udp_port()
        with python_loop(loop_port, args.workers, answer) as pid:
            bare = median_result(measure(loop_port, handle_file, 8, 4, [pid]))

    report: list[tuple[str, dict[str, float], Callable[[], str]]] = [
        ("iinode", iinode, lambda: f"answer {size} octets"),
        ("NSD", nsd, lambda: f"answer {dns_size} octets"),
        ("bare Python loop", bare, lambda: f"answer {size} octets"),
    ]
    print(f"\n{args.workers} server processes, window {args.window}, {args.count:,} requests x "
          f"{args.runs} runs, medians")  # fmt: skip
    print(f"{'server':18} {'answers/s':>12} {'CPU us/answer':>14} {'p50 us':>8} {'p99 us':>8}"
          f" {'lost':>6}")  # fmt: skip
    for name, row, note in report:
        print(f"{name:18} {row['rate']:12,.0f} {row['cpu_us']:14.2f} {row['p50_us']:8.0f} "
              f"{row['p99_us']:8.0f} {row['lost']:6.0f}  {note()}")  # fmt: skip
    print(f"\niinode / NSD: throughput {iinode['rate'] / nsd['rate']:.2f}x, "
          f"CPU per answer {iinode['cpu_us'] / nsd['cpu_us']:.2f}x (target <= 2)")  # fmt: skip
    print(f"iinode / bare Python loop: throughput {iinode['rate'] / bare['rate']:.2f}x, "
          f"CPU per answer {iinode['cpu_us'] / bare['cpu_us']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
