"""``iinode serve``: a node's processes, started and stopped as one.

The command's process is the node's parent.  It claims every port the node
listens on (``node.lifecycle.claim_ports``: refused with one line if another
process, another node included, holds one), starts the native protocol workers
(``--native-workers``), then serves HTTP: in this process with one worker, or
in ``--workers N`` processes sharing one listening socket.  It prints every
address once all of them listen, and replaces a worker (native or HTTP) that dies
while the node runs.

SIGTERM, SIGINT and SIGHUP stop the node gracefully (``StopSignals``): the HTTP
servers drain and run the application's shut-down, which stops the connectors,
the embedded MQTT broker and telemetry ingest and closes the monitoring outbox,
so what was acknowledged is on disk; then the native workers stop.  A second
signal cuts the graceful part short.  Every worker also ends if this process is
killed (``die_with_parent``).  The command exits 0 after a signalled stop.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

import uvicorn
from rich.console import Console

from iinode.api.lease import LEASE_FILE, ProcessLease
from iinode.cli.common import configure_logging
from iinode.errors import ConfigurationError
from iinode.node.lifecycle import (
    Listener,
    StopSignals,
    claim_ports,
    die_with_parent,
    signal_name,
)
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_server import NativeWorkers, start_native_workers

#: Seconds the HTTP servers wait for open requests before closing them at a stop.
GRACEFUL_SECONDS = 10.0
#: Seconds the parent waits for a worker process to stop before killing it.
STOP_TIMEOUT = 30.0
#: Seconds a worker process may take to start.
START_TIMEOUT = 60.0


def node_listeners(settings: NodeSettings) -> list[Listener]:
    """Every address the node will listen on, from its settings."""
    found = [
        Listener("HTTP API", settings.http_host, settings.http_port, ("tcp",),
                 "set http_port (--http-port, IINODE_HTTP_PORT) to a free port"),
    ]  # fmt: skip
    if settings.handle_port:
        found.append(
            Listener("native Handle protocol", settings.http_host, settings.handle_port,
                     ("udp", "tcp"),
                     "set handle_port (--handle-port, IINODE_HANDLE_PORT) to a free port"),
        )  # fmt: skip
    if settings.role is Role.ENTERPRISE and settings.telemetry and settings.mqtt_url == "embedded":
        found.append(
            Listener("embedded MQTT broker", settings.mqtt_host, settings.embedded_mqtt_port,
                     ("tcp",), "set mqtt_port (--mqtt-port, IINODE_MQTT_PORT) to a free port, "
                     "or mqtt_url to an external broker"),
        )  # fmt: skip
    return found


class NodeHttpServer(uvicorn.Server):
    """uvicorn's server, leaving signals to the node (``StopSignals``).

    uvicorn's own handling re-raises SIGTERM once it has shut down, which ends the
    process before anything after ``run`` (the native workers' stop) can run.
    """

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None = None):
        super().__init__(config)
        self.on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit and self.on_started is not None:
            self.on_started()

    def request_stop(self, force: bool = False) -> None:
        self.should_exit = True
        if force:
            self.force_exit = True


def _config(settings: NodeSettings) -> uvicorn.Config:
    from iinode.assembly import app_for_settings  # the one assembly of a node

    return uvicorn.Config(
        app_for_settings(settings), host=settings.http_host, port=settings.http_port,
        log_level="warning", timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
    )  # fmt: skip


def prepare_worker(*, death_signal: bool, verbose: bool) -> None:
    """Set a spawned worker process up: it ends with its parent, and logs as the parent.

    A spawned process starts with Python's default logging, which prints every
    library's warnings; ``configure_logging`` keeps them out as in the parent
    (shown with ``iinode --verbose``).
    """
    die_with_parent(death_signal=death_signal)
    configure_logging(verbose=verbose)


def _http_worker(
    settings: NodeSettings,
    sock: socket.socket,
    ready: Connection,
    death_signal: bool,
    verbose: bool,
) -> None:
    """Body of one HTTP worker process (``--workers N``); settings arrive as data."""
    prepare_worker(death_signal=death_signal, verbose=verbose)

    def started() -> None:
        with contextlib.suppress(OSError):  # the parent may have given up already
            ready.send("ok")
        ready.close()

    server = NodeHttpServer(_config(settings), on_started=started)
    # Repeated signals do not force: the terminal's SIGINT and the parent's SIGTERM
    # both reach a worker; only the parent escalates (SIGKILL after STOP_TIMEOUT).
    with StopSignals(lambda _: server.request_stop()):
        server.run(sockets=[sock])


def _bind_http(settings: NodeSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.http_host, settings.http_port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class HttpWorkers:
    """``--workers N`` HTTP processes on one listening socket."""

    settings: NodeSettings
    count: int
    sock: socket.socket
    #: The parent's ``--verbose``: the workers log as the parent does.
    verbose: bool = False
    processes: list[BaseProcess] = field(default_factory=list)
    restarts: int = 0

    def _spawn(self) -> tuple[BaseProcess, Connection]:
        context = multiprocessing.get_context("spawn")
        reader, writer = context.Pipe(duplex=False)
        death_signal = threading.current_thread() is threading.main_thread()
        process = context.Process(
            target=_http_worker,
            args=(self.settings, self.sock, writer, death_signal, self.verbose),
            name="iinode-http", daemon=True,
        )  # fmt: skip
        process.start()
        writer.close()
        return process, reader

    def _await_ready(self, started: list[tuple[BaseProcess, Connection]]) -> None:
        waiting = dict((reader, process) for process, reader in started)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while waiting:
                left = max(0.0, deadline - time.monotonic())
                ready = wait([*waiting, *(p.sentinel for p in waiting.values())], left)
                if not ready:
                    raise ConfigurationError(f"the HTTP workers did not start in {START_TIMEOUT} s")
                for reader in [r for r in waiting if r in ready or waiting[r].sentinel in ready]:
                    try:
                        ok = reader.poll() and reader.recv() == "ok"
                    except EOFError:
                        ok = False
                    reader.close()
                    process = waiting.pop(reader)
                    if not ok:
                        process.join(1.0)
                        raise ConfigurationError(
                            f"an HTTP worker failed to start (exit code {process.exitcode}); "
                            "see the messages above"
                        )
        finally:
            for reader in waiting:
                reader.close()

    def start(self) -> None:
        started = [self._spawn() for _ in range(self.count)]
        self.processes = [process for process, _ in started]
        self._await_ready(started)

    def replace_dead(self, report: Callable[[str], None]) -> None:
        """Start a new worker for each one that has died (after a successful start)."""
        for n, process in enumerate(self.processes):
            if process.is_alive():
                continue
            process.join(0)
            report(f"HTTP worker process {process.pid} exited with code {process.exitcode}; "
                   "started another")  # fmt: skip
            new, reader = self._spawn()
            self.processes[n] = new
            self.restarts += 1
            self._await_ready([(new, reader)])

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the workers: the lease holder last, so no other worker takes its
        once-only work (broker, ingest, monitoring sender) over while stopping."""
        holder = ProcessLease(self.settings.data_dir / LEASE_FILE).holder()
        first = [p for p in self.processes if p.pid != holder]
        deadline = time.monotonic() + timeout
        _stop_processes(first, timeout)
        _stop_processes([p for p in self.processes if p not in first], deadline - time.monotonic())
        self.sock.close()


def _stop_processes(processes: list[BaseProcess], timeout: float) -> None:
    """SIGTERM, up to ``timeout`` seconds for all to exit, then SIGKILL."""
    timeout = max(timeout, 1.0)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(5.0)


class _Stopping(BaseException):
    """A stop signal arrived while the node was starting (interrupts the start)."""


@dataclass
class NodeRunner:
    """One ``iinode serve`` run (see the module docstring)."""

    settings: NodeSettings
    workers: int = 1
    native_workers: int | None = None
    console: Console = field(default_factory=Console)
    #: ``iinode --verbose``: passed on to the HTTP worker processes' logging.
    verbose: bool = False
    signals: list[int] = field(default_factory=list)
    _server: NodeHttpServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _starting: bool = True
    _failure: str | None = None

    def _on_signal(self, signum: int) -> None:
        first = not self.signals
        self.signals.append(signum)
        self._stop.set()
        if self._server is not None:
            self._server.request_stop(force=not first)
        elif first and self._starting:
            raise _Stopping(signum)

    def listening(self, native: NativeWorkers | None, http_processes: int) -> list[str]:
        """The lines ``serve`` prints once the node listens: one per address."""
        lines = []
        for listener in node_listeners(self.settings):
            line = f"listening on {listener.describe()}: {listener.what}"
            if listener.what == "HTTP API" and http_processes > 1:
                line += f", {http_processes} processes"
            elif listener.what == "native Handle protocol" and native is not None:
                count = len(native.processes)
                line += f", {count} worker process{'' if count == 1 else 'es'}"
            lines.append(line)
        return lines

    def run(self) -> None:
        """Serve until a stop signal; raise ``ConfigurationError`` if the node cannot start."""
        s = self.settings
        if self.workers < 1:
            raise ConfigurationError("--workers must be at least 1")
        with claim_ports(node_listeners(s)), StopSignals(self._on_signal):
            native: NativeWorkers | None = None
            http: HttpWorkers | None = None
            try:
                self.console.print(
                    f"{s.role.value} node {s.prefix or ''} on {s.http_url}", soft_wrap=True
                )
                if s.handle_port:
                    native = start_native_workers(s, self.native_workers)
                if self.workers == 1:
                    watch = threading.Thread(
                        target=self._supervise, args=(native, None), name="supervise", daemon=True
                    )
                    watch.start()
                    self._serve_here(native)
                else:
                    http = HttpWorkers(s, self.workers, _bind_http(s), self.verbose)
                    http.start()
                    self._starting = False
                    self._announce(native, self.workers)
                    self._supervise(native, http)
            except _Stopping:
                pass
            finally:
                self._starting = False
                self._stop.set()
                if http is not None:
                    http.stop()
                if native is not None:
                    native.stop()
        if self._failure is not None:
            raise ConfigurationError(self._failure)
        if self.signals:
            self.console.print(f"node stopped ({signal_name(self.signals[0])})", soft_wrap=True)

    def _supervise(self, native: NativeWorkers | None, http: HttpWorkers | None) -> None:
        """Replace worker processes that die while the node runs, until it stops."""

        def say(line: str) -> None:
            self.console.print(line, highlight=False, soft_wrap=True)

        while not self._stop.wait(0.5):
            try:
                if http is not None:
                    http.replace_dead(say)
                if native is not None:
                    for pid, code in native.replace_dead():
                        say(f"native worker process {pid} exited with code {code}; "
                            "started another")  # fmt: skip
            except ConfigurationError as exc:
                self._failure = str(exc)
                self._stop.set()
                if self._server is not None:
                    self._server.request_stop()

    def _announce(self, native: NativeWorkers | None, http_processes: int) -> None:
        for line in self.listening(native, http_processes):
            self.console.print(line, highlight=False, soft_wrap=True)

    def _serve_here(self, native: NativeWorkers | None) -> None:
        def started() -> None:
            self._starting = False
            self._announce(native, 1)

        server = NodeHttpServer(_config(self.settings), on_started=started)
        self._server = server
        if self._stop.is_set():  # a signal came between the native start and now
            server.request_stop()
        server.run()


def run_node(
    settings: NodeSettings,
    *,
    workers: int = 1,
    native_workers: int | None = None,
    console: Console | None = None,
    verbose: bool = False,
) -> None:
    """Serve ``settings``' node until SIGTERM, SIGINT or SIGHUP (``iinode serve``)."""
    NodeRunner(settings, workers, native_workers, console or Console(), verbose).run()


__all__ = ["NodeHttpServer", "NodeRunner", "node_listeners", "prepare_worker", "run_node"]
