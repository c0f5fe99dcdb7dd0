from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import stix2

from iinode.identifiers import HandleName, Prefix
from iinode.monitoring import FeedInvalid, Severity
from iinode.monitoring.cpe import Cpe, normalise, version_in_range, version_key
from iinode.monitoring.inventory import (
    AssetInventory,
    AssetKind,
    AssetSource,
    describe_asset,
    from_modbus_identity,
    from_opcua_build_info,
)
from iinode.monitoring.security import (
    SecurityEventKind,
    iinode_properties,
    observation_event,
    parse_bundle,
    scan_inventory,
)
from iinode.monitoring.vulns import CveFeed

NODE = Prefix("88.118.8")


def h(s: str) -> HandleName:
    return HandleName("88.118.8", s)


@pytest.mark.parametrize(
    ("text", "attrs"),
    [
        (
            "cpe:2.3:o:siemens:simatic_s7-1200_firmware:4.4:*:*:*:*:*:*:*",
            ("o", "siemens", "simatic_s7-1200_firmware", "4.4"),
        ),
        ("cpe:2.3:a:vendor:prod\\:uct:1.0:*:*:*:*:*:*:*", ("a", "vendor", "prod\\:uct", "1.0")),
    ],
)
def test_cpe_round_trip(text: str, attrs: tuple[str, ...]) -> None:
    cpe = Cpe.parse(text)
    assert (cpe.part, cpe.vendor, cpe.product, cpe.version) == attrs
    assert str(cpe) == text


@pytest.mark.parametrize(
    "bad", ["cpe:/o:siemens", "cpe:2.3:x:a:b:*:*:*:*:*:*:*:*", "cpe:2.3:o:a:b:*:*"]
)
def test_cpe_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ValueError, match="CPE"):
        Cpe.parse(bad)


def test_cpe_matching_and_versions() -> None:
    pattern = Cpe.parse("cpe:2.3:o:siemens:simatic_s7-*_firmware:*:*:*:*:*:*:*:*")
    assert pattern.matches(Cpe("o", "siemens", "simatic_s7-1200_firmware", "4.4"))
    assert not pattern.matches(Cpe("h", "siemens", "simatic_s7-1200", "-"))
    assert normalise("Modicon M218 (Rev*)") == "modicon_m218_\\(rev\\*\\)"
    assert version_key("V4.5.0") == version_key("4.5") < version_key("4.10")
    assert version_in_range("2.4", start_including="2.2", end_excluding="2.5.1")
    assert not version_in_range("2.5.1", start_including="2.2", end_excluding="2.5.1")
    assert not version_in_range("2.5", start_excluding="2.5", end_excluding="2.9.2")
    assert version_in_range("5.1.0.6", end_including="5.1.0.6")


def test_inventory_normalises_discovered_devices() -> None:
    inv = AssetInventory()
    inv.add(from_opcua_build_info(h("PLC-1"), "Siemens AG", "SIMATIC S7-1200", "V4.4.0"))
    inv.add(
        from_modbus_identity(
            h("PLC-2"), {0: "Schneider Electric", 1: "TM218", 2: "5.1.0.6", 4: "Modicon M218"}
        )
    )
    plc1, plc2 = list(inv)
    assert str(plc1.cpes[0]) == "cpe:2.3:o:siemens:simatic_s7-1200_firmware:4.4.0:*:*:*:*:*:*:*"
    assert str(plc1.cpes[1]) == "cpe:2.3:h:siemens:simatic_s7-1200:-:*:*:*:*:*:*:*"
    assert plc2.cpes[0].vendor == "schneider-electric"
    assert plc2.source is AssetSource.MODBUS
    assert len(inv) == 2


