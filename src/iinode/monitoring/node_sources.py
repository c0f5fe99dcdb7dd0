"""The node's own security sources, attached to its edges and drained into its outbox.

:class:`NodeSources` owns the pure collectors of :mod:`iinode.monitoring.sources`
and offers one small hook per edge; each hook only records (it never raises,
never blocks, never does I/O) and :meth:`NodeSources.tick` turns what was
recorded into events and queues them with ``emit`` (the monitoring node's
outbox).  This module imports nothing of the layers that feed it: the node's
assembly (``iinode.assembly.extensions``) subscribes the hooks to the observer
lists those layers offer:

* every process: REST authentication failures (``Authorizer.failure_observers``);
* the process holding the node's lease, while its pipeline runs: telemetry
  rejects (``RejectLog.observers``), stored readings (``IngestWorker.observers``),
  Sparkplug births (``MqttConnector.birth_observers``) and what OPC UA and Modbus
  peers say they are (``EquipmentConnectors.discovery_observers``).

:func:`run_node_sources` ticks the sources; in the lease holder it also polls the
node-wide native protocol counters (``<data-dir>/native.counters``) with the
workers' offending source addresses (``native.offenders.<slot>``: one event per
address and window) and turns the equipment registry into assets.

Assets are matched against the CVE feed installed with ``iinode monitor cve
load`` (``vulns.feed_path``), else the shipped sample; the process holding the
lease notices a newly installed feed (its modification time and size) at the
next tick, parses it in a worker thread and matches the whole inventory again.

OPC UA and Modbus connectors report what their peer says it is through
:meth:`NodeSources.opcua_hook` and :meth:`NodeSources.modbus_hook`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from iinode.errors import ConfigurationError, InvalidHandle
from iinode.identifiers import HandleName, Prefix
from iinode.monitoring.cpe import Cpe
from iinode.monitoring.errors import FeedInvalid, OutboxFull
from iinode.monitoring.events import Event
from iinode.monitoring.inventory import (
    Asset,
    AssetInventory,
    AssetKind,
    AssetSource,
    describe_asset,
    from_modbus_identity,
    from_opcua_build_info,
)
from iinode.monitoring.sources import (
    NativeCounterWatch,
    ObservationWindow,
    OffenderPoll,
    SourcesSettings,
    auth_failure,
    birth_asset,
    physical_range,
    reject_observation,
    unknown_edge_node,
)
from iinode.monitoring.vulns import CveFeed, feed_path
from iinode.monitoring.watches import InventoryWatch, TrafficWatch
from iinode.node.settings import NodeSettings

log = logging.getLogger(__name__)

#: Births waiting for their registry check (older ones are dropped first).
MAX_PENDING_BIRTHS = 1024
#: Asset and finding events kept while the outbox is full (older ones are dropped first).
MAX_HELD_EVENTS = 10_000
#: Equipment kinds (``EquipmentKind`` values) as asset kinds.
_KINDS = {"controller": AssetKind.PLC, "sensor": AssetKind.SENSOR}

#: Equipment id -> its registered record, or ``None`` (the registry's ``get``).
Known = Callable[[str], Awaitable[object | None]]


# What the hooks read of what the lower layers pass them (the hooks type the data, the
# assembly subscribes them to the lists that pass it: telemetry.validation.Reject,
# telemetry.model.Reading, connectivity.sparkplug.host_state.Birth, connectivity.opcua.BuildInfo).
class ObservedReading(Protocol):
    @property
    def equipment(self) -> str: ...
    @property
    def tag(self) -> str: ...
    @property
    def value(self) -> object: ...


class ObservedReject(Protocol):
    @property
    def reason(self) -> object: ...
    @property
    def detail(self) -> str: ...
    @property
    def reading(self) -> ObservedReading | None: ...


class ObservedBirth(Protocol):
    @property
    def group(self) -> str: ...
    @property
    def edge_node(self) -> str: ...
    @property
    def device(self) -> str | None: ...
    @property
    def equipment(self) -> str | None: ...
    @property
    def metrics(self) -> Mapping[str, Any]: ...
    @property
    def properties(self) -> Mapping[str, Mapping[str, Any]]: ...


class ObservedBuildInfo(Protocol):
    @property
    def manufacturer(self) -> str: ...
    @property
    def product(self) -> str: ...
    @property
    def software_version(self) -> str: ...


class NodeSources:
    """Hooks in, events out (see the module docstring)."""

    def __init__(
        self,
        settings: SourcesSettings,
        emit: Callable[[Iterable[Event]], int],
        *,
        feed: CveFeed | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.emit = emit
        self.clock = clock
        self.window = ObservationWindow(settings)
        self.traffic = TrafficWatch(settings)
        self.inventory = InventoryWatch(settings, feed)
        self.native: NativeCounterWatch | None = None
        self.known: Known | None = None
        self._births: deque[ObservedBirth] = deque(maxlen=MAX_PENDING_BIRTHS)
        self._held: deque[Event] = deque(maxlen=MAX_HELD_EVENTS)
        #: Events queued in the outbox so far, and events lost to a full outbox.
        self.emitted = 0
        self.lost = 0

    # -- hooks (called from the edges; they only record) ---------------------------------

    def auth_failed(self, channel: str, identity: str, peer: str | None) -> None:
        self.window.add(auth_failure(channel, identity, peer), self.clock())

    def rejected(self, reject: ObservedReject) -> None:
        """A telemetry ``Reject`` (reason, detail, reading)."""
        reading = reject.reading
        obs = reject_observation(
            self.settings.node,
            str(reject.reason),
            reject.detail,
            None if reading is None else reading.equipment,
        )
        if obs is not None:
            self.window.add(obs, self.clock())

    def stored(self, readings: Sequence[ObservedReading]) -> None:
        self.traffic.observe(readings, self.clock())

    def born(self, birth: ObservedBirth) -> None:
        """A Sparkplug ``Birth``: ranges now, registry check and inventory at the next tick."""
        if birth.equipment is not None:
            for metric, props in birth.properties.items():
                bounds = physical_range(props)
                if bounds is not None:
                    self.traffic.set_range(birth.equipment, metric, *bounds)
        self._births.append(birth)

    def discovered(self, asset: Asset) -> None:
        self._held.extend(self.inventory.add(asset, self.clock()))

    def use_feed(self, feed: CveFeed) -> None:
        """Match the inventory against a new CVE feed from now on (findings at the next tick)."""
        self._held.extend(self.inventory.use_feed(feed, self.clock()))

    def opcua_hook(
        self, equipment: str, kind: AssetKind = AssetKind.PLC
    ) -> Callable[[ObservedBuildInfo], None]:
        """For ``OpcUaConnector(on_build_info=...)``: the server is the asset ``equipment``."""
        handle = HandleName.parse(equipment)

        def found(info: ObservedBuildInfo) -> None:
            self.discovered(from_opcua_build_info(
                handle, info.manufacturer, info.product, info.software_version, kind
            ))  # fmt: skip

        return found

    def modbus_hook(
        self, equipment: str, kind: AssetKind = AssetKind.PLC
    ) -> Callable[[dict[int, str]], None]:
        """For ``ModbusPoller(on_identity=...)``: the device is the asset ``equipment``."""
        handle = HandleName.parse(equipment)

        def found(objects: dict[int, str]) -> None:
            if objects.get(0) and (objects.get(4) or objects.get(1)):
                self.discovered(from_modbus_identity(handle, objects, kind))

        return found

    # -- periodic work ------------------------------------------------------------------

    def watch_native(
        self, read: Callable[[], Mapping[str, int]], offenders: OffenderPoll | None = None
    ) -> None:
        self.native = NativeCounterWatch(self.settings, read, offenders)
        self.native.poll()  # the baseline

    async def _births_due(self) -> None:
        node = self.settings.node
        while self._births:
            b = self._births.popleft()
            registered = False
            if b.equipment is not None and self.known is not None:
                registered = await self.known(b.equipment) is not None
            if not registered:
                obs = unknown_edge_node(node, b.group, b.edge_node, b.device)
                self.window.add(obs, self.clock())
                continue
            asset = birth_asset(node, b.equipment, b.metrics, b.device is not None)
            if asset is not None:
                self.discovered(asset)

    async def sync_registry(self, equipment: Iterable[RegisteredEquipment]) -> None:
        """Registered equipment (``id``, ``kind``, ``vendor``, ``model``) as assets."""
        for e in equipment:
            if not (e.vendor and e.model):
                continue
            try:
                handle = HandleName.parse(e.id)
            except InvalidHandle:
                continue
            if not handle.prefix.is_within(self.settings.node):
                continue
            kind = _KINDS.get(str(e.kind), AssetKind.OTHER)
            self.discovered(
                describe_asset(handle, kind, e.vendor, e.model, "", AssetSource.REGISTRY)
            )

    async def tick(self, *, force: bool = False) -> int:
        """Poll, aggregate and queue what is due; returns the events queued."""
        now = self.clock()
        if self.native is not None:
            for obs, count in self.native.poll():
                self.window.add(obs, now, count)
        for obs in self.traffic.tick(now):
            self.window.add(obs, now)
        await self._births_due()
        self._held.extend(self.window.flush(now, force=force))
        if not self._held:
            return 0
        events = list(self._held)
        try:
            self.emit(events)
        except OutboxFull as exc:
            log.warning("security events wait: %s", exc)
            if len(self._held) == self._held.maxlen:
                self.lost += 1
            return 0
        self._held.clear()
        self.emitted += len(events)
        return len(events)


class RegisteredEquipment(Protocol):
    """What the sources read of a registry's equipment record (``telemetry.Equipment``)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> object: ...
    @property
    def vendor(self) -> str: ...
    @property
    def model(self) -> str: ...


