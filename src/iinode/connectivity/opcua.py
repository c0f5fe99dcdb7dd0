"""OPC UA: a connector that subscribes to data changes, and a server for the simulator.

The connector maps configured nodes to equipment tags, subscribes to their
data changes and publishes readings in batches.  If the server is unreachable
or the session drops it retries with exponential back-off, counting failures.
OPC UA status codes become qualities (good 192, uncertain 64, bad 0); a data
change with a bad or uncertain status and no value becomes a reading without a
value, which marks the tag bad (live state keeps its last value).  On each
session it reads the server's ``ServerStatus/BuildInfo`` (manufacturer,
product, software version: what the asset inventory needs) and hands it to
``on_build_info``.

Data changes wait in a buffer of at most ``max_pending`` readings while the bus
is slow (it applies back-pressure); changes that find it full are dropped and
counted (``OpcUaStats.dropped``), with one warning per overflow episode.  A
node the server refuses to monitor is logged and counted (``bad_nodes``); the
others are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError

from iinode.errors import TransportError, ValueInvalid
from iinode.telemetry.bus import ReadingBus
from iinode.telemetry.model import Quality, Reading, now_us, to_us
from iinode.telemetry.simulator import Factory

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:iinode:equipment"


@dataclass(frozen=True, slots=True)
class NodeTag:
    """One OPC UA variable (``ns=2;s=...`` node id) and the equipment tag it feeds."""

    node_id: str
    equipment: str
    tag: str


@dataclass(frozen=True, slots=True)
class OpcUaSettings:
    endpoint: str
    publishing_ms: int = 100
    timeout: float = 4.0
    reconnect_min: float = 0.2
    reconnect_max: float = 30.0
    health_interval: float = 1.0
    max_pending: int = 10_000

    def __post_init__(self) -> None:
        if self.max_pending < 1:
            raise ValueInvalid("max_pending must be at least 1")


@dataclass(slots=True)
class OpcUaStats:
    connects: int = 0
    failures: int = 0
    changes: int = 0
    #: Data changes dropped because the buffer (``max_pending``) was full.
    dropped: int = 0
    #: Readings handed to the bus.
    readings: int = 0
    #: Nodes the server refused to monitor in the last session.
    bad_nodes: int = 0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """An OPC UA server's ``ServerStatus/BuildInfo`` (Part 5, 12.4)."""

    product_uri: str
    manufacturer: str
    product: str
    software_version: str
    build_number: str


_BUILD_INFO = (
    ObjectIds.Server_ServerStatus_BuildInfo_ProductUri,
    ObjectIds.Server_ServerStatus_BuildInfo_ManufacturerName,
    ObjectIds.Server_ServerStatus_BuildInfo_ProductName,
    ObjectIds.Server_ServerStatus_BuildInfo_SoftwareVersion,
    ObjectIds.Server_ServerStatus_BuildInfo_BuildNumber,
)


async def read_build_info(client: Client) -> BuildInfo:
    """Read the connected server's BuildInfo variables (one Read request)."""
    values = await client.read_values(
        [client.get_node(ua.NodeId(ua.Int32(i))) for i in _BUILD_INFO]
    )
    return BuildInfo(*(v if isinstance(v, str) else "" for v in values))


def quality_of(status: ua.StatusCode | None) -> Quality:
    if status is None or status.is_good():
        return Quality.GOOD
    return Quality.UNCERTAIN if status.is_uncertain() else Quality.BAD


def _plain(value: Any) -> bool | int | float | str | None:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return to_us(value)
    return None


