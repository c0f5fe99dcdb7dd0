"""Same-run references for the native UDP benchmark: NSD (a C DNS server) and a bare Python loop.

Both are driven by the C load generator in ``bench/udp_load.c`` exactly as iinode is, and the CPU
each server spends is read from /proc, so ``bench/native_udp.py`` can report iinode's answers per
second and CPU per answer as ratios against them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class LoadResult:
    answered: int
    lost: int
    seconds: float
    rate: float
    p50_us: float
    p99_us: float
    cpu_seconds: float

    @property
    def cpu_us_per_answer(self) -> float:
        return self.cpu_seconds / max(self.answered, 1) * 1e6


def build_generator(workdir: Path) -> Path:
    """Compile the load generator (gcc is on every machine of this project)."""
    binary = workdir / "udp_load"
    subprocess.run(
        ["cc", "-O2", "-o", str(binary), str(HERE / "udp_load.c")], check=True, capture_output=True
    )
    return binary


def write_templates(path: Path, requests: Sequence[bytes]) -> None:
    with path.open("wb") as out:
        for request in requests:
            out.write(struct.pack(">H", len(request)) + request)


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the given processes (and their threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def run_load(
    generator: Path,
    port: int,
    templates: Path,
    *,
    id_offset: int,
    id_width: int,
    count: int,
    window: int,
    server_pids: Sequence[int],
) -> LoadResult:
    """Drive a server with the generator and charge it the CPU its process trees used."""
    pids = [pid for root in server_pids for pid in _descendants(root)]
    before = cpu_seconds(pids)
    out = subprocess.run(
        [str(generator), "127.0.0.1", str(port), str(templates), str(id_offset), str(id_width),
         str(count), str(window)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    after = cpu_seconds(pids)
    row = json.loads(out)
    return LoadResult(
        answered=row["answered"],
        lost=row["lost"],
        seconds=row["seconds"],
        rate=row["rate"],
        p50_us=row["p50_us"],
        p99_us=row["p99_us"],
        cpu_seconds=after - before,
    )


def wait_udp(port: int, probe: bytes, timeout: float = 10.0) -> None:
    """Wait until a server answers ``probe`` on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            sock.sendto(probe, ("127.0.0.1", port))
            try:
                sock.recvfrom(4096)
                return
            except OSError:
                continue
    raise RuntimeError(f"nothing answers on udp/{port}")


# -- DNS / NSD ---------------------------------------------------------------------------------

ZONE = "example.cn"


def dns_query(name: str, qtype: int = 16) -> bytes:
    """A standard DNS query (id 0, RD clear) for ``name``; TXT by default."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 0) + labels + struct.pack(">HH", qtype, 1)


def _txt_rdata(size: int) -> str:
    """A TXT record of ``size`` characters in strings of at most 255."""
    text = ("0123456789abcdef" * (size // 16 + 1))[:size]
    return " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))


def dns_answer_size(port: int, name: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(dns_query(name), ("127.0.0.1", port))
        return len(sock.recvfrom(4096)[0])


@contextmanager
def nsd_server(port: int, workers: int, answer_size: int) -> Iterator[tuple[int, list[str]]]:
    """Run NSD serving TXT records at h0..h99.example.cn whose answers are ~answer_size octets.

    Yields the NSD process id and the query names.
    """
    nsd = shutil.which("nsd") or "/usr/sbin/nsd"
    if not Path(nsd).exists():
        raise RuntimeError("NSD is not installed: apt-get install -y nsd")
    names = [f"h{i}.{ZONE}" for i in range(100)]
    # DNS answer = 12 header + question (name + 4) + answer RR (2 ptr + 10 + rdata); a TXT
    # rdata of n octets in k strings costs n + k octets.
    overhead = 12 + (len(names[0]) + 2 + 4) + 12
    txt = max(answer_size - overhead - (answer_size // 255 + 1), 1)
    with tempfile.TemporaryDirectory(prefix="iinode-nsd-") as tmp:
        root = Path(tmp)
        records = "\n".join(f"{n.split('.')[0]} IN TXT {_txt_rdata(txt)}" for n in names)
        (root / f"{ZONE}.zone").write_text(
            f"$ORIGIN {ZONE}.\n$TTL 3600\n"
            f"@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 3600\n"
            f"@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n{records}\n"
        )
        (root / "nsd.conf").write_text(
            f"""server:
    ip-address: 127.0.0.1
    port: {port}
    server-count: {workers}
    reuseport: yes
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{root}"
    pidfile: "{root}/nsd.pid"
    database: ""
    zonelistfile: "{root}/zone.list"
    xfrdfile: "{root}/xfrd.state"
    logfile: "{root}/nsd.log"
    hide-version: yes
    minimal-responses: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    verbosity: 0
remote-control:
    control-enable: no
zone:
    name: {ZONE}
    zonefile: {ZONE}.zone
"""
        )
        proc = subprocess.Popen([nsd, "-d", "-c", str(root / "nsd.conf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            wait_udp(port, dns_query(names[0]))
            yield proc.pid, names
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- bare Python loop ------------------------------------------------------------------------

_LOOP = """
import os, socket, sys
port, answer = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", port))
recv, send = s.recvfrom, s.sendto
while True:
    data, peer = recv(2048)
    send(data[:12] + answer[12:], peer)
"""


@contextmanager
def python_loop(port: int, workers: int, answer: bytes) -> Iterator[int]:
    """``workers`` bare Python recvfrom/sendto processes on one SO_REUSEPORT port.

    Each answers with ``answer`` carrying the request's first 12 octets (which hold the Handle
    envelope's request id), i.e. the least work a Python server can do per datagram.  Yields the
    pid of the shell that parents them, so their CPU time can be read as one tree.
    """
    one = f"{shlex.quote(sys.executable)} -c {shlex.quote(_LOOP)} {port} {answer.hex()}"
    script = " & ".join([one] * workers) + " & wait"
    proc = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    try:
        wait_udp(port, answer)
        yield proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


__all__ = [
    "LoadResult",
    "build_generator",
    "cpu_seconds",
    "dns_answer_size",
    "dns_query",
    "nsd_server",
    "python_loop",
    "run_load",
    "wait_udp",
    "write_templates",
]
