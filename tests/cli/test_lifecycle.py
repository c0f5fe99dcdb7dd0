"""A node's processes start and stop as one (real ``iinode serve`` processes).

Each node runs in its own session, so its process group holds the parent, the
native and HTTP workers and multiprocessing's resource tracker; after every kind
of stop the group must be empty and every port the node printed bindable again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.cli_support import ENV, free_range, http_port, init
from iinode.node.settings import NodeSettings

# SIGHUP may be ignored by whoever started pytest (nohup), and an ignored SIGHUP
# stays ignored in ``serve``; the node under test gets the default disposition.
LAUNCH = [
    sys.executable, "-c",
    "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'iinode', *sys.argv[1:]])",
]  # fmt: skip


@dataclass
class Node:
    data: Path
    http: int
    handle: int

    @property
    def mqtt(self) -> int:
        return NodeSettings.load(self.data).embedded_mqtt_port

    def expected(self) -> set[tuple[int, str]]:
        return {(self.http, "TCP"), (self.handle, "UDP+TCP"), (self.mqtt, "TCP")}


def make_node(tmp: Path, name: str = "ent", handle: int | None = None) -> Node:
    node = Node(tmp / name, http_port(), handle or free_range(1))
    init(node.data, "enterprise", "88.5", node.http, "pw", "--handle-port", str(node.handle))
    return node


def launch(node: Node, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    log = node.data.with_suffix(f".{time.monotonic_ns()}.log")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*LAUNCH, "serve", "--data-dir", str(node.data), "--native-workers", "2", *extra],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True,
        )  # fmt: skip
    return proc, log


def listening(proc: subprocess.Popen[str], log: Path, count: int = 3) -> set[tuple[int, str]]:
    """The (port, transports) pairs ``serve`` printed, once it printed ``count`` of them."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = [ln for ln in log.read_text().splitlines() if ln.startswith("listening on ")]
        if len(lines) >= count:
            found = set()
            for line in lines:
                address, transports = line.removeprefix("listening on ").split(" ", 1)
                found.add((int(address.rsplit(":", 1)[1]), transports.split(")")[0][1:]))
            return found
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"serve did not print its ports:\n{log.read_text()}")


