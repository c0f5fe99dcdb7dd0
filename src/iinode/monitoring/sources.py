"""Security observations and discovered assets from the node itself, as monitoring events.

Pure logic fed by hooks at the node's edges (REST authentication, native
counters, telemetry rejects and readings, Sparkplug births, OPC UA and Modbus
discovery); nothing here does I/O or reads a clock; time comes in as arguments.

* :class:`ObservationWindow` aggregates observations: one event per
  ``(kind, source)`` per window, carrying the count, first and last time, so a
  flood becomes one event a window.  At most ``max_sources`` distinct sources
  are kept per window; further sources are counted under the source ``*`` of
  their kind, so memory and the number of events a window are bounded.
* :class:`NativeCounterWatch` turns growth of the node-wide native protocol
  counters (protocol errors, dropped datagrams, authentication failures) into
  observations: one source per offending address the workers named
  (``native:<address>``), the rest under the source ``native``.
* The traffic and inventory watches live in :mod:`iinode.monitoring.watches`.
* :func:`reject_observation` and :func:`birth_asset` map telemetry rejects and
  Sparkplug birth metrics onto observations and assets.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iinode.errors import InvalidHandle
from iinode.identifiers import HandleName, Prefix
from iinode.monitoring.events import Event, Severity
from iinode.monitoring.inventory import (
    Asset,
    AssetKind,
    AssetSource,
    describe_asset,
)
from iinode.monitoring.security import SecurityEventKind, observation_event

EVENT_NAMESPACE = uuid.UUID("0c4f6a52-8f0e-4c8e-b1f4-6a3d2f7e9b10")
#: The source under which observations beyond ``max_sources`` in a window are counted.
OVERFLOW_SOURCE = "*"


@dataclass(frozen=True, slots=True)
class SourcesSettings:
    """How observations are aggregated and when traffic counts as anomalous.

    ``window`` (s): one event per (kind, source) per window.  ``max_sources``:
    distinct sources kept per window.  ``burst``: native protocol errors or
    dropped datagrams in one window from which the event is ``medium`` (ten
    times as many: ``high``).  ``rate_window`` (s), ``rate_factor``,
    ``rate_min`` and ``rate_warmup``: a machine's readings in one rate window
    are anomalous above ``rate_factor`` times its baseline and at least
    ``rate_min``, once ``rate_warmup`` windows have built the baseline.
    """

    node: Prefix
    province: str = ""
    industry: str = ""
    window: float = 60.0
    max_sources: int = 256
    burst: int = 20
    rate_window: float = 10.0
    rate_factor: float = 10.0
    rate_min: int = 100
    rate_warmup: int = 3
    max_tracked: int = 65_536

    def __post_init__(self) -> None:
        if not self.window > 0 or not self.rate_window > 0:
            raise ValueError("window and rate_window must be positive")
        if self.max_sources < 1 or self.burst < 1 or self.rate_warmup < 1:
            raise ValueError("max_sources, burst and rate_warmup must be at least 1")
        if self.rate_factor <= 1 or self.rate_min < 1 or self.max_tracked < 1:
            raise ValueError("rate_factor must exceed 1; rate_min and max_tracked at least 1")


@dataclass(frozen=True, slots=True)
class Observation:
    """One thing seen: its kind, severity, source (an address, a channel, an equipment id)."""

    kind: SecurityEventKind
    severity: Severity
    source: str
    description: str
    asset: HandleName | None = None
    asset_kind: str = ""
    source_ip: str | None = None
    #: Rated by how many arrive in one window (``burst_severity``), not one by one.
    by_count: bool = False


@dataclass(slots=True)
class _Tally:
    first: Observation
    count: int
    first_at: float
    last_at: float
    severity: Severity


class ObservationWindow:
    """Aggregates observations per (kind, source) into one event per window."""

    def __init__(self, settings: SourcesSettings) -> None:
        self.settings = settings
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._started: float | None = None
        #: Observations counted under ``OVERFLOW_SOURCE`` since the start.
        self.sources_overflowed = 0

    def add(self, obs: Observation, now: float, count: int = 1) -> None:
        if count <= 0:
            return
        if self._started is None:
            self._started = now
        key = (obs.kind.value, obs.source)
        tally = self._tallies.get(key)
        if tally is None and len(self._tallies) >= self.settings.max_sources:
            self.sources_overflowed += 1
            obs = Observation(
                obs.kind, obs.severity, OVERFLOW_SOURCE,
                f"{obs.kind.value} from further sources (more than "
                f"{self.settings.max_sources} in one window)", by_count=obs.by_count,
            )  # fmt: skip
            key = (obs.kind.value, OVERFLOW_SOURCE)
            tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally(obs, 0, now, now, obs.severity)
        tally.count += count
        tally.last_at = max(tally.last_at, now)
        tally.severity = max(tally.severity, obs.severity)
        if obs.by_count:  # the window's total decides, however the polls sliced it
            tally.severity = max(tally.severity, burst_severity(tally.count, self.settings.burst))

    def __len__(self) -> int:
        return len(self._tallies)

    def due(self, now: float) -> bool:
        return self._started is not None and now - self._started >= self.settings.window

    def flush(self, now: float, *, force: bool = False) -> list[Event]:
        """The window's events once it has ended (or at once with ``force``); starts anew."""
        if self._started is None or not (force or self.due(now)):
            return []
        started, tallies = self._started, self._tallies
        self._started, self._tallies = None, {}
        return [self._event(t, started) for _, t in sorted(tallies.items())]

    def _event(self, t: _Tally, started: float) -> Event:
        s = self.settings
        o = t.first
        name = f"{s.node.text}|{o.kind.value}|{o.source}|{started!r}"
        text = o.description if t.count == 1 else f"{o.description} ({t.count} times)"
        return observation_event(
            f"sec.{uuid.uuid5(EVENT_NAMESPACE, name).hex}",
            s.node,
            o.kind,
            t.severity,
            t.last_at,
            text,
            province=s.province,
            industry=s.industry,
            asset=o.asset,
            asset_kind=o.asset_kind,
            source_ip=o.source_ip,
            count=t.count,
            first_observed=t.first_at,
        )


