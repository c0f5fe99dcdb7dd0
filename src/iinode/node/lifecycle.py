"""Process life cycle of a node: stop signals, dying with the parent, claiming ports.

A node is one parent process (``iinode serve``) and its worker processes (native
protocol workers, HTTP workers with ``--workers N``) plus multiprocessing's
resource tracker.  Three rules keep that group clean:

* **Stop signals.** ``StopSignals`` turns SIGTERM, SIGINT and SIGHUP into one
  call of a function (the graceful stop); a signal repeated while stopping is
  passed on too, so the caller can decide to force.  SIGHUP stops like SIGTERM
  (settings are read at start; a changed node.toml takes effect on restart), and
  is left ignored when the process started with it ignored (``nohup``).
* **Workers die with their parent**, however the parent ends (``kill -9``
  included): ``die_with_parent`` asks Linux for a parent-death signal
  (``prctl(PR_SET_PDEATHSIG, SIGTERM)``) and also watches the pipe a
  multiprocessing child holds from its parent (end of file when the parent has
  gone), so the same happens on other systems and when the parent thread that
  started the worker is not the main one.  Either way the worker gets SIGTERM,
  stops gracefully, and is ended after ``grace`` seconds if it has not.  The
  resource tracker exits by itself once the last process holding its pipe is
  gone.
* **A port belongs to one node.** ``claim_ports`` refuses a port held by any
  other process: it probe-binds each port without ``SO_REUSEPORT`` (so a node
  whose workers share a port with ``SO_REUSEPORT`` cannot be joined silently)
  and, on Linux, holds an abstract Unix socket named after the port for the
  node's life, which closes the window between the probe and the workers' own
  binds against a second node starting at the same moment.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType

from iinode.errors import ConfigurationError

#: Seconds a worker whose parent has gone gets to stop before it ends itself.
ORPHAN_GRACE = 30.0
_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


# -- stop signals -------------------------------------------------------------------
class StopSignals:
    """Call ``on_signal(signum)`` for each SIGTERM, SIGINT or SIGHUP while entered.

    Handlers run in the main thread between two bytecodes, so ``on_signal`` should
    only set flags (or raise, to interrupt a blocking start-up).  The previous
    handlers come back on exit.  A signal ignored when entering (SIGHUP under
    ``nohup``) stays ignored.
    """

    def __init__(self, on_signal: Callable[[int], None]) -> None:
        self.on_signal = on_signal
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        self.on_signal(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may install handlers
        for sig in STOP_SIGNALS:
            previous = signal.getsignal(sig)
            if sig == signal.SIGHUP and previous == signal.SIG_IGN:
                continue
            self._previous[sig] = previous
            signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous = {}


def signal_name(signum: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(signum).name
    return f"signal {signum}"


# -- dying with the parent ----------------------------------------------------------
def set_parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``signum`` when the parent thread ends (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(*, death_signal: bool = True, grace: float = ORPHAN_GRACE) -> None:
    """Stop this multiprocessing child when its parent process ends, however it ends.

    ``death_signal`` also sets the Linux parent-death signal; leave it off when the
    parent started this process from a thread that may end before the parent does
    (the kernel signals at the end of that thread).  The pipe watch covers the rest.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return  # not a multiprocessing child
    if death_signal:
        set_parent_death_signal(signal.SIGTERM)
    ppid = parent.pid

    def gone() -> None:
        if parent.sentinel is not None:
            multiprocessing.connection.wait([parent.sentinel])
        else:  # pragma: no cover (every start method gives spawned children the pipe)
            while os.getppid() == ppid:
                time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=gone, name="parent-watch", daemon=True).start()
    if os.getppid() != ppid:  # the parent ended before the death signal was set
        os.kill(os.getpid(), signal.SIGTERM)


# -- claiming ports -----------------------------------------------------------------
@dataclass(frozen=True)
class Listener:
    """One address a node listens on, and the setting that chooses its port."""

    what: str
    host: str
    port: int
    transports: tuple[str, ...]
    #: How an operator chooses another port (the end of the refusal's line).
    hint: str

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def describe(self) -> str:
        return f"{self.address} ({'+'.join(t.upper() for t in self.transports)})"


