"""A real NVD CVE JSON 2.0 feed file installed with ``iinode monitor cve load``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from cli.cli_support import http_port, iinode, init
from iinode.identifiers import HandleName, Prefix
from iinode.monitoring.cpe import Cpe
from iinode.monitoring.errors import FeedInvalid
from iinode.monitoring.inventory import AssetKind, describe_asset
from iinode.monitoring.sources import SourcesSettings
from iinode.monitoring.vulns import CveFeed, feed_path, install_feed, installed_feed
from iinode.monitoring.watches import InventoryWatch

NODE = Prefix("88.118.8")


def _metric(vector: str, score: float, kind: str = "Primary") -> dict[str, Any]:
    return {
        "source": "nvd@nist.gov" if kind == "Primary" else "productcert@acme.example",
        "type": kind,
        "cvssData": {
            "version": "3.1", "vectorString": vector, "baseScore": score,
            "baseSeverity": "CRITICAL" if score >= 9 else "HIGH" if score >= 7 else "MEDIUM",
            "attackVector": "NETWORK", "attackComplexity": "LOW", "privilegesRequired": "NONE",
            "userInteraction": "NONE", "scope": "UNCHANGED", "confidentialityImpact": "HIGH",
            "integrityImpact": "HIGH", "availabilityImpact": "HIGH",
        },
        "exploitabilityScore": 3.9,
        "impactScore": 5.9,
    }  # fmt: skip


def _cve(cve_id: str, text: str, configurations: list[Any], **extra: Any) -> dict[str, Any]:
    return {"cve": {
        "id": cve_id, "sourceIdentifier": "productcert@acme.example",
        "published": "2024-03-12T10:15:07.123", "lastModified": "2024-06-01T08:00:00.000",
        "vulnStatus": "Analyzed", "cveTags": [],
        "descriptions": [{"lang": "en", "value": text}, {"lang": "es", "value": "(es) " + text}],
        "metrics": extra.pop("metrics", {}),
        "weaknesses": [{"source": "nvd@nist.gov", "type": "Primary",
                        "description": [{"lang": "en", "value": "CWE-787"}]}],
        "configurations": configurations,
        "references": [{"url": f"https://acme.example/advisories/{cve_id}",
                        "source": "productcert@acme.example", "tags": ["Vendor Advisory"]}],
        **extra,
    }}  # fmt: skip


def _match(criteria: str, **ranges: str) -> dict[str, Any]:
    return {"vulnerable": True, "criteria": criteria,
            "matchCriteriaId": "6F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9", **ranges}  # fmt: skip


def nvd_feed() -> dict[str, Any]:
    """Three entries as the NVD serves them, and one still without configurations."""
    ranged = _cve(
        "CVE-2024-90001", "Acme PLC-500 firmware before 2.4.1 lets a remote attacker crash it.",
        [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
            _match("cpe:2.3:o:acme:plc-500_firmware:*:*:*:*:*:*:*:*",
                   versionStartIncluding="2.0", versionEndExcluding="2.4.1")]}]}],
        metrics={"cvssMetricV31": [
            _metric("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5, "Secondary"),
            _metric("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ]},
    )  # fmt: skip
    both = _cve(
        "CVE-2024-90002", "Acme HMI-7 panels running firmware 1.x accept unsigned updates.",
        [{"operator": "AND", "nodes": [
            {"operator": "OR", "negate": False, "cpeMatch": [
                _match("cpe:2.3:o:acme:hmi-7_firmware:*:*:*:*:*:*:*:*",
                       versionEndIncluding="1.9")]},
            {"operator": "OR", "negate": False, "cpeMatch": [
                {"vulnerable": False, "criteria": "cpe:2.3:h:acme:hmi-7:-:*:*:*:*:*:*:*",
                 "matchCriteriaId": "0A1B2C3D-4E5F-4607-8899-AABBCCDDEEFF"}]},
        ]}],
        metrics={"cvssMetricV31": [_metric("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:L", 6.3)]},
    )  # fmt: skip
    exact = _cve(
        "CVE-2024-90003", "Acme gateway GW-1 3.2 has a hard-coded password.",
        [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
            _match("cpe:2.3:o:acme:gw-1_firmware:3.2:*:*:*:*:*:*:*")]}]}],
        metrics={"cvssMetricV31": [_metric("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8)]},
    )  # fmt: skip
    waiting = _cve("CVE-2024-90004", "Received, not analysed yet.", [], vulnStatus="Received")
    return {
        "resultsPerPage": 4, "startIndex": 0, "totalResults": 4, "format": "NVD_CVE",
        "version": "2.0", "timestamp": "2024-06-02T00:00:00.000",
        "vulnerabilities": [ranged, both, exact, waiting],
    }  # fmt: skip


def _write(path: Path, doc: dict[str, Any]) -> Path:
    raw = json.dumps(doc).encode()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def test_a_gzipped_feed_is_read_checked_and_installed(tmp_path: Path) -> None:
    source = _write(tmp_path / "nvdcve-2.0-2024.json.gz", nvd_feed())
    stages: list[tuple[str, str]] = []
    feed, skipped = install_feed(
        [source], tmp_path / "node", lambda stage, name, done, total: stages.append((stage, name))
    )
    assert skipped == 1
    assert sorted(e.id for e in feed.entries) == ["CVE-2024-90001", "CVE-2024-90002",
                                                  "CVE-2024-90003"]  # fmt: skip
    assert ("read", "nvdcve-2.0-2024.json.gz") in stages
    assert ("check", "nvdcve-2.0-2024.json.gz") in stages
    assert stages[-1] == ("write", "cve-feed.json")
    again = installed_feed(tmp_path / "node")
    assert again is not None
    assert again.entries == feed.entries
    ranged = again.get("CVE-2024-90001")
    assert ranged is not None
    assert (ranged.score, ranged.severity.label) == (9.8, "critical")  # the Primary metric
    assert ranged.description.startswith("Acme PLC-500")
    assert ranged.last_modified == "2024-06-01T08:00:00.000"

    def hits(*cpes: str) -> list[str]:
        return [e.id for e, _ in again.match([Cpe.parse(c) for c in cpes])]

    assert hits("cpe:2.3:o:acme:plc-500_firmware:2.3.9:*:*:*:*:*:*:*") == ["CVE-2024-90001"]
    assert hits("cpe:2.3:o:acme:plc-500_firmware:2.4.1:*:*:*:*:*:*:*") == []  # end excluded
    assert hits("cpe:2.3:o:acme:hmi-7_firmware:1.2:*:*:*:*:*:*:*") == []  # needs the panel
    assert hits("cpe:2.3:o:acme:hmi-7_firmware:1.2:*:*:*:*:*:*:*",
                "cpe:2.3:h:acme:hmi-7:-:*:*:*:*:*:*:*") == ["CVE-2024-90002"]  # fmt: skip
    assert hits("cpe:2.3:o:acme:gw-1_firmware:3.2:*:*:*:*:*:*:*") == ["CVE-2024-90003"]


def test_a_bad_feed_changes_nothing(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", nvd_feed())
    install_feed([good], tmp_path)
    before = feed_path(tmp_path).read_bytes()
    old = _write(tmp_path / "old.json", {**nvd_feed(), "version": "1.1"})
    with pytest.raises(FeedInvalid, match=r"not 2\.0"):
        install_feed([good, old], tmp_path)
    broken = nvd_feed()
    broken["vulnerabilities"][1]["cve"]["configurations"][0]["nodes"][0]["cpeMatch"][0][
        "criteria"
    ] = "cpe:/o:acme:hmi-7_firmware"
    with pytest.raises(FeedInvalid, match="CVE-2024-90002"):
        install_feed([_write(tmp_path / "broken.json", broken)], tmp_path)
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(json.dumps(nvd_feed()).encode())[:-50])
    with pytest.raises(FeedInvalid, match="cannot read"):
        install_feed([tmp_path / "cut.json.gz"], tmp_path)
    assert feed_path(tmp_path).read_bytes() == before


def test_a_new_feed_is_matched_against_the_assets_already_known() -> None:
    watch = InventoryWatch(SourcesSettings(NODE), CveFeed.sample())
    plc = describe_asset(HandleName("88.118.8", "PLC-9"), AssetKind.PLC, "Acme", "PLC-500", "2.2")
    first = watch.add(plc, 1000.0)
    assert [e.kind.value for e in first] == ["asset"]  # the sample knows nothing of Acme
    found = watch.use_feed(CveFeed.parse(json.dumps(nvd_feed()).encode()), 1001.0)
    assert [(e.kind.value, str(e.asset)) for e in found] == [("finding", "88.118.8/PLC-9")]
    assert watch.use_feed(watch.feed or CveFeed.sample(), 1002.0) == []  # reported once


def test_monitor_cve_load_installs_a_feed_file(tmp_path: Path) -> None:
    data = tmp_path / "node"
    init(data, "enterprise", "88.118.8", http_port(), "pw")
    source = _write(tmp_path / "nvdcve-2.0-2024.json.gz", nvd_feed())
    done = iinode("monitor", "cve", "load", str(source), "--data-dir", str(data))
    assert "3 CVEs installed in" in done.stdout
    assert "1 without configurations left out" in done.stdout
    assert "reading nvdcve-2.0-2024.json.gz" in done.stdout  # the progress bars
    assert "installing cve-feed.json" in done.stdout
    feed = installed_feed(data)
    assert feed is not None
    assert len(feed.entries) == 3
    bad = _write(tmp_path / "bad.json", {"format": "NVD_CVE", "version": "1.1"})
    refused = iinode("monitor", "cve", "load", str(bad), "--data-dir", str(data), check=False)
    assert refused.returncode == 1
    assert "not 2.0" in refused.stderr + refused.stdout
    assert "unchanged" in refused.stderr + refused.stdout
    assert installed_feed(data) == feed