class HasSources(Protocol):
    """A running node's parts (the assembly's ``NodeExtensions``)."""

    @property
    def sources(self) -> NodeSources | None: ...


def _stamp(path: Path) -> tuple[int, int] | None:
    """What tells a rewritten file apart: its modification time and size (``None``: none)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


async def _load_feed(path: Path) -> CveFeed | None:
    """The installed CVE feed, parsed off the event loop (``None``, logged, if invalid)."""
    try:
        feed = await asyncio.to_thread(CveFeed.load, path)
    except FeedInvalid as exc:
        log.error("CVE feed %s not used: %s", path, exc)
        return None
    log.info("CVE feed %s: %d entries", path, len(feed.entries))
    return feed


def notice_assets(
    equipment: Iterable[RegisteredEquipment], inventory: AssetInventory | None
) -> list[tuple[str, str, tuple[Cpe, ...]]]:
    """What notices are matched against: ``(handle, kind, cpes)`` per asset.

    The inventory's assets (discovered or registered, with their CPE names),
    then registered equipment the inventory does not hold yet, named from its
    ``vendor`` and ``model`` when it has both (else without CPE names).
    """
    out: dict[str, tuple[str, str, tuple[Cpe, ...]]] = {}
    for asset in inventory or ():
        out[str(asset.handle)] = (str(asset.handle), asset.kind.value, asset.cpes)
    for e in equipment:
        if e.id in out:
            continue
        kind = _KINDS.get(str(e.kind), AssetKind.OTHER)
        cpes: tuple[Cpe, ...] = ()
        if e.vendor and e.model:
            try:
                handle = HandleName.parse(e.id)
            except InvalidHandle:
                pass
            else:
                cpes = describe_asset(handle, kind, e.vendor, e.model, "").cpes
        out[e.id] = (e.id, kind.value, cpes)
    return [out[k] for k in sorted(out)]


def node_sources_settings(node_settings: NodeSettings) -> SourcesSettings:
    """Aggregation windows of a node: one event per source per heartbeat interval."""
    s = node_settings
    if s.prefix is None:
        raise ConfigurationError("a node without a prefix reports no security events")
    return SourcesSettings(
        Prefix(s.prefix),
        province=s.province,
        industry=s.industry,
        window=s.heartbeat_interval,
        rate_window=s.heartbeat_interval,
    )


def sources_of(parts: HasSources) -> NodeSources | None:
    """The sources running for a node's ``parts`` (``None`` if there are none)."""
    return parts.sources


