"""Node-wide native counters: every worker publishes into one shared block."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iinode.errors import ConfigurationError, HandleError
from iinode.identifiers import HandleName, IndexedHandle
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_counters import (
    COUNTERS_FILE,
    MAX_SLOTS,
    SharedCounterBlock,
    native_counter_slots,
    read_native_counters,
)
from iinode.resolution.native_server import start_native_workers
from iinode.resolution.native_sessions import NativeCounters
from native.golden import parse_response, resolution_request, udp_ask
from native.nodes import seed, url
from support import free_port

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")


def test_block_sums_slots_and_keeps_counts_of_closed_slots(tmp_path: Path) -> None:
    path = tmp_path / COUNTERS_FILE
    assert read_native_counters(tmp_path)["protocol_errors"] == 0
    one, two = SharedCounterBlock(path), SharedCounterBlock(path)
    assert one.slot != two.slot
    one.publish(NativeCounters(protocol_errors=3, requests=5))
    two.publish(NativeCounters(protocol_errors=4, auth_failures=1))
    totals = read_native_counters(tmp_path)
    assert (totals["protocol_errors"], totals["auth_failures"], totals["requests"]) == (7, 1, 5)
    one.close(NativeCounters(protocol_errors=10))
    # A new owner of the freed slot starts from what it holds: the sum never goes down.
    three = SharedCounterBlock(path)
    assert three.slot == one.slot
    three.publish(NativeCounters(protocol_errors=1))
    assert read_native_counters(tmp_path)["protocol_errors"] == 10 + 4 + 1
    two.close()
    three.close()


def test_slot_of_a_dead_process_is_reused(tmp_path: Path) -> None:
    path = tmp_path / COUNTERS_FILE
    code = (
        "import os, sys; from pathlib import Path; "
        "from iinode.resolution.native_counters import SharedCounterBlock; "
        "from iinode.resolution.native_sessions import NativeCounters; "
        "b = SharedCounterBlock(Path(sys.argv[1])); b.publish(NativeCounters(dropped=2)); "
        "os._exit(0)"  # dies without closing: its slot still names its pid
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    blocks = [SharedCounterBlock(path) for _ in range(MAX_SLOTS)]  # one reuses the dead slot
    try:
        assert read_native_counters(tmp_path)["dropped"] == 2
        with pytest.raises(ConfigurationError):
            SharedCounterBlock(path)
    finally:
        for block in blocks:
            block.close()


def test_a_foreign_file_is_reinitialised(tmp_path: Path) -> None:
    (tmp_path / COUNTERS_FILE).write_bytes(b"garbage" * 10)
    assert read_native_counters(tmp_path)["requests"] == 0
    block = SharedCounterBlock(tmp_path / COUNTERS_FILE)
    block.publish(NativeCounters(requests=1))
    assert read_native_counters(tmp_path)["requests"] == 1
    block.close()


def wait_for(data_dir: Path, name: str, at_least: int, timeout: float = 10.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        totals = read_native_counters(data_dir)
        if totals[name] >= at_least or time.monotonic() > deadline:
            return totals
        time.sleep(0.05)


def test_two_workers_add_up_protocol_errors_and_auth_failures(tmp_path: Path) -> None:
    port = free_port()
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8", handle_port=port
    )
    seed(settings, {"88.118.8/X": [url(1, "http://x/")]})
    address = ("127.0.0.1", port)
    with start_native_workers(settings, 2, host="127.0.0.1") as workers:
        for n in range(60):  # garbage from many source ports: both workers get some
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(os.urandom(8 + n % 7), address)
        for _ in range(10):  # TCP streams that stop parsing
            with socket.create_connection(address) as conn:
                conn.sendall(b"\x02\x01" + b"\xff" * 40)
                conn.recv(1024)

        async def wrong_secret() -> None:
            for _ in range(4):
                auth = SecretKeyAuth(ADMIN, "wrong")
                async with NativeAdminClient(*address, auth) as admin:
                    with pytest.raises(HandleError):
                        await admin.create(HandleName.parse("88.118.8/N"), [url(1, "http://n/")])

        asyncio.run(wrong_secret())
        totals = wait_for(tmp_path, "protocol_errors", 70)
        assert totals["protocol_errors"] == 70
        totals = wait_for(tmp_path, "auth_failures", 4)
        assert totals["auth_failures"] == 4
        answer = parse_response(udp_ask(address, resolution_request("88.118.8/X", 7)))
        assert answer["code"] == 1
        pids = {p.pid for p in workers.processes}
        slots = native_counter_slots(tmp_path)
        assert {pid for pid, _ in slots} == pids  # one slot per worker process
        assert all(counts["protocol_errors"] > 0 for _, counts in slots)  # both got garbage
    # Counts outlive the workers, and each worker process had its own slot.
    after = read_native_counters(tmp_path)
    assert after["protocol_errors"] == 70
    assert after["requests"] >= 1 + 4
