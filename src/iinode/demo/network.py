"""The miniature national network of ``iinode demo`` (DESIGN.md section 3).

One top-level node (prefix 88), three provincial secondary nodes and (by
default) six enterprise nodes in the seed's key industries (``--enterprises``,
``--machines`` size it), each a full node with its own
SQLite store, HTTP API, native Handle protocol (UDP+TCP, a ``NativeServer`` in
threads), metrics and monitoring, all in one process.  Each
enterprise also runs its telemetry pipeline with an embedded MQTT broker and a
simulated factory publishing Sparkplug B into it; its machines are registered
as identifiers over the telemetry API.  Delegations (carrying each child's
HS_SECKEY, so the parent can authenticate its reports), registrations,
monitoring reports, notices and acknowledgements all go over HTTP exactly as
between separate machines.  Each delegation's HS_SITE lists the child's HTTP,
TCP and UDP interfaces, so native resolution walks the hierarchy too.  The
first enterprise also has a cell of two machines served over OPC UA and Modbus
TCP (``FieldSimulator``), registered with connection details so the node's own
connectors read them; every plant's Sparkplug edge node is registered too.
A simulated public resolves product identifiers from the top at a steady rate
(HTTP and native), so every level's resolutions per second are live; each node
serves the web console (``iinode.web``) at its HTTP address.

Who is in the network is ``topology.py``; ``run.py`` runs it for ``iinode demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

import uvicorn
from rich.console import Console
from rich.progress import Progress

from iinode.assembly import Node, NodeExtensions, build_node, node_app
from iinode.client import NodeClient
from iinode.connectivity.service import TelemetryService
from iinode.connectivity.sim_field import FieldSimulator
from iinode.connectivity.sim_sparkplug import SparkplugSimulator
from iinode.demo.catalogue import part_template, product_values, template_handle
from iinode.demo.topology import (
    DEFAULT_ENTERPRISES,
    DEFAULT_MACHINES,
    DEMO_GTIN,
    FIELD_ENTERPRISE,
    FIELD_MACHINES,
    FIELD_PORTS,
    MANUAL_ACK,
    MAX_MACHINES,
    NOTICE_ID,
    RESOLUTIONS_PER_SECOND,
    SECRET,
    NodeSpec,
    factory_for,
    network_specs,
    ports_needed,
)
from iinode.errors import ConfigurationError, IinodeError
from iinode.identifiers import (
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    Prefix,
    SecKeyData,
)
from iinode.monitoring.errors import MonitoringError
from iinode.monitoring.notices import NoticeState
from iinode.node.service import BulkRegistrar, site_from_url
from iinode.node.settings import NodeSettings, Role
from iinode.resolution import HttpResolver
from iinode.resolution.native_client import NativeResolver
from iinode.resolution.native_server import NativeServer
from iinode.storage import SQLiteStore
from iinode.telemetry.simulator import Factory, MachineSpec, ShiftCalendar

log = logging.getLogger(__name__)


@dataclass
class RunningNode:
    spec: NodeSpec
    node: Node
    server: uvicorn.Server
    task: asyncio.Task[None]
    native: NativeServer
    factory: Factory | None = None

    @property
    def extensions(self) -> NodeExtensions:
        return self.node.extensions

    def pipeline(self) -> TelemetryService:
        """The enterprise's running telemetry pipeline."""
        telemetry = self.node.telemetry
        if telemetry is None:
            raise ConfigurationError(f"node {self.spec.prefix} runs no telemetry")
        return telemetry

    @property
    def url(self) -> str:
        return self.node.settings.http_url

    @property
    def handle_port(self) -> int:
        return self.native.port

    def client(self) -> NodeClient:
        return NodeClient(self.url, identity=f"300:0.NA/{self.spec.prefix}", secret=SECRET)


def _check_ports(base: int, count: int, udp_from: int) -> None:
    """Every port must be free for TCP, and those from ``udp_from`` on for UDP too."""
    for port in range(base, base + count):
        kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if port >= udp_from else [])
        for kind in kinds:
            with socket.socket(socket.AF_INET, kind) as s:
                # As the servers bind: a port held only by a closed connection (TIME_WAIT) is free.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    raise ConfigurationError(
                        f"port {port} is in use; pick another range with --base-port"
                    ) from None