def test_sample_feed_matches_real_industrial_cves() -> None:
    feed = CveFeed.sample()
    assert len(feed.entries) >= 6
    assert {e.id for e in feed.entries} >= {"CVE-2020-15782", "CVE-2021-22800", "CVE-2022-3157"}
    s7 = describe_asset(h("PLC-1"), AssetKind.PLC, "Siemens", "SIMATIC S7-1200", "V4.4")
    hits = {e.id: (e.score, e.severity) for e, _ in feed.match(s7.cpes)}
    assert hits == {
        "CVE-2020-15782": (8.1, Severity.HIGH),
        "CVE-2020-28397": (5.3, Severity.MEDIUM),
    }
    patched = describe_asset(h("PLC-1"), AssetKind.PLC, "Siemens", "SIMATIC S7-1200", "V4.5.0")
    assert feed.match(patched.cpes) == []
    m218 = describe_asset(
        h("PLC-2"), AssetKind.PLC, "Schneider Electric", "Modicon M218", "5.1.0.6"
    )
    [(entry, affected)] = feed.match(m218.cpes)
    assert entry.id == "CVE-2021-22800"
    assert entry.vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
    assert [c.part for c in affected] == ["o"]
    # the AND configuration needs the hardware too: firmware alone does not match
    assert feed.match(m218.cpes[:1]) == []
    newer = describe_asset(h("PLC-2"), AssetKind.PLC, "Schneider", "Modicon M218", "5.1.0.7")
    assert feed.match(newer.cpes) == []


def test_feed_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FeedInvalid, match="not JSON"):
        CveFeed.parse(b"{")
    with pytest.raises(FeedInvalid, match="NVD_CVE"):
        CveFeed.parse(b'{"format": "other"}')
    bad = {
        "format": "NVD_CVE",
        "version": "2.0",
        "vulnerabilities": [
            {
                "cve": {
                    "id": "CVE-1",
                    "metrics": {
                        "cvssMetricV31": [
                            {"type": "Primary", "cvssData": {"vectorString": "CVSS:3.1/AV:Q"}}
                        ]
                    },
                }
            }
        ],
    }
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(FeedInvalid, match="entry CVE-1 is invalid"):
        CveFeed.load(path)


def test_findings_are_stix_bundles_with_severity_and_asset() -> None:
    feed = CveFeed.sample()
    assets = [
        describe_asset(h("PLC-1"), AssetKind.PLC, "Siemens", "SIMATIC S7-1200", "4.4"),
        describe_asset(h("SW-1"), AssetKind.SWITCH, "Schneider Electric", "MCSESM083F23F0", "8.21"),
    ]
    events = scan_inventory(NODE, assets, feed, 1_700_000_000.0, province="JX")
    assert len(events) == 3
    critical = [e for e in events if e.severity is Severity.CRITICAL]
    assert [str(e.asset) for e in critical] == ["88.118.8/SW-1"]
    again = scan_inventory(NODE, assets, feed, 1_700_000_100.0)
    assert {e.id for e in again} == {e.id for e in events}
    assert critical[0].detail is not None
    bundle = parse_bundle(dict(critical[0].detail))
    assert isinstance(bundle, stix2.v21.Bundle)
    by_type = {o.type: o for o in bundle.objects}
    assert by_type["vulnerability"].name == "CVE-2021-22731"
    assert iinode_properties(by_type["vulnerability"])["severity"] == "critical"
    assert by_type["relationship"].relationship_type == "has"
    assert by_type["relationship"].source_ref == by_type["infrastructure"].id
    assert by_type["infrastructure"].name == "88.118.8/SW-1"
    assert by_type["software"].cpe.startswith("cpe:2.3:o:schneider-electric:")


@pytest.mark.parametrize("kind", list(SecurityEventKind))
def test_observations_are_valid_stix(kind: SecurityEventKind) -> None:
    ev = observation_event(
        f"sec-{kind.value}",
        NODE,
        kind,
        Severity.MEDIUM,
        1_700_000_000.5,
        "seen",
        asset=h("PLC-1") if kind is not SecurityEventKind.AUTH_FAILURE else None,
        cpes=[Cpe("o", "siemens", "simatic_s7-1200_firmware", "4.4")],
        source_ip="192.0.2.7",
        count=3,
    )
    assert ev.detail is not None
    bundle = parse_bundle(dict(ev.detail))
    observed = next(o for o in bundle.objects if o.type == "observed-data")
    assert observed.spec_version == "2.1"
    assert iinode_properties(observed)["kind"] == kind.value
    assert iinode_properties(observed)["severity"] == "medium"
    assert observed.number_observed == 3
    ips = [o for o in bundle.objects if o.type == "ipv4-addr"]
    assert ips[0].value == "192.0.2.7"
    assert ips[0].id in observed.object_refs