async def installed_feed(data_dir: Path) -> tuple[CveFeed, tuple[int, int] | None]:
    """The CVE feed installed in ``data_dir`` (``iinode monitor cve load``), else the shipped
    sample; and the installed file's stamp, so that a later install is noticed."""
    seen = _stamp(feed_path(data_dir))
    feed = None if seen is None else await _load_feed(feed_path(data_dir))
    return (feed if feed is not None else CveFeed.sample()), seen


async def run_node_sources(
    sources: NodeSources,
    data_dir: Path,
    *,
    primary: Callable[[], bool],
    equipment: Callable[[], Awaitable[Sequence[RegisteredEquipment]]] | None = None,
    feed_seen: tuple[int, int] | None = None,
    interval: float = 0.5,
    registry_interval: float = 60.0,
    read_native: Callable[[], Mapping[str, int]] | None = None,
    offenders: OffenderPoll | None = None,
) -> None:
    """Tick ``sources`` until cancelled (then flush what is held).

    While ``primary()`` (this process runs the node's once-only work), it also watches
    the native workers' counters (``read_native``, ``offenders``), turns the registered
    ``equipment`` into assets every ``registry_interval`` seconds and picks up a CVE feed
    installed in ``data_dir`` after ``feed_seen``.  The hooks on the node's edges are
    attached by whoever assembled the node.
    """
    installed = feed_path(data_dir)
    next_registry = 0.0
    try:
        while True:
            if primary():
                if sources.native is None and read_native is not None:
                    sources.watch_native(read_native, offenders)
                if equipment is not None and time.monotonic() >= next_registry:
                    next_registry = time.monotonic() + registry_interval
                    await sources.sync_registry(await equipment())
                stamp = _stamp(installed)
                if stamp is not None and stamp != feed_seen:  # `iinode monitor cve load` ran
                    feed_seen = stamp
                    loaded = await _load_feed(installed)
                    if loaded is not None:
                        sources.use_feed(loaded)
            try:
                await sources.tick()
            except Exception:  # keep watching: one bad tick must not end monitoring
                log.exception("node security sources")
            await asyncio.sleep(interval)
    finally:
        try:
            await sources.tick(force=True)
        except Exception:
            log.exception("node security sources: last flush")


__all__ = [
    "HasSources",
    "NodeSources",
    "ObservedBirth",
    "ObservedBuildInfo",
    "ObservedReading",
    "ObservedReject",
    "RegisteredEquipment",
    "installed_feed",
    "node_sources_settings",
    "notice_assets",
    "run_node_sources",
    "sources_of",
]
