"""Native protocol server processes: ``NativeServer`` (one process) and ``start_native_workers``.

One ``NativeServer`` owns an event loop thread (store, ``HandleService``,
``NativeHandler``, the asyncio TCP server, the UDP slow path) and a UDP thread
running the blocking fast path.  ``start_native_workers`` starts N such
processes (default: one per CPU) that all bind the same UDP and TCP port with
SO_REUSEPORT, so the kernel spreads clients over them.  Each process opens its
own store connection (SQLite in WAL mode or a PostgreSQL pool) and maps the
data directory's ``ChangeCounter``, so a write made through any process (native
or REST) empties every process's answer cache.  Each process also publishes its
``NativeCounters`` into the data directory's shared counter block
(``native_counters``), whose node-wide sums ``read_native_counters`` returns,
and, just before them, its worst offending source addresses (``OffenderLog``).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from iinode.errors import ConfigurationError
from iinode.identifiers import SiteData, site_for
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.lifecycle import StopSignals, die_with_parent
from iinode.node.service import HandleService, site_from_url
from iinode.node.settings import NodeSettings, Role
from iinode.proto import DEFAULT_PORT, ProtoLimits
from iinode.resolution.http import HttpResolver
from iinode.resolution.native_client import NativeResolver
from iinode.resolution.native_counters import COUNTERS_FILE, OffenderLog, SharedCounterBlock
from iinode.resolution.native_handler import LIST_CHUNK_BYTES, NativeHandler, Resolver
from iinode.resolution.native_sessions import NativeCounters, OffenderTally
from iinode.resolution.native_tcp import TcpTransport
from iinode.resolution.native_trust import learn_server_key
from iinode.resolution.native_udp import UdpTransport
from iinode.resolution.shared_cache import resolution_cache_for
from iinode.storage import HandleStore, open_store

_RECEIVE_BUFFER = 4 * 1024 * 1024


def recursive_resolver(settings: NodeSettings) -> Resolver | None:
    """The resolver of a recursive node: native if the root's handle port is known."""
    if settings.role is not Role.RECURSIVE or not settings.parent_url:
        return None
    cache = resolution_cache_for(settings)
    if settings.parent_handle_port is not None:
        root = site_from_url(settings.parent_url, settings.parent_handle_port)
        return NativeResolver([root], cache=cache, max_referrals=settings.max_referrals)
    return HttpResolver(
        [site_from_url(settings.parent_url)], cache=cache, max_referrals=settings.max_referrals
    )


