"""CVSS versions in NVD CVE API 2.0 entries: v3.1, v3.0, v4.0 and v2 are all scored."""

from __future__ import annotations

from typing import Any

import orjson

from iinode.monitoring.cpe import Cpe
from iinode.monitoring.events import Severity
from iinode.monitoring.vulns import CveFeed

V31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
V2_HIGH = "AV:N/AC:L/Au:N/C:P/I:P/A:P"
V2_LOW = "AV:L/AC:H/Au:N/C:P/I:N/A:N"


def metric(source: str, kind: str, version: str, vector: str, score: float) -> dict[str, Any]:
    """One NVD metric entry; ``baseScore`` is deliberately not trusted by the loader."""
    return {
        "source": source,
        "type": kind,
        "cvssData": {"version": version, "vectorString": vector, "baseScore": score},
    }


def entry(cve_id: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "cve": {
            "id": cve_id,
            "sourceIdentifier": "productcert@siemens.com",
            "published": "2024-05-14T16:15:00.000",
            "vulnStatus": "Analyzed",
            "descriptions": [{"lang": "en", "value": f"{cve_id} in a PLC web server."}],
            "metrics": metrics,
            "weaknesses": [
                {
                    "source": "nvd@nist.gov",
                    "type": "Primary",
                    "description": [{"lang": "en", "value": "CWE-787"}],
                }
            ],
            "configurations": [
                {
                    "nodes": [
                        {
                            "operator": "OR",
                            "negate": False,
                            "cpeMatch": [
                                {
                                    "vulnerable": True,
                                    "criteria": "cpe:2.3:o:acme:plc_firmware:*:*:*:*:*:*:*:*",
                                    "versionEndExcluding": "2.0",
                                    "matchCriteriaId": "00000000-0000-0000-0000-000000000000",
                                }
                            ],
                        }
                    ]
                }
            ],
        }
    }


def feed(*entries: dict[str, Any]) -> CveFeed:
    doc = {
        "resultsPerPage": len(entries),
        "startIndex": 0,
        "totalResults": len(entries),
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": "2024-06-01T00:00:00.000",
        "vulnerabilities": list(entries),
    }
    return CveFeed.parse(orjson.dumps(doc))


def test_every_cvss_version_is_scored_with_the_preferred_one_first() -> None:
    f = feed(
        entry("CVE-2024-0001", {"cvssMetricV40": [
            metric("productcert@siemens.com", "Secondary", "4.0", V40, 0.0)]}),
        entry("CVE-2010-0002", {"cvssMetricV2": [
            metric("nvd@nist.gov", "Primary", "2.0", V2_HIGH, 0.0)]}),
        entry("CVE-2010-0003", {"cvssMetricV2": [
            metric("nvd@nist.gov", "Primary", "2.0", V2_LOW, 0.0)]}),
        entry("CVE-2024-0004", {
            "cvssMetricV40": [metric("productcert@siemens.com", "Secondary", "4.0", V40, 0.0)],
            "cvssMetricV31": [
                metric("productcert@siemens.com", "Secondary", "3.1",
                       "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:N/A:N", 0.0),
                metric("nvd@nist.gov", "Primary", "3.1", V31, 0.0),
            ],
            "cvssMetricV2": [metric("nvd@nist.gov", "Primary", "2.0", V2_LOW, 0.0)],
        }),
        entry("CVE-2024-0005", {}),
    )  # fmt: skip
    got = {e.id: (e.cvss_version, e.vector, e.score, e.severity) for e in f.entries}
    assert got["CVE-2024-0001"] == ("4.0", V40, 9.3, Severity.CRITICAL)
    assert got["CVE-2010-0002"] == ("2.0", V2_HIGH, 7.5, Severity.HIGH)
    assert got["CVE-2010-0003"][0] == "2.0"
    assert got["CVE-2010-0003"][3] is Severity.LOW  # 1.2 in the v2 table
    assert got["CVE-2024-0004"] == ("3.1", V31, 9.8, Severity.CRITICAL)  # v3.1, Primary
    assert got["CVE-2024-0005"] == ("", None, 0.0, Severity.INFO)
    # the scores rank the findings for an affected firmware
    hits = f.match([Cpe.parse("cpe:2.3:o:acme:plc_firmware:1.5:*:*:*:*:*:*:*")])
    assert [e.id for e, _ in hits] == [
        "CVE-2024-0004", "CVE-2024-0001", "CVE-2010-0002", "CVE-2010-0003", "CVE-2024-0005",
    ]  # fmt: skip


def test_a_v2_score_is_never_rated_critical() -> None:
    top = "AV:N/AC:L/Au:N/C:C/I:C/A:C"  # 10.0 in CVSS v2
    [e] = feed(entry("CVE-2008-0006", {"cvssMetricV2": [
        metric("nvd@nist.gov", "Primary", "2.0", top, 0.0)]})).entries  # fmt: skip
    assert (e.score, e.severity) == (10.0, Severity.HIGH)