def _ip(text: str | None) -> str | None:
    """``text`` if it is an IPv4 or IPv6 address (compressed form), else ``None``."""
    if not text:
        return None
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return None


def auth_failure(channel: str, identity: str, source: str | None) -> Observation:
    """A failed authentication (``channel``: ``rest``, ``native``) from ``source``."""
    who = identity or "a malformed credential"
    where = source or "an unknown address"
    return Observation(
        SecurityEventKind.AUTH_FAILURE,
        Severity.MEDIUM,
        f"{channel}:{source or '-'}",
        f"{channel} authentication failed for {who} from {where}",
        source_ip=_ip(source),
    )


def burst_severity(count: int, burst: int) -> Severity:
    if count >= 10 * burst:
        return Severity.HIGH
    return Severity.MEDIUM if count >= burst else Severity.LOW


#: Offender reader: ``{address: {offence: count}}`` published since its last call.
OffenderPoll = Callable[[], Mapping[str, Mapping[str, int]]]


class NativeCounterWatch:
    """Observations from the growth of node-wide native counters between polls.

    The first poll only takes the counts as they are (the counters live as long
    as the data directory; what happened before monitoring started is history).
    Counts going down (a new counter file) restart the baseline.

    With ``offenders`` (the workers' per-address counts, read after the
    counters), growth attributed to an address becomes observations of the
    source ``native:<address>`` with the address as STIX observable; only
    growth no worker attributed (addresses beyond a worker's top list, datagrams
    dropped before they were looked at) stays under the source ``native``.
    Attribution may run ahead of the totals for a poll, so the unattributed
    remainder is reported by its high-water mark and never counted twice.
    """

    def __init__(
        self,
        settings: SourcesSettings,
        read: Callable[[], Mapping[str, int]],
        offenders: OffenderPoll | None = None,
    ) -> None:
        self.settings = settings
        self.read = read
        self.offenders = offenders
        self._last: dict[str, int] | None = None
        #: Growth since the baseline: totals, attributed to addresses, and reported as
        #: unattributed (per observation kind).
        self._grown = {"bad": 0, "auth": 0}
        self._attributed = {"bad": 0, "auth": 0}
        self._unattributed = {"bad": 0, "auth": 0}

    def poll(self) -> list[tuple[Observation, int]]:
        now = dict(self.read())
        per_address = dict(self.offenders()) if self.offenders is not None else {}
        last, self._last = self._last, now
        if last is None:
            return []
        delta = {k: v - last.get(k, 0) for k, v in now.items()}
        if any(d < 0 for d in delta.values()):
            self._grown = {"bad": 0, "auth": 0}
            self._attributed = {"bad": 0, "auth": 0}
            self._unattributed = {"bad": 0, "auth": 0}
            return []
        self._grown["bad"] += delta.get("protocol_errors", 0) + delta.get("dropped", 0)
        self._grown["auth"] += delta.get("auth_failures", 0)
        out: list[tuple[Observation, int]] = []
        for address in sorted(per_address):
            counts = per_address[address]
            bad = counts.get("protocol_errors", 0) + counts.get("dropped", 0)
            failed = counts.get("auth_failures", 0)
            self._attributed["bad"] += bad
            self._attributed["auth"] += failed
            ip = _ip(address)
            if bad:
                out.append((Observation(
                    SecurityEventKind.PROTOCOL_ERROR, burst_severity(bad, self.settings.burst),
                    f"native:{address}",
                    f"malformed or dropped traffic on the native protocol ports from {address}",
                    source_ip=ip, by_count=True,
                ), bad))  # fmt: skip
            if failed:
                out.append((Observation(
                    SecurityEventKind.AUTH_FAILURE, Severity.MEDIUM, f"native:{address}",
                    f"native challenge-response authentication failed from {address}",
                    source_ip=ip,
                ), failed))  # fmt: skip
        bad = self._remainder("bad")
        if bad:
            sev = burst_severity(bad, self.settings.burst)
            out.append((Observation(
                SecurityEventKind.PROTOCOL_ERROR, sev, "native",
                "malformed or dropped traffic on the native protocol ports", by_count=True,
            ), bad))  # fmt: skip
        if failed := self._remainder("auth"):
            obs = auth_failure("native", "", None)
            out.append((Observation(
                obs.kind, obs.severity, "native",
                "native challenge-response authentication failed",
            ), failed))  # fmt: skip
        return out

    def _remainder(self, kind: str) -> int:
        """Unattributed growth not reported yet (by high-water mark)."""
        left = self._grown[kind] - self._attributed[kind]
        new = left - self._unattributed[kind]
        if new <= 0:
            return 0
        self._unattributed[kind] = left
        return new


