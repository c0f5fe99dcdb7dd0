"""The README's "Running a node" walkthrough, run as written.

The section's first ``sh`` block installs and activates ``.venv``; the test stands in
for it by putting the repository's ``.venv/bin`` on PATH as activation does.  Every
later ``sh`` block runs verbatim, in order, in one bash process (like one terminal)
started in a temporary directory (``TMPDIR``, so the walkthrough's ``mktemp -d`` lands
there).  The ``text`` blocks after an ``sh`` block are what users are told to expect:
each of their lines must appear in what that block printed (runs of blanks compare
equal, ``…`` matches anything).  Background ``serve`` processes are stopped afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV = Path(sys.prefix)
HEADING = "## Running a node"
END = "<!-- The walkthrough ends here"
MARK = "@@walkthrough block {}@@"


@dataclass
class Block:
    script: str
    expected: list[str] = field(default_factory=list)


def walkthrough() -> tuple[str, list[Block]]:
    """The install block and the blocks to run, from the README's section."""
    text = README.read_text(encoding="utf-8")
    start = text.index(HEADING)
    end = text.index(END, start)
    fences = re.findall(r"^```(\w+)\n(.*?)^```$", text[start:end], flags=re.M | re.S)
    blocks: list[Block] = []
    for lang, body in fences:
        if lang == "sh":
            blocks.append(Block(body))
        elif lang == "text":
            assert blocks, "a text block before any sh block"
            blocks[-1].expected += [line for line in body.splitlines() if line.strip()]
    assert len(blocks) > 2, "the walkthrough has no blocks"
    return blocks[0].script, blocks[1:]


def ports(blocks: list[Block]) -> set[int]:
    """Every port the walkthrough serves on (the MQTT broker's is http_port + 10000)."""
    found: set[int] = set()
    for block in blocks:
        http = [int(p) for p in re.findall(r"--http-port (\d+)", block.script)]
        found.update(http, (p + 10_000 for p in http))
        found.update(int(p) for p in re.findall(r"--handle-port (\d+)", block.script))
    return found


def busy(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return True
    return False


def squeeze(line: str) -> str:
    return " ".join(line.split())


def appears(expected: str, output: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in squeeze(expected).split("…"))
    return any(re.search(pattern, squeeze(line)) for line in output.splitlines())


def test_install_block_activates_the_venv() -> None:
    install, _ = walkthrough()
    assert "pip install -e ." in install
    assert ". .venv/bin/activate" in install
    assert (VENV / "bin" / "iinode").exists(), "the test runs from the repository's .venv"


def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    _, blocks = walkthrough()
    held = sorted(p for p in ports(blocks) if busy(p))
    assert not held, f"the README's ports {held} are in use; free them to run the walkthrough"
    script = "set -e\n" + "".join(
        f"echo '{MARK.format(n)}'\n{block.script}" for n, block in enumerate(blocks)
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "VIRTUAL_ENV")
        and not (k.startswith("IINODE_") and k != "IINODE_REQUIRE_SERVICES")
    }
    env |= {
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(VENV),
        "TMPDIR": str(tmp_path),
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=150)
    finally:
        _stop_group(proc)
    took = time.monotonic() - started
    assert proc.returncode == 0, f"the walkthrough failed ({proc.returncode}):\n{output}"

    parts = re.split(r"^@@walkthrough block (\d+)@@$", output, flags=re.M)
    printed = {int(n): text for n, text in zip(parts[1::2], parts[2::2], strict=True)}
    assert sorted(printed) == list(range(len(blocks))), output
    for n, block in enumerate(blocks):
        missing = [line for line in block.expected if not appears(line, printed[n])]
        assert not missing, f"block {n} did not print {missing}:\n{block.script}\n{printed[n]}"
    assert "Traceback" not in output, output
    # Piped, tables are plain text: no box drawing, nothing cut at 80 columns.
    assert not re.search("[\u2500-\u257f]", output), output
    assert took < 150


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """End whatever the walkthrough left running (its own process group)."""
    for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("line", ["1 URL http://x", "  1.  88.1/A  @ http://h  OK"])
def test_expected_lines_compare_blanks_loosely(line: str) -> None:
    assert appears(line, f"before\n{line.replace(' ', '   ')}\nafter")
    assert not appears(line + "Z", line)