class OpcUaConnector:
    """Runs until :meth:`stop`; start with ``asyncio.create_task(connector.run())``."""

    def __init__(
        self,
        settings: OpcUaSettings,
        tags: Sequence[NodeTag],
        bus: ReadingBus,
        *,
        on_build_info: Callable[[BuildInfo], None] | None = None,
    ) -> None:
        self.settings = settings
        # keyed by the server's spelling of the id (``ns=0;i=5`` comes back as ``i=5``)
        self.tags = {ua.NodeId.from_string(t.node_id).to_string(): t for t in tags}
        self.bus = bus
        self.on_build_info = on_build_info
        #: What the server said about itself in the last session.
        self.build_info: BuildInfo | None = None
        self.stats = OpcUaStats()
        self.connected = asyncio.Event()
        self._pending: list[Reading] = []
        self._overflowing = False
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    # asyncua calls this for every data change of a subscribed node
    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        tag = self.tags.get(node.nodeid.to_string())
        if tag is None:
            return
        dv = data.monitored_item.Value
        quality = quality_of(dv.StatusCode)
        value = _plain(val)
        if value is None and (quality.is_good or val is not None):
            return  # a good status without a usable value, or a value of no supported type
        # A bad (or uncertain) status without a value is kept: the tag's quality changes.
        self.stats.changes += 1
        if len(self._pending) >= self.settings.max_pending:
            if not self._overflowing:
                self._overflowing = True
                log.warning("OPC UA %s: %d readings wait for the bus; dropping data changes",
                            self.settings.endpoint, len(self._pending))  # fmt: skip
            self.stats.dropped += 1
            return
        when = dv.SourceTimestamp or dv.ServerTimestamp
        time_us = to_us(when) if when is not None else now_us()
        self._pending.append(Reading(tag.equipment, tag.tag, time_us, value, quality))
        self._wake.set()

    async def _forward(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            self._overflowing = False
            if batch:
                await self.bus.publish(batch)
                self.stats.readings += len(batch)

    async def run(self) -> None:
        forwarder = asyncio.create_task(self._forward())
        delay = self.settings.reconnect_min
        try:
            while not self._stopping.is_set():
                try:
                    await self._session()
                    delay = self.settings.reconnect_min
                except (OSError, TimeoutError, UaError, TransportError) as exc:
                    self.stats.failures += 1
                    self.stats.last_error = repr(exc)
                    log.warning("OPC UA %s: %r; retrying in %.1f s",
                                self.settings.endpoint, exc, delay)  # fmt: skip
                finally:
                    self.connected.clear()
                if self._stopping.is_set():
                    break
                try:
                    wait = delay * (0.8 + 0.4 * random.random())
                    await asyncio.wait_for(self._stopping.wait(), wait)
                except TimeoutError:
                    pass
                delay = min(delay * 2, self.settings.reconnect_max)
        finally:
            self._wake.set()
            self._stopping.set()
            await forwarder
            if self._pending:
                batch, self._pending = self._pending, []
                await self.bus.publish(batch)
                self.stats.readings += len(batch)

    async def _session(self) -> None:
        client = Client(self.settings.endpoint, timeout=self.settings.timeout)
        await client.connect()
        try:
            self.stats.connects += 1
            await self._discover(client)
            nodes = [client.get_node(node_id) for node_id in self.tags]
            sub = await client.create_subscription(self.settings.publishing_ms, self)
            results = await sub.subscribe_data_change(nodes)
            refused = [(n, r) for n, r in zip(nodes, results, strict=True)
                       if isinstance(r, ua.StatusCode)]  # fmt: skip
            self.stats.bad_nodes = len(refused)
            for node, status in refused:
                log.warning("OPC UA %s: node %s is not monitored: %s", self.settings.endpoint,
                            node.nodeid.to_string(), status.name)  # fmt: skip
            if len(refused) == len(nodes):
                raise TransportError(f"{self.settings.endpoint}: none of the nodes can be read")
            self.connected.set()
            while not self._stopping.is_set():
                try:
                    await asyncio.wait_for(self._stopping.wait(), self.settings.health_interval)
                except TimeoutError:
                    await client.check_connection()
        finally:
            with contextlib.suppress(OSError, TimeoutError, UaError, ConnectionError):
                await client.disconnect()

    async def _discover(self, client: Client) -> None:
        try:
            info = await read_build_info(client)
        except (UaError, TimeoutError) as exc:
            log.info("OPC UA %s: no BuildInfo (%r)", self.settings.endpoint, exc)
            return
        self.build_info = info
        if self.on_build_info is not None:
            self.on_build_info(info)


async def browse_variables(endpoint: str, session_timeout: float = 4.0) -> list[tuple[str, str]]:
    """Every variable under Objects in namespace ``NAMESPACE_URI``: ``(node id, browse path)``."""
    out: list[tuple[str, str]] = []
    async with Client(endpoint, timeout=session_timeout) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)

        async def walk(node: Node, path: str) -> None:
            for child in await node.get_children():
                if child.nodeid.NamespaceIndex != ns:
                    continue
                name = (await child.read_browse_name()).Name
                if await child.read_node_class() == ua.NodeClass.Variable:
                    out.append((child.nodeid.to_string(), f"{path}/{name}"))
                else:
                    await walk(child, f"{path}/{name}")

        await walk(client.nodes.objects, "")
    return sorted(out)


def _node_id(name: str, ns: int) -> ua.NodeId:
    return ua.NodeId(ua.String(name), ua.Int16(ns))


class OpcUaFactoryServer:
    """Serves a simulated factory: one object per machine, one variable per tag.

    Node ids are ``ns=<n>;s=<equipment id>/<tag>``; :meth:`update` writes the
    machines' current values with the factory's simulated time as source time.
    """

    def __init__(self, factory: Factory, endpoint: str) -> None:
        self.factory = factory
        self.endpoint = endpoint
        self.server = Server()
        self._vars: dict[tuple[str, str], Node] = {}
        self.ns = 0

    def node_tags(self) -> list[NodeTag]:
        return [NodeTag(f"ns={self.ns};s={eq}/{tag}", eq, tag) for eq, tag in sorted(self._vars)]

    async def start(self) -> None:
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        self.server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.ns = await self.server.register_namespace(NAMESPACE_URI)
        folder = await self.server.nodes.objects.add_folder(
            _node_id(self.factory.prefix, self.ns), self.factory.prefix
        )
        for m in self.factory.machines:
            eq = m.spec.id
            obj = await folder.add_object(_node_id(eq, self.ns), eq.partition("/")[2])
            for tag, value in m.values().items():
                self._vars[(eq, tag)] = await obj.add_variable(
                    _node_id(f"{eq}/{tag}", self.ns), tag, value
                )
        await self.update()
        await self.server.start()

    async def update(self) -> None:
        when = ua.DateTime.fromtimestamp(
            self.factory.moment.timestamp(), self.factory.moment.tzinfo
        )
        for m in self.factory.machines:
            for tag, value in m.values().items():
                variant = ua.Variant(value)
                dv = ua.DataValue(variant, SourceTimestamp=when, ServerTimestamp=when)
                await self._vars[(m.spec.id, tag)].write_value(dv)

    async def stop(self) -> None:
        await self.server.stop()