def asset_of(node: Prefix, equipment: str | None) -> HandleName | None:
    if not equipment:
        return None
    try:
        handle = HandleName.parse(equipment)
    except InvalidHandle:
        return None
    return handle if handle.prefix.is_within(node) else None


#: Telemetry reject reasons (``RejectReason`` values) and what they are as observations.
#: Reasons about a well-formed reading from known equipment (an odd tag, type, timestamp,
#: or a value the store refuses: ``bad_timestamp`` before 1970 or after 9999,
#: ``unstorable``) are low-severity anomalies of that equipment; undecodable input is a
#: protocol error of the channel, since it names no equipment reliably.
_REJECTS = {
    "unknown_equipment": (SecurityEventKind.UNKNOWN_DEVICE, Severity.MEDIUM),
    "unknown_tag": (SecurityEventKind.ANOMALY, Severity.LOW),
    "wrong_type": (SecurityEventKind.ANOMALY, Severity.LOW),
    "future_timestamp": (SecurityEventKind.ANOMALY, Severity.LOW),
    "bad_timestamp": (SecurityEventKind.ANOMALY, Severity.LOW),
    "unstorable": (SecurityEventKind.ANOMALY, Severity.LOW),
    "malformed": (SecurityEventKind.PROTOCOL_ERROR, Severity.LOW),
    "protocol": (SecurityEventKind.PROTOCOL_ERROR, Severity.LOW),
}


