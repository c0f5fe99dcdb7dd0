"""One OPC UA or Modbus connector per endpoint of the registered equipment.

:class:`EquipmentConnectors` reads the equipment registry every ``refresh_s``
(and at once after :meth:`~EquipmentConnectors.poke`, which the telemetry
service calls for every write through ``HandleRegistry``), plans the endpoints
(:func:`iinode.connectivity.endpoints.plan`) and reconciles what runs with the
plan: it starts a connector for a new endpoint, restarts one whose equipment,
nodes or registers changed, and stops one no equipment uses any more.  Each
connector reconnects with exponential back-off on its own, so an unreachable
endpoint is retried forever without holding up the others; a connector task
that ends with an unexpected error is logged, counted and started again at
the next refresh.  Equipment whose connection details are wrong is left out,
logged once (per reason) and listed in :attr:`~EquipmentConnectors.invalid`.

What a peer says about itself (OPC UA ``BuildInfo``, Modbus device
identification) goes to ``discovery_observers`` as ``(protocol, equipment,
what)``, once per equipment of the endpoint; :meth:`replay` gives an observer
attached later what was found so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iinode.connectivity.endpoints import (
    MODBUS,
    OPCUA,
    Endpoint,
    OpcUaEndpoint,
    plan,
)
from iinode.connectivity.modbus import ModbusPoller, ModbusSettings
from iinode.connectivity.modbus_map import RegisterMap
from iinode.connectivity.opcua import NodeTag, OpcUaConnector, OpcUaSettings
from iinode.errors import ValueInvalid
from iinode.telemetry.bus import ReadingBus
from iinode.telemetry.registry import EquipmentRegistry

log = logging.getLogger(__name__)

#: ``(protocol, equipment id, BuildInfo or identification objects)``; must not raise.
DiscoveryObserver = Callable[[str, str, Any], None]


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    """How the node runs its OPC UA and Modbus connectors."""

    #: Full re-reads of the registry; writes through ``HandleRegistry`` poke at once.
    refresh_s: float = 60.0
    timeout: float = 4.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    #: Readings an OPC UA connector buffers while the bus is slow (then drops, counted).
    opcua_max_pending: int = 10_000

    def __post_init__(self) -> None:
        if self.refresh_s <= 0 or self.timeout <= 0:
            raise ValueInvalid("refresh_s and timeout must be positive")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueInvalid("need 0 < reconnect_min <= reconnect_max")


@dataclass(frozen=True, slots=True)
class ConnectorState:
    """A running connector as metrics and status pages show it."""

    name: str
    protocol: str
    up: bool
    failures: int
    readings: int
    dropped: int
    last_error: str
    equipment: tuple[str, ...]


Connector = OpcUaConnector | ModbusPoller


@dataclass(slots=True)
class _Running:
    endpoint: Endpoint
    connector: Connector
    task: asyncio.Task[None]


class EquipmentConnectors:
    """Runs until :meth:`stop`; start with ``asyncio.create_task(connectors.run())``."""

    def __init__(
        self,
        registry: EquipmentRegistry,
        bus: ReadingBus,
        settings: ConnectorSettings | None = None,
    ) -> None:
        self.registry = registry
        self.bus = bus
        self.settings = settings or ConnectorSettings()
        self.discovery_observers: list[DiscoveryObserver] = []
        #: Equipment left out of the plan, with the reason.
        self.invalid: dict[str, str] = {}
        self.refreshes = 0
        self.refresh_errors = 0
        #: Connector tasks that ended with an unexpected error (restarted at the next refresh).
        self.crashes = 0
        #: Totals of connectors that were stopped, so counters never go down.
        self._retired: dict[str, tuple[int, int, int]] = {}
        self._running: dict[str, _Running] = {}
        self._found: dict[tuple[str, str], Any] = {}
        self._wake = asyncio.Event()

    # -- reconciliation --------------------------------------------------------------------

    def poke(self) -> None:
        """Read the registry now rather than at the next ``refresh_s``."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                try:
                    await self.refresh()
                except Exception:  # a registry hiccup must not end the connectors
                    self.refresh_errors += 1
                    log.exception("equipment connectors: reading the registry failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.refresh_s)
        finally:
            await self.stop()

    async def refresh(self) -> None:
        """Make the running connectors match the registry (one pass)."""
        wanted = plan(await self.registry.list())
        for equipment, reason in wanted.invalid.items():
            if self.invalid.get(equipment) != reason:
                log.error("equipment %s is not connected: %s", equipment, reason)
        self.invalid = wanted.invalid
        for name, running in list(self._running.items()):
            if running.task.done() and not running.task.cancelled():
                exc = running.task.exception()
                if exc is not None:
                    self.crashes += 1
                    log.error("connector %s ended: %r; starting it again", name, exc)
            same = wanted.endpoints.get(name) == running.endpoint
            if not same or running.task.done():
                await self._stop_one(name)
        for name, endpoint in wanted.endpoints.items():
            if name not in self._running:
                self._start_one(endpoint)
        self.refreshes += 1

    def _start_one(self, endpoint: Endpoint) -> None:
        s = self.settings
        connector: Connector
        if isinstance(endpoint, OpcUaEndpoint):
            connector = OpcUaConnector(
                OpcUaSettings(
                    endpoint.endpoint,
                    publishing_ms=endpoint.publishing_ms,
                    timeout=s.timeout,
                    reconnect_min=s.reconnect_min,
                    reconnect_max=s.reconnect_max,
                    max_pending=s.opcua_max_pending,
                ),
                [NodeTag(*node) for node in endpoint.nodes],
                self.bus,
                on_build_info=self._discovered(OPCUA, endpoint.equipment),
            )
        else:
            connector = ModbusPoller(
                ModbusSettings(
                    endpoint.host,
                    endpoint.port,
                    device_id=endpoint.unit,
                    interval=endpoint.interval,
                    timeout=s.timeout,
                    reconnect_min=s.reconnect_min,
                    reconnect_max=s.reconnect_max,
                ),
                RegisterMap(endpoint.points),
                self.bus,
                on_identity=self._discovered(MODBUS, endpoint.equipment),
            )
        task = asyncio.create_task(connector.run(), name=f"connector {endpoint.name}")
        self._running[endpoint.name] = _Running(endpoint, connector, task)
        log.info("connector %s started for %s", endpoint.name, ", ".join(endpoint.equipment))

    async def _stop_one(self, name: str) -> None:
        running = self._running.pop(name)
        running.connector.stop()
        try:
            async with asyncio.timeout(self.settings.timeout + 5.0):
                await asyncio.gather(running.task, return_exceptions=True)
        except TimeoutError:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
        state = self._state(name, running)
        old = self._retired.get(name, (0, 0, 0))
        self._retired[name] = (old[0] + state.failures, old[1] + state.readings,
                               old[2] + state.dropped)  # fmt: skip
        log.info("connector %s stopped", name)

    async def stop(self) -> None:
        """Stop every connector (their buffered readings go to the bus first)."""
        for name in list(self._running):
            await self._stop_one(name)

    # -- discovery ---------------------------------------------------------------------------

    def _discovered(self, protocol: str, equipment: tuple[str, ...]) -> Callable[[Any], None]:
        def found(what: Any) -> None:
            for item in equipment:
                self._found[(protocol, item)] = what
                for observer in list(self.discovery_observers):
                    self._tell(observer, protocol, item, what)

        return found

    def replay(self, observer: DiscoveryObserver) -> None:
        """Tell ``observer`` what has been discovered so far."""
        for (protocol, item), what in list(self._found.items()):
            self._tell(observer, protocol, item, what)

    @staticmethod
    def _tell(observer: DiscoveryObserver, protocol: str, item: str, what: Any) -> None:
        try:
            observer(protocol, item, what)
        except Exception:
            log.exception("discovery observer failed for %s", item)

    # -- health ------------------------------------------------------------------------------

    @staticmethod
    def _state(name: str, running: _Running) -> ConnectorState:
        c = running.connector
        if isinstance(c, OpcUaConnector):
            return ConnectorState(name, OPCUA, c.connected.is_set(), c.stats.failures,
                                  c.stats.readings, c.stats.dropped, c.stats.last_error,
                                  running.endpoint.equipment)  # fmt: skip
        return ConnectorState(name, MODBUS, c.connected.is_set(), c.stats.errors,
                              c.stats.readings, 0, c.stats.last_error,
                              running.endpoint.equipment)  # fmt: skip

    def states(self) -> list[ConnectorState]:
        """The running connectors, by name."""
        return [self._state(name, r) for name, r in sorted(self._running.items())]

    def connector(self, name: str) -> Connector | None:
        running = self._running.get(name)
        return None if running is None else running.connector

    def totals(self) -> dict[str, tuple[int, int, int]]:
        """``name -> (failures, readings, dropped)`` since start, stopped connectors included."""
        out = dict(self._retired)
        for state in self.states():
            old = out.get(state.name, (0, 0, 0))
            out[state.name] = (old[0] + state.failures, old[1] + state.readings,
                               old[2] + state.dropped)  # fmt: skip
        return out


__all__ = [
    "ConnectorSettings",
    "ConnectorState",
    "DiscoveryObserver",
    "EquipmentConnectors",
]