@dataclass
class DemoNetwork:
    """The running network; ``async with DemoNetwork(console, ...)`` starts and stops it."""

    console: Console
    base_port: int = 8100
    data_dir: Path | None = None
    products: int = 2000
    heartbeat: float = 2.0
    step_interval: float = 1.0
    enterprises: int = DEFAULT_ENTERPRISES
    machines: int = DEFAULT_MACHINES
    #: Product identifiers the simulated public resolves per second (0: none).
    resolutions_per_second: float = RESOLUTIONS_PER_SECOND
    #: No progress bars (``iinode demo --headless``).
    quiet: bool = False
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    resolved: int = 0
    simulated: int = 0
    field_cell: FieldSimulator | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def specs(self) -> tuple[NodeSpec, ...]:
        return network_specs(self.enterprises)

    @property
    def first_handle_port(self) -> int:
        return self.base_port + len(self.specs) + self.enterprises

    async def __aenter__(self) -> DemoNetwork:
        if not 1 <= self.machines <= MAX_MACHINES:
            raise ConfigurationError(f"machines must be from 1 to {MAX_MACHINES}")
        _check_ports(self.base_port, ports_needed(self.enterprises), self.first_handle_port)
        data = self.data_dir or Path(
            self._stack.enter_context(tempfile.TemporaryDirectory(prefix="iinode-demo-"))
        )
        try:
            await self._boot(data)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _boot(self, data: Path) -> None:
        mqtt_port = self.base_port + len(self.specs)
        for n, spec in enumerate(self.specs):
            url = f"http://127.0.0.1:{self.base_port + n}"
            handle_port = self.first_handle_port + n
            if spec.parent is not None:
                await self._delegate(spec, url, handle_port)
            port = None
            if spec.role is Role.ENTERPRISE:
                port, mqtt_port = mqtt_port, mqtt_port + 1
            node = await self._start(spec, self.base_port + n, handle_port, port, data)
            self.console.print(
                f"started {spec.role.value:<10} {spec.prefix:<9} {node.url} "
                f"udp+tcp:{node.handle_port}  {spec.name}",
                highlight=False,
            )
        await self._register()
        await self._issue_notice()
        self._tasks.append(asyncio.create_task(self._simulate()))
        self._tasks.append(asyncio.create_task(self._operators()))
        if self.resolutions_per_second > 0 and self.products > 0:
            self._tasks.append(asyncio.create_task(self._public()))

    async def _start(
        self, spec: NodeSpec, port: int, handle_port: int, mqtt_port: int | None, data: Path
    ) -> RunningNode:
        parent = self.nodes[spec.parent] if spec.parent is not None else None
        settings = NodeSettings(
            role=spec.role, data_dir=data / spec.prefix, prefix=spec.prefix, http_port=port,
            handle_port=handle_port, name=spec.name,
            parent_url=parent.url if parent else None,
            parent_handle_port=parent.handle_port if parent else None,
            telemetry=mqtt_port is not None, mqtt_port=mqtt_port,
            report_secret=SECRET if spec.parent else None,
            heartbeat_interval=self.heartbeat, notice_interval=self.heartbeat,
            province=spec.province, industry=spec.industry,
        )  # fmt: skip
        await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
        store = SQLiteStore(settings.data_dir / "handles.sqlite3", synchronous="NORMAL")
        # The node's change counter is its file, so writes made over HTTP here empty
        # the native server's answer cache.
        node = await build_node(settings, store=store, admin_secret=SECRET)
        try:
            # The native front end has its own loop and UDP threads and its own store
            # connection, like one worker process of ``iinode serve --handle-port``.
            native = NativeServer(settings, host="127.0.0.1", port=handle_port, reuse_port=False)
            await asyncio.to_thread(native.start)
        except BaseException:
            await node.aclose()
            raise
        self._stack.callback(native.stop)
        config = uvicorn.Config(
            node_app(node), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = _NodeServer(config)
        task = asyncio.create_task(server.serve())
        running = RunningNode(spec, node, server, task, native)
        self.nodes[spec.prefix] = running
        while not server.started:
            if task.done():
                task.result()
                raise ConfigurationError(f"node {spec.prefix} did not start on port {port}")
            await asyncio.sleep(0.02)
        return running

    async def _delegate(self, spec: NodeSpec, url: str, handle_port: int) -> None:
        """``0.NA/<child>`` at the parent: where the child is (HTTP, TCP and UDP
        interfaces), and its reporting secret."""
        assert spec.parent is not None
        values = [
            HandleValue(1, "HS_SITE", site_from_url(url, handle_port)),
            HandleValue(300, "HS_SECKEY", SecKeyData(SECRET.encode()),
                        permissions=Permissions.ADMIN_READ | Permissions.ADMIN_WRITE),
        ]  # fmt: skip
        async with self.nodes[spec.parent].client() as c:
            await c.put(Prefix(spec.prefix).na_handle, values)

    async def _register(self) -> None:
        enterprises = [n for n in self.nodes.values() if n.spec.role is Role.ENTERPRISE]
        start = datetime.now(UTC) - timedelta(hours=1)
        for node in enterprises:
            node.factory = factory_for(node.spec, start, self.machines)
            async with node.client() as c:
                for item in node.factory.equipment("sparkplug", f"{node.spec.prefix}/sim"):
                    await c.put_equipment(item.to_json())
                edge = f"{node.spec.prefix}/plant"  # the simulator's Sparkplug edge node
                await c.put_equipment({"id": edge, "kind": "controller", "connection": {
                    "protocol": "sparkplug", "address": edge}})  # fmt: skip
        await self._register_field_cell()
        await self._register_gtin()
        with Progress(console=self.console, transient=True, disable=self.quiet) as progress:
            task = progress.add_task(
                "bulk-registering product identifiers", total=self.products * len(enterprises)
            )
            for node in enterprises:
                service = node.node.service
                prefix = node.spec.prefix
                if await service.lookup(template_handle(prefix)) is None:  # a resumed run has it
                    admin = IndexedHandle.parse(service.settings.admin_identity or "")
                    await service.templates.define(part_template(prefix), admin)
                registrar = BulkRegistrar(service)
                await registrar.load_templates()
                rows = [
                    registrar.encode(
                        HandleName(prefix, f"P{n:08d}"),
                        product_values(prefix, f"{node.url}/products/P{n:08d}", n),
                    )
                    for n in range(self.products)
                ]
                await registrar.write(rows)
                progress.advance(task, len(rows))
        machines = self.machines * len(enterprises)
        self.console.print(
            f"registered {machines} machines and {self.products * len(enterprises)} products "
            f"in {len(enterprises)} enterprises"
        )

    async def _register_gtin(self) -> None:
        """A GS1 key of the first enterprise's first product, for the GS1 Digital Link front end."""
        node = self.nodes[FIELD_ENTERPRISE]
        link = {"linkType": "gs1:pip", "href": f"{node.url}/products/P00000000",
                "title": "Product information"}  # fmt: skip
        async with node.client() as c:
            existing = await c.call_json("GET", f"/api/gs1/links/01/{DEMO_GTIN}")
            if not existing["links"]:  # a resumed run has it already
                await c.call_json("POST", f"/api/gs1/links/01/{DEMO_GTIN}", json=link)

    async def _register_field_cell(self) -> None:
        """Serve the cell over OPC UA and Modbus; register it so the node reads it."""
        node = self.nodes[FIELD_ENTERPRISE]
        line = f"{FIELD_ENTERPRISE}/CELL-1"  # apart from the plant's LINE-n
        machines = [
            MachineSpec(id=f"{FIELD_ENTERPRISE}/{name}", line=line, cycle_s=30.0 + 5 * i)
            for i, name in enumerate(FIELD_MACHINES)
        ]
        cell = Factory(FIELD_ENTERPRISE, machines, seed=11, start=datetime.now(UTC),
                       calendar=ShiftCalendar())  # fmt: skip
        port = self.base_port + ports_needed(self.enterprises) - FIELD_PORTS
        self.field_cell = FieldSimulator(cell, "127.0.0.1", port, port + 1)
        await self.field_cell.__aenter__()
        async with node.client() as c:
            for item in self.field_cell.equipment():
                await c.put_equipment(item.to_json())
        connectors = node.pipeline().connectors
        if connectors is not None:
            connectors.poke()

    async def _issue_notice(self) -> None:
        notice = {
            "id": NOTICE_ID, "issuer": "88", "issued_at": time.time(),
            "title": "Update PLC firmware against CVE-2024-6242",
            "action": "Apply the vendor's firmware update to every affected controller.",
        }  # fmt: skip
        async with self.nodes["88"].client() as c:
            await c.monitoring("POST", "notices", json=notice)

    async def _simulate(self) -> None:
        """Each plant publishes over Sparkplug B: one hour of backlog, then in real time."""
        plants = [n for n in self.nodes.values() if n.factory is not None]
        async with contextlib.AsyncExitStack() as stack:
            sims = []
            for node in plants:
                assert node.factory is not None
                host, port = node.pipeline().mqtt_address
                sims.append(await stack.enter_async_context(
                    SparkplugSimulator(node.factory, host, port, node_id="plant")
                ))  # fmt: skip
            for _ in range(60):
                for sim in sims:
                    self.simulated += await sim.step(60)
            while True:
                await asyncio.sleep(self.step_interval)
                now = datetime.now(UTC)
                for sim in sims:
                    behind = (now - sim.factory.moment).total_seconds()
                    if behind > 0:
                        self.simulated += await sim.step(behind)
                cell = self.field_cell
                if cell is not None and (now - cell.factory.moment).total_seconds() > 0:
                    await cell.step((now - cell.factory.moment).total_seconds())

    async def _public(self) -> None:
        """Anyone resolving product identifiers from the top: HTTP and native, no cache."""
        top = self.nodes["88"]
        http = HttpResolver([site_from_url(top.url)])
        native = NativeResolver([site_from_url(top.url, top.handle_port)])
        prefixes = [p for p, n in self.nodes.items() if n.spec.role is Role.ENTERPRISE]
        pick = random.Random(2641)
        try:
            while True:
                await asyncio.sleep(1.0 / self.resolutions_per_second)
                name = HandleName(pick.choice(prefixes), f"P{pick.randrange(self.products):08d}")
                resolver: HttpResolver | NativeResolver = http if self.resolved % 2 else native
                try:
                    await resolver.resolve(name)
                    self.resolved += 1
                except IinodeError as exc:
                    log.debug("demo public resolving %s: %s", name, exc)
        finally:
            await http.aclose()
            await native.aclose()

    async def _operators(self) -> None:
        """Enterprise operators acknowledge the notice once it has reached them."""
        waiting = {
            p
            for p, n in self.nodes.items()
            if n.spec.role is Role.ENTERPRISE and p != manual_ack_node(self.nodes).spec.prefix
        }
        while waiting:
            await asyncio.sleep(self.heartbeat / 2)
            for prefix in sorted(waiting):
                node = self.nodes[prefix]
                monitoring = node.node.monitoring
                if monitoring is None:
                    continue
                own = monitoring.board.state(NOTICE_ID)
                if own is None:
                    continue
                if own[0] in (NoticeState.ACKNOWLEDGED, NoticeState.COMPLETED):
                    waiting.discard(prefix)  # answered in an earlier run of this data
                    continue
                try:
                    async with node.client() as c:
                        await c.monitoring(
                            "POST", f"notices/{NOTICE_ID}/answer", json={"state": "acknowledged"}
                        )
                except (IinodeError, MonitoringError) as exc:
                    log.warning("demo operator at %s: %s", prefix, exc)
                waiting.discard(prefix)

    async def aclose(self) -> None:
        pending = set(self._tasks)
        while pending:
            # Cancelled again if a library call inside swallowed the first cancellation.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)
            if pending:
                log.debug("demo tasks still running after cancel: %s", pending)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for node in reversed(self.nodes.values()):
            with contextlib.suppress(Exception):
                await node.extensions.aclose()
        for node in self.nodes.values():
            node.server.should_exit = True
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                await node.task
            await node.node.aclose()
        self.nodes = {}
        if self.field_cell is not None:
            with contextlib.suppress(Exception):
                await self.field_cell.__aexit__(None, None, None)
            self.field_cell = None
        self._stack.close()


class _NodeServer(uvicorn.Server):
    """A node's uvicorn server in the demo process: signals are ``run_demo``'s.

    uvicorn's own handlers, one set per server, would each take a stop signal and
    re-raise it once their server is down, ending the process before clean-up.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def manual_ack_node(nodes: dict[str, RunningNode]) -> RunningNode:
    """The enterprise left to acknowledge by hand (the last one in a smaller network)."""
    return (
        nodes.get(MANUAL_ACK) or [n for n in nodes.values() if n.spec.role is Role.ENTERPRISE][-1]
    )