def reject_observation(
    node: Prefix, reason: str, detail: str, equipment: str | None
) -> Observation | None:
    """A telemetry reject as an observation (``None`` for reasons that are not security)."""
    mapped = _REJECTS.get(reason)
    if mapped is None:
        return None
    kind, severity = mapped
    if kind is SecurityEventKind.PROTOCOL_ERROR:
        return Observation(kind, severity, "mqtt", f"telemetry {reason} input: {detail}")
    source = equipment or "telemetry"
    asset = asset_of(node, equipment)
    text = f"telemetry reject {reason}: {detail}"
    if kind is SecurityEventKind.UNKNOWN_DEVICE:
        text = f"data from unregistered equipment {source}"
    return Observation(kind, severity, source, text, asset=asset)


def unknown_edge_node(node: Prefix, group: str, edge_node: str, device: str | None) -> Observation:
    name = f"{group}/{edge_node}" + (f"/{device}" if device else "")
    return Observation(
        SecurityEventKind.UNKNOWN_DEVICE,
        Severity.MEDIUM,
        f"sparkplug:{name}",
        f"Sparkplug {'device' if device else 'edge node'} {name} is not registered",
    )


#: Birth metrics that name what an edge node or device is (as edge software publishes them).
BIRTH_VENDOR = ("Properties/Hardware Make", "Properties/Manufacturer", "Properties/Vendor")
BIRTH_MODEL = ("Properties/Hardware Model", "Properties/Model", "Properties/Product")
BIRTH_VERSION = (
    "Properties/FW",
    "Properties/Firmware Version",
    "Properties/Software Version",
    "Properties/OS Version",
)


def _first(metrics: Mapping[str, Any], names: Sequence[str]) -> str:
    for name in names:
        value = metrics.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def birth_asset(
    node: Prefix, equipment: str | None, metrics: Mapping[str, Any], device: bool
) -> Asset | None:
    """An asset from a Sparkplug birth's ``Properties/...`` metrics, if they name one."""
    handle = asset_of(node, equipment)
    vendor, model = _first(metrics, BIRTH_VENDOR), _first(metrics, BIRTH_MODEL)
    if handle is None or not (vendor and model):
        return None
    kind = AssetKind.OTHER if device else AssetKind.GATEWAY
    return describe_asset(
        handle, kind, vendor, model, _first(metrics, BIRTH_VERSION), AssetSource.MQTT
    )


def physical_range(properties: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(engLow, engHigh)`` from a birth metric's properties, if both are numbers."""
    low, high = properties.get("engLow"), properties.get("engHigh")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not ok or not float(low) <= float(high):  # type: ignore[arg-type]
        return None
    return float(low), float(high)  # type: ignore[arg-type]


__all__ = [
    "BIRTH_MODEL",
    "BIRTH_VENDOR",
    "BIRTH_VERSION",
    "EVENT_NAMESPACE",
    "OVERFLOW_SOURCE",
    "NativeCounterWatch",
    "Observation",
    "ObservationWindow",
    "OffenderPoll",
    "SourcesSettings",
    "asset_of",
    "auth_failure",
    "birth_asset",
    "burst_severity",
    "physical_range",
    "reject_observation",
    "unknown_edge_node",
]