def group(pgid: int) -> list[int]:
    """Live processes (not zombies) of process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def bindable(port: int, transports: str) -> list[str]:
    """The transports of ``port`` nobody holds any more (bound like the node binds)."""
    free = []
    for transport in transports.split("+"):
        kind = socket.SOCK_STREAM if transport == "TCP" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:  # TIME_WAIT of closed connections is no holder
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                free.append(transport)
            except OSError:
                pass
    return free


def assert_gone(pgid: int, ports: set[tuple[int, str]], limit: float = 45.0) -> None:
    deadline = time.monotonic() + limit
    while group(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = group(pgid)
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in left]
    for port, transports in ports:
        assert "+".join(bindable(port, transports)) == transports, (port, transports)


@contextmanager
def running(node: Node, *extra: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    proc, log = launch(node, *extra)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


STOPS = [
    pytest.param(signal.SIGTERM, 1, id="SIGTERM"),
    pytest.param(signal.SIGINT, 1, id="SIGINT"),
    pytest.param(signal.SIGHUP, 1, id="SIGHUP"),
    pytest.param(signal.SIGKILL, 1, id="SIGKILL"),
    pytest.param(signal.SIGTERM, 2, id="SIGTERM-workers-2"),
    pytest.param(signal.SIGKILL, 2, id="SIGKILL-workers-2"),
]


@pytest.mark.parametrize(("stop", "workers"), STOPS)
def test_every_stop_leaves_no_process_and_no_port(
    tmp_path: Path, stop: signal.Signals, workers: int
) -> None:
    node = make_node(tmp_path)
    with running(node, "--workers", str(workers)) as (proc, log):
        ports = listening(proc, log)
        assert ports == node.expected(), log.read_text()
        url = f"http://127.0.0.1:{node.http}"
        assert httpx.get(f"{url}/api/node").json()["handlePort"] == node.handle
        members = group(proc.pid)
        # parent, resource tracker, two native workers (and the HTTP workers)
        assert len(members) == 4 + (workers if workers > 1 else 0), members
        for port, transports in ports:
            assert bindable(port, transports) == [], (port, "still free while serving")
        assert list(node.data.rglob("*.sqlite3-wal")), "open SQLite stores have a WAL file"

        os.kill(proc.pid, stop)
        code = proc.wait(timeout=40)
        assert_gone(proc.pid, ports)
    out = log.read_text()
    if stop is not signal.SIGKILL or workers > 1:
        # every process closed its stores (handles, monitoring outbox and events, notices):
        # SQLite removes the WAL when the last connection closes cleanly; with HTTP workers
        # the parent holds none, and its death stops the workers gracefully
        assert list(node.data.rglob("*.sqlite3-wal")) == [], log.read_text()
    if stop is signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 0, out
        assert f"node stopped ({stop.name})" in out
    assert "Traceback" not in out
    assert "Error" not in out, out
    assert "leaked" not in out, out


def _refused(node: Node) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [*LAUNCH, "serve", "--data-dir", str(node.data), "--native-workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        start_new_session=True,
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert group(proc.pid) == [], "a refused node left processes behind"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "listening on" not in proc.stdout
    return lines[0]


def test_a_second_node_on_a_held_handle_port_is_refused(tmp_path: Path) -> None:
    first = make_node(tmp_path, "first")
    second = make_node(tmp_path, "second", handle=first.handle)
    with running(first) as (proc, log):
        ports = listening(proc, log)
        line = _one_line(_refused(second))
        assert f"127.0.0.1:{first.handle}" in line
        assert f"iinode node process {proc.pid}" in line
        assert "handle_port" in line
        assert "IINODE_HANDLE_PORT" in line
        # the first node keeps its port alone and still answers
        assert httpx.get(f"http://127.0.0.1:{first.http}/healthz").text == "ok"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        assert_gone(proc.pid, ports)
    # once the first node has stopped, the second one starts on the same port
    with running(second) as (proc, log):
        assert (first.handle, "UDP+TCP") in listening(proc, log)


def _udp_sharer(port: int) -> socket.socket:
    """A UDP socket as a node's native worker binds it (SO_REUSEPORT)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    return s


def _tcp_listener(port: int) -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


@pytest.mark.parametrize("held", ["http", "handle-udp", "handle-tcp", "mqtt"])
def test_a_port_held_by_another_program_is_refused(tmp_path: Path, held: str) -> None:
    node = make_node(tmp_path)
    port, setting, holder = {
        "http": (node.http, "http_port", _tcp_listener),
        "handle-udp": (node.handle, "handle_port", _udp_sharer),
        "handle-tcp": (node.handle, "handle_port", _tcp_listener),
        "mqtt": (node.mqtt, "mqtt_port", _tcp_listener),
    }[held]
    with holder(port):
        line = _one_line(_refused(node))
    assert f"127.0.0.1:{port}" in line
    assert "in use by another process" in line
    assert setting in line
    assert f"IINODE_{setting.upper()}" in line
    for p, transports in node.expected():  # nothing of the node is left holding a port
        assert "+".join(bindable(p, transports)) == transports, (p, transports)


def _workers(pid: int) -> list[int]:
    """The worker processes of ``pid`` in start order (not the resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except OSError:
            continue
    return sorted(found)


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    with running(node, "--workers", "2") as (proc, log):
        ports = listening(proc, log)
        before = _workers(proc.pid)
        assert len(before) == 4, before  # two native workers first, then two HTTP workers
        native, http = before[0], before[-1]
        os.kill(native, signal.SIGKILL)
        os.kill(http, signal.SIGKILL)
        reports = [
            f"native worker process {native} exited with code -9; started another",
            f"HTTP worker process {http} exited with code -9; started another",
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = _workers(proc.pid)
            replaced = len(after) == 4 and native not in after and http not in after
            if replaced and all(line in log.read_text() for line in reports):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"not replaced: {before} -> {after}\n{log.read_text()}")
        for _ in range(10):  # fresh connections reach either HTTP worker
            assert httpx.get(f"http://127.0.0.1:{node.http}/healthz").text == "ok"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        assert_gone(proc.pid, ports)
