"""``iinode serve``'s lines and its worker processes' set-up, without serving."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from iinode.cli.serve import NodeRunner
from iinode.node.settings import NodeSettings, Role


@dataclass
class _Workers:
    processes: list[object] = field(default_factory=list)


def _lines(workers: int, tmp_path: Path) -> list[str]:
    settings = NodeSettings(role=Role.TOP, data_dir=tmp_path, prefix="88", http_port=27140,
                            handle_port=27141)  # fmt: skip
    runner = NodeRunner(settings, console=Console(file=None))
    return runner.listening(_Workers([object()] * workers), 1)  # type: ignore[arg-type]


def test_one_native_worker_is_one_process(tmp_path: Path) -> None:
    assert _lines(1, tmp_path)[-1].endswith("native Handle protocol, 1 worker process")
    assert _lines(3, tmp_path)[-1].endswith("native Handle protocol, 3 worker processes")


WORKER = """
import logging
from iinode.cli.serve import prepare_worker
prepare_worker(death_signal=False, verbose={verbose})
logging.getLogger("asyncua.client").warning("library-noise")
logging.getLogger("iinode.assembly").warning("node-warning")
"""


def _worker_log(verbose: bool) -> str:
    code = WORKER.format(verbose=verbose)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    return done.stderr


def test_a_worker_process_keeps_library_noise_out_as_the_parent_does() -> None:
    quiet = _worker_log(verbose=False)
    assert "node-warning" in quiet
    assert "library-noise" not in quiet
    loud = _worker_log(verbose=True)
    assert "WARNING asyncua.client: library-noise" in loud
