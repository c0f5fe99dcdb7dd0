"""Per-call cost of parsing a GS1 Digital Link path (what the resolver runs on a cache miss).

    .venv/bin/python bench/gs1_parse.py [--calls 20000] [--runs 5]

Each figure is the median over ``--runs`` of the best of three timings of ``--calls``
calls of ``iinode.gs1.parse_path``.  To compare two versions, run it once with
``PYTHONPATH=<other tree>/src`` and once in the checkout, back to back.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import timeit

from iinode.gs1 import parse_path

CASES: list[tuple[str, list[tuple[str, str]]]] = [
    ("/01/09506000134352/10/ABC123/21/72292641703", [("17", "290331"), ("3103", "000189")]),
    ("/01/09506000134352", []),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for path, query in CASES:
        runs = [
            min(
                timeit.repeat(
                    functools.partial(parse_path, path, query), number=args.calls, repeat=3
                )
            )
            / args.calls
            * 1e6
            for _ in range(args.runs)
        ]
        shown = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        print(f"{shown}: median {statistics.median(runs):.2f} us per parse")


if __name__ == "__main__":
    main()
