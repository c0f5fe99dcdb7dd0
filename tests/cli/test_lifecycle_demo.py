"""``iinode demo`` stops cleanly on a signal, removing its temporary directory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli.cli_support import ENV, free_range
from cli.test_lifecycle import LAUNCH, bindable, group
from iinode.demo.topology import FIELD_PORTS, NETWORK, ports_needed


@pytest.mark.parametrize(
    ("stop", "after"),
    [
        pytest.param(signal.SIGTERM, "serving; press Ctrl-C", id="SIGTERM-serving"),
        pytest.param(signal.SIGINT, "started enterprise", id="SIGINT-starting"),
    ],
)
def test_the_demo_stops_without_noise_and_leaves_nothing(
    tmp_path: Path, stop: signal.Signals, after: str
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    base = free_range(ports_needed())
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [*LAUNCH, "demo", "--base-port", str(base), "--products", "50"],
            stdout=out, stderr=subprocess.STDOUT, text=True, env={**ENV, "TMPDIR": str(temp)},
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while after not in log.read_text():
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert [p.name[:12] for p in temp.iterdir()] == ["iinode-demo-"]
        os.kill(demo.pid, stop)
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    text = log.read_text()
    assert code == 0, text
    assert text.rstrip().endswith(f"demo stopped ({stop.name})"), text
    for noise in ("Traceback", "Error", "error", "WARNING", "Exception"):
        assert noise not in text, text
    assert list(temp.iterdir()) == [], "the temporary directory is left behind"
    assert group(demo.pid) == []
    nodes = len(NETWORK)
    udp_from = base + ports_needed() - FIELD_PORTS - nodes  # the handle ports, UDP and TCP
    for port in range(base, base + ports_needed()):
        transports = "UDP+TCP" if udp_from <= port < udp_from + nodes else "TCP"
        assert "+".join(bindable(port, transports)) == transports, port
