"""Watches over equipment traffic and the asset inventory, turned into monitoring events.

* :class:`TrafficWatch` learns each machine's reading rate (an exponentially
  weighted baseline over past windows) and flags a window far above it, and
  flags values outside a tag's physical range (``engLow``/``engHigh`` from
  Sparkplug births, or ranges set by the caller).
* :class:`InventoryWatch` keeps the asset inventory, emits an ``asset`` event
  when an asset appears or changes, and matches it against the CVE feed once
  per (asset, CVE) so findings become ``finding`` events.

Pure logic like :mod:`iinode.monitoring.sources`, whose observations they produce.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iinode.monitoring.events import Event, EventKind, Severity
from iinode.monitoring.inventory import (
    Asset,
    AssetInventory,
    AssetSource,
)
from iinode.monitoring.security import SecurityEventKind, scan_inventory
from iinode.monitoring.sources import EVENT_NAMESPACE, Observation, SourcesSettings, asset_of
from iinode.monitoring.vulns import CveFeed


@dataclass(slots=True)
class _Rate:
    count: int = 0
    baseline: float = 0.0
    windows: int = 0


class TrafficWatch:
    """Reading rates against each machine's baseline, and values against physical ranges."""

    def __init__(self, settings: SourcesSettings) -> None:
        self.settings = settings
        self.ranges: dict[tuple[str, str], tuple[float, float]] = {}
        self._rates: dict[str, _Rate] = {}
        self._started: float | None = None
        self._out: list[Observation] = []

    def set_range(self, equipment: str, tag: str, low: float, high: float) -> None:
        if len(self.ranges) < self.settings.max_tracked or (equipment, tag) in self.ranges:
            self.ranges[(equipment, tag)] = (low, high)

    def observe(self, readings: Sequence[Any], now: float) -> None:
        """Accepted readings (``equipment``, ``tag``, ``value``) as they are stored."""
        if self._started is None:
            self._started = now
        rates, ranges, node = self._rates, self.ranges, self.settings.node
        for r in readings:
            rate = rates.get(r.equipment)
            if rate is None:
                if len(rates) >= self.settings.max_tracked:
                    continue
                rate = rates[r.equipment] = _Rate()
            rate.count += 1
            bounds = ranges.get((r.equipment, r.tag)) if ranges else None
            value = r.value
            if bounds is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            low, high = bounds
            if not low <= value <= high or math.isnan(value):
                self._out.append(Observation(
                    SecurityEventKind.ANOMALY, Severity.MEDIUM, f"{r.equipment}/{r.tag}",
                    f"{r.equipment} {r.tag} = {value} is outside its range {low}..{high}",
                    asset=asset_of(node, r.equipment),
                ))  # fmt: skip

    def tick(self, now: float) -> list[Observation]:
        """Range violations so far, and rate anomalies of a rate window that has ended."""
        out, self._out = self._out, []
        s = self.settings
        if self._started is None or now - self._started < s.rate_window:
            return out
        self._started = now
        for equipment, rate in self._rates.items():
            count, base = rate.count, rate.baseline
            if (
                rate.windows >= s.rate_warmup
                and count >= s.rate_min
                and count > s.rate_factor * max(base, 1.0)
            ):
                out.append(Observation(
                    SecurityEventKind.ANOMALY, Severity.MEDIUM, equipment,
                    f"{equipment} sent {count} readings in {s.rate_window:g} s; "
                    f"its baseline is {base:.0f}",
                    asset=asset_of(s.node, equipment),
                ))  # fmt: skip
            else:  # an anomalous window does not raise the baseline
                rate.baseline = count if rate.windows == 0 else 0.7 * base + 0.3 * count
                rate.windows += 1
            rate.count = 0
        return out


class InventoryWatch:
    """The asset inventory, with ``asset`` and ``finding`` events for what is new."""

    def __init__(self, settings: SourcesSettings, feed: CveFeed | None = None) -> None:
        self.settings = settings
        self.feed = feed
        self.inventory = AssetInventory()
        self._found: set[str] = set()

    def add(self, asset: Asset, now: float) -> list[Event]:
        """Record an asset; events if it is new or changed (a registry entry never
        replaces what a connector discovered)."""
        old = self.inventory.get(asset.handle)
        if old == asset:
            return []
        if (
            old is not None
            and asset.source is AssetSource.REGISTRY
            and old.source is not AssetSource.REGISTRY
        ):
            return []
        self.inventory.add(asset)
        s = self.settings
        events = [self._asset_event(asset, now)]
        if self.feed is not None:
            for finding in scan_inventory(
                s.node, [asset], self.feed, now, province=s.province, industry=s.industry
            ):
                if finding.id not in self._found:
                    self._found.add(finding.id)
                    events.append(finding)
        return events

    def use_feed(self, feed: CveFeed, now: float) -> list[Event]:
        """Match every known asset against a new feed; finding events for what is new."""
        self.feed = feed
        s = self.settings
        found = scan_inventory(
            s.node, list(self.inventory), feed, now, province=s.province, industry=s.industry
        )
        fresh = [f for f in found if f.id not in self._found]
        self._found.update(f.id for f in fresh)
        return fresh

    def _asset_event(self, asset: Asset, now: float) -> Event:
        s = self.settings
        name = f"{asset.handle}|{asset.source.value}|{asset.vendor}|{asset.product}|{asset.version}"
        return Event(
            id=f"asset.{uuid.uuid5(EVENT_NAMESPACE, name).hex}",
            origin=s.node,
            kind=EventKind.ASSET,
            severity=Severity.INFO,
            observed_at=now,
            province=s.province,
            industry=s.industry,
            asset=asset.handle,
            asset_kind=asset.kind.value,
            detail={
                "vendor": asset.vendor,
                "product": asset.product,
                "version": asset.version,
                "source": asset.source.value,
                "cpes": [str(c) for c in asset.cpes],
            },
        )


__all__ = ["InventoryWatch", "TrafficWatch"]