#: STIX 2.1 types whose ids should be UUIDv4 (domain, relationship and meta objects).
_V4_TYPES = {"identity", "infrastructure", "observed-data", "vulnerability", "relationship",
             "extension-definition", "bundle"}  # fmt: skip


def _objects(detail: object) -> list[dict[str, object]]:
    assert isinstance(detail, dict)
    return list(detail["objects"])


def test_bundles_parse_without_custom_properties_and_ids_are_v4() -> None:
    """``stix2.parse(..., allow_custom=False)``: iinode's fields live in its extension."""
    feed = CveFeed.sample()
    plc = describe_asset(h("PLC-1"), AssetKind.PLC, "Siemens", "SIMATIC S7-1200", "4.4")
    findings = scan_inventory(NODE, [plc], feed, 1_700_000_000.0)
    seen = observation_event(
        "sec-1", NODE, SecurityEventKind.PROTOCOL_ERROR, Severity.LOW, 1_700_000_000.0,
        "garbage", source_ip="2001:db8::7",
    )  # fmt: skip
    for event in [*findings, seen]:
        raw = json.dumps(event.detail)
        assert "x_iinode" not in raw
        bundle = stix2.parse(raw, allow_custom=False, version="2.1")
        objects = {o.type: o for o in bundle.objects}
        definition = objects["extension-definition"]
        assert definition.extension_types == ["property-extension"]
        for obj in [bundle, *bundle.objects]:
            version = uuid.UUID(obj.id.partition("--")[2]).version
            assert version == (4 if obj.type in _V4_TYPES else 5), obj.id
    observed = next(o for o in stix2.parse(json.dumps(seen.detail)).objects
                    if o.type == "observed-data")  # fmt: skip
    assert iinode_properties(observed) == {
        "kind": "protocol_error", "severity": "low", "description": "garbage",
    }  # fmt: skip
    # the same bundle with a custom property is refused when custom properties are not allowed
    tampered = dict(seen.detail or {})
    tampered["objects"] = [dict(o, x_iinode_kind="x") for o in _objects(seen.detail)]
    with pytest.raises(stix2.exceptions.STIXError):
        stix2.parse(json.dumps(tampered), allow_custom=False, version="2.1")


def test_an_id_keeps_its_created_across_rebuilds_and_events() -> None:
    """Objects named by stable things (node, asset, CVE, relationship) are dated the same
    however often and whenever they are rebuilt; ``modified`` never precedes ``created``."""
    feed = CveFeed.sample()
    plc = describe_asset(h("PLC-1"), AssetKind.PLC, "Siemens", "SIMATIC S7-1200", "4.4")
    builds = [
        *scan_inventory(NODE, [plc], feed, 1_700_000_000.0),
        *scan_inventory(NODE, [plc], feed, 1_800_000_000.0),
        observation_event("sec-a", NODE, SecurityEventKind.ANOMALY, Severity.LOW,
                          1_750_000_000.0, "odd", asset=h("PLC-1")),
        observation_event("sec-b", NODE, SecurityEventKind.ANOMALY, Severity.LOW,
                          1_760_000_000.0, "odd again", asset=h("PLC-1")),
    ]  # fmt: skip
    dated: dict[str, set[tuple[object, object]]] = {}
    for event in builds:
        for obj in _objects(event.detail):
            if "created" in obj:
                dated.setdefault(str(obj["id"]), set()).add((obj["created"], obj["modified"]))
                assert str(obj["modified"]) >= str(obj["created"])
    assert all(len(v) == 1 for v in dated.values()), dated
    assert sum(1 for i in dated if i.startswith("identity--")) == 1
    assert sum(1 for i in dated if i.startswith("infrastructure--")) == 1
    # a vulnerability is dated by the feed: published, last modified
    vulns = {
        str(o["name"]): (o["created"], o["modified"])
        for o in _objects(builds[0].detail) + _objects(builds[1].detail)
        if o["type"] == "vulnerability"
    }
    assert vulns == {
        "CVE-2020-15782": ("2021-06-09T13:15:00.000Z", "2024-11-21T00:00:00.000Z"),
        "CVE-2020-28397": ("2021-08-10T11:15:00.000Z", "2024-11-21T00:00:00.000Z"),
    }
