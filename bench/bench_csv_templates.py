"""``iinode bulk-load`` of a CSV file against a template beside the same command on a
plain CSV file, end to end (the process, reading, checking, writing).

    .venv/bin/python bench/bench_csv_templates.py --rows 200000 --runs 3

Each run makes a fresh enterprise node (``iinode init``) with the bearing template of
``bench_templates.py`` published, then times ``iinode bulk-load`` (wall clock of the
process) on: *plain*, ``handle,URL``; *template*, ``handle,URL`` and the template's
seven attribute columns with ``--template``.  Medians of the runs, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_templates import DEFINITION, NODE, PREFIX, TEMPLATE, attribute_values
from iinode.node.service import HandleService
from iinode.node.settings_sources import resolve_settings
from iinode.node.templates import Template
from iinode.storage import open_store

IINODE = [sys.executable, "-m", "iinode"]


def write_files(folder: Path, rows: int) -> tuple[Path, Path]:
    plain = folder / "plain.csv"
    with plain.open("w", encoding="utf-8") as f:
        f.write("handle,URL\n")
        for n in range(rows):
            f.write(f"{PREFIX}/P{n:010d},http://f.cn/p/{n}\n")
    names = [v.type for v in attribute_values(0)]
    linked = folder / "template.csv"
    with linked.open("w", encoding="utf-8") as f:
        f.write("handle,URL," + ",".join(names) + "\n")
        for n in range(rows):
            cells = [v.data_bytes.decode() for v in attribute_values(n)]
            f.write(f"{PREFIX}/P{n:010d},http://f.cn/p/{n}," + ",".join(cells) + "\n")
    return plain, linked


def new_node(folder: Path) -> Path:
    data = folder / "node"
    subprocess.run(
        [*IINODE, "init", "--role", "enterprise", "--prefix", PREFIX, "--data-dir", str(data),
         "--admin-secret", "bench"],
        check=True, capture_output=True,
    )  # fmt: skip

    async def define() -> None:
        settings = resolve_settings(data)
        store = await open_store(settings.store_url, base_dir=data)
        try:
            service = HandleService(settings, store)
            await service.templates.define(Template.from_json(DEFINITION, prefix=PREFIX), NODE)
        finally:
            await store.close()

    asyncio.run(define())
    return data


def timed_load(data: Path, file: Path, *extra: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        [*IINODE, "bulk-load", str(file), "--data-dir", str(data), *extra],
        check=True, capture_output=True, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"plain": [], "template": []}
    with tempfile.TemporaryDirectory() as d:
        plain, linked = write_files(Path(d), args.rows)
        for run in range(args.runs):
            for kind, file, extra in (
                ("plain", plain, ()),
                ("template", linked, ("--template", TEMPLATE)),
            ):
                with tempfile.TemporaryDirectory() as node_dir:
                    data = new_node(Path(node_dir))
                    rates[kind].append(args.rows / timed_load(data, file, *extra))
            print(f"run {run + 1}: plain {rates['plain'][-1]:,.0f}/s, "
                  f"template {rates['template'][-1]:,.0f}/s")  # fmt: skip
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"bulk-load of {args.rows:,} CSV rows, median of {args.runs}: plain {med['plain']:,.0f}/s, "
        f"against the template {med['template']:,.0f}/s = {med['template'] / med['plain']:.2f}x"
    )


if __name__ == "__main__":
    main()
