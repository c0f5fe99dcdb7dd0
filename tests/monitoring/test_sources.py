"""The node's own security sources as pure logic: aggregation, native counters, traffic,
inventory and CVE findings, rejects and births (no network)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import stix2

from iinode.identifiers import HandleName, Prefix
from iinode.monitoring.events import EventKind, Severity
from iinode.monitoring.inventory import AssetKind, AssetSource, describe_asset
from iinode.monitoring.security import SecurityEventKind, iinode_properties, parse_bundle
from iinode.monitoring.sources import (
    OVERFLOW_SOURCE,
    NativeCounterWatch,
    ObservationWindow,
    SourcesSettings,
    auth_failure,
    birth_asset,
    physical_range,
    reject_observation,
)
from iinode.monitoring.vulns import CveFeed
from iinode.monitoring.watches import InventoryWatch, TrafficWatch
from iinode.telemetry.validation import RejectReason

NODE = Prefix("88.118.8")
SETTINGS = SourcesSettings(NODE, province="JX", industry="automobiles", window=10.0)


def observed(bundle: Any) -> Any:
    return next(o for o in bundle.objects if o.type == "observed-data")


def test_a_flood_from_one_source_is_one_event_per_window_with_its_count() -> None:
    window = ObservationWindow(SETTINGS)
    for i in range(5000):
        window.add(auth_failure("rest", "300:0.NA/88.118.8", "10.0.0.7"), 100.0 + i / 1000)
    window.add(auth_failure("rest", "300:0.NA/88.118.8", "10.0.0.8"), 101.0)
    assert window.flush(105.0) == []  # the window has not ended
    events = window.flush(110.0)
    assert len(events) == 2
    first = events[0]
    assert first.kind is EventKind.SECURITY
    assert first.severity is Severity.MEDIUM
    assert first.origin == NODE
    assert first.province == "JX"
    bundle = parse_bundle(dict(first.detail or {}))  # validated by stix2
    data = observed(bundle)
    assert data.number_observed == 5000
    assert iinode_properties(data)["kind"] == "auth_failure"
    assert data.first_observed < data.last_observed
    ips = [o for o in bundle.objects if o.type == "ipv4-addr"]
    assert [ip.value for ip in ips] == ["10.0.0.7"]
    assert "5000 times" in iinode_properties(data)["description"]
    assert window.flush(200.0) == []  # nothing new: nothing to say
    # Event ids are stable per (node, kind, source, window): re-building gives the same id.
    again = ObservationWindow(SETTINGS)
    again.add(auth_failure("rest", "300:0.NA/88.118.8", "10.0.0.7"), 100.0)
    assert again.flush(0.0, force=True)[0].id == first.id


def test_many_sources_are_bounded_by_an_overflow_bucket() -> None:
    settings = SourcesSettings(NODE, window=1.0, max_sources=8)
    window = ObservationWindow(settings)
    for i in range(10_000):
        window.add(auth_failure("rest", "", f"10.1.{i // 256}.{i % 256}"), 1.0)
    assert len(window) == 9  # eight sources and the overflow bucket
    events = window.flush(2.0)
    assert len(events) == 9
    counts = sorted(observed(parse_bundle(dict(e.detail or {}))).number_observed for e in events)
    assert counts == [1] * 8 + [10_000 - 8]
    assert window.sources_overflowed == 10_000 - 8
    assert OVERFLOW_SOURCE == "*"


def test_native_counters_become_observations_from_the_second_poll_on() -> None:
    counts = {"protocol_errors": 7, "dropped": 1, "auth_failures": 2, "requests": 50}
    watch = NativeCounterWatch(SourcesSettings(NODE, burst=20), lambda: dict(counts))
    assert watch.poll() == []  # the baseline: history is not reported
    assert watch.poll() == []  # nothing grew
    counts["protocol_errors"] += 15
    counts["dropped"] += 5
    counts["auth_failures"] += 1
    found = {obs.kind: (obs, n) for obs, n in watch.poll()}
    proto, n = found[SecurityEventKind.PROTOCOL_ERROR]
    assert n == 20
    assert proto.severity is Severity.MEDIUM
    assert proto.source == "native"
    assert found[SecurityEventKind.AUTH_FAILURE][1] == 1
    counts["protocol_errors"] += 3
    assert [(o.severity, n) for o, n in watch.poll()] == [(Severity.LOW, 3)]
    counts["protocol_errors"] += 200
    assert [o.severity for o, _ in watch.poll()] == [Severity.HIGH]
    counts["protocol_errors"] = 0  # a new counter file: start again, report nothing
    assert watch.poll() == []


def test_a_burst_split_over_polls_is_rated_by_the_window_total() -> None:
    """Garbage counted over several polls (workers publish independently) is one burst."""
    counts = {"protocol_errors": 0}
    offenders: list[dict[str, dict[str, int]]] = [{}]
    settings = SourcesSettings(NODE, burst=20, window=60.0)
    watch = NativeCounterWatch(settings, lambda: dict(counts), lambda: offenders.pop(0))
    window = ObservationWindow(settings)
    assert watch.poll() == []
    for slice_ in (9, 8, 8):  # 25 in all, each poll below the burst of 20
        counts["protocol_errors"] += slice_
        offenders.append({"10.0.0.9": {"protocol_errors": slice_}})
        polled = watch.poll()
        assert [(o.severity, n) for o, n in polled] == [(Severity.LOW, slice_)]
        for obs, n in polled:
            window.add(obs, 1000.0, n)
    (event,) = window.flush(1001.0, force=True)
    assert event.severity is Severity.MEDIUM
    assert observed(parse_bundle(dict(event.detail or {}))).number_observed == 25


@dataclass(frozen=True)
class R:
    equipment: str
    tag: str
    value: Any


def test_rate_far_above_baseline_and_values_outside_range_are_anomalies() -> None:
    settings = SourcesSettings(NODE, rate_window=1.0, rate_factor=10, rate_min=50, rate_warmup=3)
    watch = TrafficWatch(settings)
    press = "88.118.8/PRESS-01"
    now = 0.0
    for _ in range(4):  # a steady 10 readings a second
        watch.observe([R(press, "temp", 20.0)] * 10, now)
        now += 1.0
        assert watch.tick(now) == []
    watch.observe([R(press, "temp", 20.0)] * 500, now)
    now += 1.0
    [anomaly] = watch.tick(now)
    assert anomaly.kind is SecurityEventKind.ANOMALY
    assert anomaly.asset == HandleName.parse(press)
    assert "500 readings" in anomaly.description
    # The flood did not become the new normal.
    watch.observe([R(press, "temp", 20.0)] * 500, now)
    assert len(watch.tick(now + 1.0)) == 1

    watch.set_range(press, "temp", -20.0, 120.0)
    watch.observe([R(press, "temp", 119.0), R(press, "temp", 480.0), R(press, "temp", True)], now)
    [out] = watch.tick(now + 1.1)
    assert "480.0 is outside its range -20.0..120.0" in out.description
    assert physical_range({"engLow": -20, "engHigh": 120.0}) == (-20.0, 120.0)
    assert physical_range({"engLow": 5, "engHigh": 1}) is None
    assert physical_range({"engLow": "a", "engHigh": 1}) is None


def test_inventory_emits_assets_and_each_finding_once() -> None:
    watch = InventoryWatch(SETTINGS, CveFeed.sample())
    plc = HandleName.parse("88.118.8/PLC-1")
    s7 = describe_asset(plc, AssetKind.PLC, "Siemens AG", "SIMATIC S7-1200", "V4.4",
                        AssetSource.OPCUA)  # fmt: skip
    events = watch.add(s7, 50.0)
    kinds = [e.kind for e in events]
    assert kinds[0] is EventKind.ASSET
    assert kinds.count(EventKind.FINDING) == 2
    asset = events[0]
    assert asset.detail is not None
    assert "cpe:2.3:o:siemens:simatic_s7-1200_firmware:4.4:*:*:*:*:*:*:*" in asset.detail["cpes"]
    findings = {e.severity for e in events[1:]}
    assert findings == {Severity.HIGH, Severity.MEDIUM}
    for e in events[1:]:
        bundle = parse_bundle(dict(e.detail or {}))
        assert {o.type for o in bundle.objects} >= {"vulnerability", "relationship"}
    assert watch.add(s7, 60.0) == []  # nothing changed
    # The registry's plain entry does not replace what the connector discovered.
    plain = describe_asset(plc, AssetKind.PLC, "Siemens", "SIMATIC S7-1200", "")
    assert watch.add(plain, 70.0) == []
    assert watch.inventory.get(plc) == s7
    # An upgrade is a new asset event and no new finding for the old CVEs.
    fixed = describe_asset(plc, AssetKind.PLC, "Siemens", "SIMATIC S7-1200", "V4.5.0",
                           AssetSource.OPCUA)  # fmt: skip
    assert [e.kind for e in watch.add(fixed, 80.0)] == [EventKind.ASSET]


def test_rejects_and_births_map_to_observations_and_assets() -> None:
    unknown = reject_observation(NODE, "unknown_equipment", "x", "88.118.8/GHOST")
    assert unknown is not None
    assert unknown.kind is SecurityEventKind.UNKNOWN_DEVICE
    assert unknown.asset == HandleName.parse("88.118.8/GHOST")
    foreign = reject_observation(NODE, "unknown_equipment", "x", "99.1/OTHER")
    assert foreign is not None
    assert foreign.asset is None
    assert foreign.source == "99.1/OTHER"
    bad = reject_observation(NODE, "malformed", "not JSON", None)
    assert bad is not None
    assert bad.kind is SecurityEventKind.PROTOCOL_ERROR
    assert reject_observation(NODE, "something_else", "", None) is None


def test_every_reject_reason_is_a_security_observation() -> None:
    for reason in RejectReason:
        assert reject_observation(NODE, reason.value, "d", "88.118.8/M1") is not None, reason


@pytest.mark.parametrize("reason", ["bad_timestamp", "unstorable"])
def test_timestamp_and_store_rejects_are_low_anomalies_of_the_equipment(reason: str) -> None:
    obs = reject_observation(NODE, reason, "88.118.8/M1 t: timestamp -5 µs", "88.118.8/M1")
    assert obs is not None
    assert (obs.kind, obs.severity) == (SecurityEventKind.ANOMALY, Severity.LOW)
    assert obs.source == "88.118.8/M1"
    assert obs.asset == HandleName.parse("88.118.8/M1")
    assert reason in obs.description


def test_birth_metrics_name_an_asset() -> None:
    metrics = {"Properties/Hardware Make": "Schneider Electric",
               "Properties/Hardware Model": "Modicon M218", "Properties/FW": "5.1.0.6"}  # fmt: skip
    asset = birth_asset(NODE, "88.118.8/EDGE-1", metrics, device=False)
    assert asset is not None
    assert asset.source is AssetSource.MQTT
    assert (
        str(asset.cpes[0])
        == "cpe:2.3:o:schneider-electric:modicon_m218_firmware:5.1.0.6:*:*:*:*:*:*:*"
    )
    assert birth_asset(NODE, "88.118.8/EDGE-1", {"temp": 1.0}, device=False) is None


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        SourcesSettings(NODE, window=0)
    with pytest.raises(ValueError, match="rate_factor"):
        SourcesSettings(NODE, rate_factor=1.0)
    assert stix2.v21.Bundle  # the validator used above