def bind_udp(host: str, port: int, *, reuse_port: bool = True) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class NativeServer:
    """The native front end of one process (see the module docstring)."""

    def __init__(
        self,
        settings: NodeSettings,
        *,
        host: str | None = None,
        port: int | None = None,
        limits: ProtoLimits | None = None,
        fast_path: bool = True,
        reuse_port: bool = True,
        publish_interval: float = 0.25,
    ) -> None:
        port = port if port is not None else settings.handle_port
        self.port = DEFAULT_PORT if port is None else port
        self.settings = settings.with_overrides(handle_port=self.port)
        self.host = host or settings.http_host
        self.limits = limits or ProtoLimits()
        self.fast_path = fast_path
        self.reuse_port = reuse_port
        self.counters = NativeCounters()
        self.offenders = OffenderTally()
        self.offender_log: OffenderLog | None = None
        #: Seconds between publications of ``counters`` into the shared block.
        self.publish_interval = publish_interval
        self.shared_counters: SharedCounterBlock | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._run_loop, name="native-loop", daemon=True)
        self._udp_thread: threading.Thread | None = None
        self._store: HandleStore | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tcp: TcpTransport | None = None
        self.udp: UdpTransport | None = None
        self.handler: NativeHandler | None = None
        self.changes: ChangeCounter | None = None

    # -- life cycle -----------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        self._loop_thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(timeout)
        assert self.udp is not None
        self._udp_thread = threading.Thread(target=self.udp.run, name="native-udp", daemon=True)
        self._udp_thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self.udp is not None:
            self.udp.close()
        if self._udp_thread is not None:
            self._udp_thread.join(timeout)
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(timeout)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    async def _open(self) -> None:
        settings = self.settings
        store = await open_store(settings.store_url, base_dir=settings.data_dir)
        self._store = store
        shared = settings.store_url not in ("memory:", "memory://")
        if shared:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.changes = ChangeCounter(settings.data_dir / COUNTER_FILE if shared else None)
        if shared:
            self.shared_counters = SharedCounterBlock(settings.data_dir / COUNTERS_FILE)
            self.offender_log = OffenderLog(settings.data_dir, self.shared_counters.slot)
            self._publisher = asyncio.get_running_loop().create_task(self._publish())
        service = HandleService(settings, store, changes=self.changes, learn_key=learn_server_key)
        handler = NativeHandler(
            service, self.own_site(service), resolver=recursive_resolver(settings),
            counters=self.counters, offenders=self.offenders,
            list_chunk_bytes=min(LIST_CHUNK_BYTES, self.limits.max_message_bytes // 4),
            message_lifetime=settings.message_lifetime,
        )  # fmt: skip
        self.handler = handler
        sock = bind_udp(self.host, self.port, reuse_port=self.reuse_port)
        tcp = self._tcp = TcpTransport(handler, limits=self.limits)
        try:
            self._tcp_server = await asyncio.start_server(
                tcp.serve, self.host, self.port, reuse_port=self.reuse_port, backlog=1024
            )
        except OSError:
            sock.close()
            raise
        self.udp = UdpTransport(
            sock, self.loop, handler, self.changes, limits=self.limits, fast_path=self.fast_path
        )

    async def _publish(self) -> None:
        block = self.shared_counters
        assert block is not None
        while True:
            await asyncio.sleep(self.publish_interval)
            self._publish_offenders()
            block.publish(self.counters)

    def _publish_offenders(self) -> None:
        """Offenders first, counters after (see ``native_counters``).

        A failed write keeps its publication in the ring for the next one.
        """
        if self.offender_log is not None:
            with contextlib.suppress(OSError):
                self.offender_log.publish(self.offenders)

    async def _close(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        if self.shared_counters is not None:
            self._publish_offenders()
            self.shared_counters.close(self.counters)
        if self._tcp_server is not None:
            self._tcp_server.close()
        if self._tcp is not None:
            self._tcp.abort_all()
        if self.udp is not None:
            self.udp.sock.close()
        if self._store is not None:
            await self._store.close()
        if self.changes is not None:
            self.changes.close()
        if self.handler is not None:
            self.handler.sessions.shutdown()  # no sessions.sqlite3-wal left behind
            await self.handler.service.auth.aclose()

    def own_site(self, service: HandleService) -> SiteData:
        owned = service.owned
        if owned is not None:
            return service._own_site(owned)
        return site_for(self.settings.public_host, handle_port=self.port)


def _worker_main(
    settings: NodeSettings, host: str | None, port: int, ready: Connection, death_signal: bool
) -> None:
    """Body of one native worker process: serve until signalled or orphaned."""
    die_with_parent(death_signal=death_signal)
    done = threading.Event()
    with StopSignals(lambda _: done.set()):  # a stop during start-up is kept for after it
        server = NativeServer(settings, host=host, port=port)
        try:
            server.start()
        except Exception as exc:
            with contextlib.suppress(OSError):  # the parent may have given up already
                ready.send(f"{type(exc).__name__}: {exc}")
            server.stop()
            return
        with contextlib.suppress(OSError):
            ready.send("ok")
        ready.close()
        done.wait()
        server.stop()


@dataclass
class NativeWorkers:
    """Running worker processes; ``stop`` ends them (SIGTERM, then SIGKILL after ``timeout``).

    ``replace_dead`` starts a new worker for each one that has exited (the parent's
    supervision); ``stop`` is final, after it nothing is replaced.
    """

    host: str
    port: int
    processes: list[BaseProcess] = field(default_factory=list)
    settings: NodeSettings | None = None
    bind_host: str | None = None
    timeout: float = 60.0
    restarts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopped: bool = False

    def _spawn(self, n: int) -> tuple[Connection, BaseProcess]:
        assert self.settings is not None
        context = multiprocessing.get_context("spawn")
        death_signal = threading.current_thread() is threading.main_thread()
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker_main,
            args=(self.settings, self.bind_host, self.port, writer, death_signal),
            name=f"iinode-native-{n}", daemon=True,
        )  # fmt: skip
        process.start()
        writer.close()
        return reader, process

    def _await_ready(self, waiting: dict[Connection, BaseProcess]) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while waiting:
                left = deadline - time.monotonic()
                ready = wait([*waiting, *(p.sentinel for p in waiting.values())], max(0.0, left))
                if not ready:
                    raise ConfigurationError(
                        f"native workers did not start within {self.timeout:g} s"
                    )
                for reader in [r for r in waiting if r in ready or waiting[r].sentinel in ready]:
                    try:
                        status = reader.recv() if reader.poll() else "exited while starting"
                    except EOFError:
                        status = "exited while starting"
                    reader.close()
                    waiting.pop(reader)
                    if status != "ok":
                        raise ConfigurationError(f"a native worker failed to start: {status}")
        finally:
            for reader in waiting:
                reader.close()

    def replace_dead(self) -> list[tuple[int | None, int | None]]:
        """Start a new worker for each one that has exited; their (pid, exit code)."""
        dead = []
        with self._lock:
            for n, process in enumerate(self.processes):
                if self._stopped or process.is_alive():
                    continue
                process.join(0)
                dead.append((process.pid, process.exitcode))
                reader, new = self._spawn(n)
                self.processes[n] = new
                self.restarts += 1
                self._await_ready({reader: new})
        return dead

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopped = True
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.kill()
                process.join(timeout)

    def __enter__(self) -> NativeWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_native_workers(
    settings: NodeSettings,
    workers: int | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    timeout: float = 60.0,
) -> NativeWorkers:
    """Start ``workers`` server processes (default: CPU count) sharing one port.

    The workers end with this process however it ends (``die_with_parent``); the
    parent-death signal is set only when called from the main thread, as Linux
    sends it when the starting thread ends.
    """
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise ConfigurationError("at least one native worker is needed")
    port = port if port is not None else settings.handle_port
    if not port:
        raise ConfigurationError("native workers need a fixed --handle-port")
    if count > 1 and settings.store_url in ("memory:", "memory://"):
        raise ConfigurationError(
            "several native workers need a shared store (SQLite or PostgreSQL)"
        )
    result = NativeWorkers(
        host or settings.http_host, port, settings=settings, bind_host=host, timeout=timeout
    )
    try:
        waiting = {}
        for n in range(count):
            reader, process = result._spawn(n)
            result.processes.append(process)
            waiting[reader] = process
        result._await_ready(waiting)
    except BaseException:
        result.stop()
        raise
    return result


__all__ = [
    "NativeServer",
    "NativeWorkers",
    "bind_udp",
    "recursive_resolver",
    "start_native_workers",
]
