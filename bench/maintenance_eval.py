"""Predictive maintenance evaluated on held-out simulated machines (docs/benchmarks.md).

    .venv/bin/python bench/maintenance_eval.py [--train 16] [--test 8] [--hours 72]

Trains :func:`iinode.analytics.maintenance.train` on ``--train`` machines run to
failure around the clock for ``--hours`` (seed 1), evaluates on ``--test`` other
machines (seed 2) at several warning thresholds: precision and recall of "fails
within 30 min" per sample, the share of failures warned of, and the lead time.
Needs the ``ml`` extra (scikit-learn).
"""

from __future__ import annotations

import argparse
import time

from iinode.analytics.maintenance import evaluate, run_to_failure, save, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=16)
    parser.add_argument("--test", type=int, default=8)
    parser.add_argument("--hours", type=float, default=72.0)
    parser.add_argument("--save", help="write the trained model here (maintenance.pickle)")
    args = parser.parse_args()
    started = time.perf_counter()
    training = run_to_failure(args.train, args.hours, seed=1)
    held_out = run_to_failure(args.test, args.hours, seed=2)
    predictor = train(training)
    print(f"trained on {args.train} machines x {args.hours:g} h: {len(training.rows):,} samples, "
          f"{sum(training.labels):,} positive, {len(training.failures)} failures; held out "
          f"{args.test} machines: {len(held_out.rows):,} samples, {len(held_out.failures)} "
          f"failures ({time.perf_counter() - started:.1f} s)")  # fmt: skip
    print(f"{'threshold':>9} {'precision':>9} {'recall':>7} {'failures warned':>16} "
          f"{'median lead':>12} {'mean lead':>10}")  # fmt: skip
    for threshold in (0.3, 0.5, 0.7, 0.85):
        predictor.threshold = threshold
        r = evaluate(predictor, held_out)
        median = "n/a" if r.median_lead_s is None else f"{r.median_lead_s / 60:.0f} min"
        mean = "n/a" if r.mean_lead_s is None else f"{r.mean_lead_s / 60:.0f} min"
        warned = f"{r.warned:>5}/{r.failures:<4} {r.failure_recall:>5.0%}"
        print(f"{threshold:>9.2f} {r.precision:>9.3f} {r.recall:>7.3f} {warned} {median:>12} "
              f"{mean:>10}")  # fmt: skip
    if args.save:
        predictor.threshold = 0.5
        from pathlib import Path

        save(predictor, Path(args.save))


if __name__ == "__main__":
    main()