class PortInUse(ConfigurationError):
    """A port of the node is held by another process."""


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def probe(host: str, port: int, transport: str) -> OSError | None:
    """Bind ``host:port`` as nobody else may share it; the error if that fails.

    TCP sets ``SO_REUSEADDR`` like the servers do (a port held only by closed
    connections in TIME_WAIT is free); neither sets ``SO_REUSEPORT``, so a port
    held by sockets that share it (another node's workers) is refused.
    """
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    with socket.socket(_family(host), kind) as sock:
        if transport == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def _lock_name(transport: str, port: int) -> str:
    """The lock of a port, whatever the address: 0.0.0.0:p and 127.0.0.1:p overlap
    (and a wildcard bind may still succeed next to a specific one), so two nodes
    starting together on them must not both pass."""
    return f"\0iinode-port/{transport}/{port}"


def _holder(name: str) -> int | None:
    """The process id holding the abstract lock socket ``name`` (it listens)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
        try:
            peer.settimeout(1.0)
            peer.connect(name)
            creds = peer.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        except OSError:
            return None
    pid = int.from_bytes(creds[:4], sys.byteorder)
    return pid or None


class PortClaims:
    """The locks a node holds on its ports (``claim_ports``); released on close."""

    def __init__(self, listeners: Iterable[Listener]) -> None:
        self.listeners = list(listeners)
        self._locks: list[socket.socket] = []
        self._names: set[str] = set()

    def _claim(self, listener: Listener) -> None:
        for transport in listener.transports:
            where = f"port {listener.address}/{transport} ({listener.what})"
            name = _lock_name(transport, listener.port)
            # (A name held already: the node's own listener on another address of this port.)
            if sys.platform.startswith("linux") and name not in self._names:
                lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    lock.bind(name)
                    lock.listen(16)
                except OSError:
                    lock.close()
                    holder = _holder(name)
                    owner = f"iinode node process {holder}" if holder else "another iinode node"
                    raise PortInUse(f"{where} is held by {owner}; {listener.hint}") from None
                self._locks.append(lock)
                self._names.add(name)
            error = probe(listener.host, listener.port, transport)
            if error is not None:
                if error.errno == errno.EADDRINUSE:
                    raise PortInUse(f"{where} is in use by another process; {listener.hint}")
                reason = error.strerror or str(error)
                raise PortInUse(f"{where} cannot be bound ({reason}); {listener.hint}")

    def close(self) -> None:
        locks, self._locks = self._locks, []
        self._names.clear()
        for lock in locks:
            lock.close()

    def __enter__(self) -> PortClaims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_WILDCARDS = ("", "0.0.0.0", "::")


def _check_distinct(listeners: list[Listener]) -> None:
    """Refuse two of the node's own listeners on one port and transport."""
    for n, later in enumerate(listeners):
        for earlier in listeners[:n]:
            wildcard = earlier.host in _WILDCARDS or later.host in _WILDCARDS
            same_host = wildcard or earlier.host == later.host
            shared = set(earlier.transports) & set(later.transports)
            if earlier.port == later.port and shared and same_host:
                raise PortInUse(
                    f"port {later.address}/{sorted(shared)[0]} is set for both the {earlier.what} "
                    f"and the {later.what}; {later.hint}"
                )


def claim_ports(listeners: Iterable[Listener]) -> PortClaims:
    """Claim every port of ``listeners`` for this process, or raise ``PortInUse``.

    Nothing stays claimed when one port is refused.
    """
    claims = PortClaims(listeners)
    _check_distinct(claims.listeners)
    try:
        for listener in claims.listeners:
            claims._claim(listener)
    except BaseException:
        claims.close()
        raise
    return claims


__all__ = [
    "ORPHAN_GRACE",
    "STOP_SIGNALS",
    "Listener",
    "PortClaims",
    "PortInUse",
    "StopSignals",
    "claim_ports",
    "die_with_parent",
    "probe",
    "set_parent_death_signal",
    "signal_name",
]
