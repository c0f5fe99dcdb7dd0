"""Vulnerability matching: an NVD CVE API 2.0 feed against CPE names, scored with CVSS.

``CveFeed.load`` reads the JSON the NVD serves (``{"format": "NVD_CVE",
"version": "2.0", "vulnerabilities": [{"cve": {...}}]}``) from a file; the
package ships a small real sample of industrial-control entries
(``SAMPLE_FEED``).  Matching follows the feed's ``configurations``: each
configuration is a list of nodes joined by its ``operator`` (AND/OR), each node
a list of ``cpeMatch`` criteria with optional version ranges; only criteria
marked ``vulnerable`` produce findings.  Scores are recomputed from the vector
with the ``cvss`` library, not copied from the feed: CVSS v3.1, else v3.0, else
v4.0, else v2 (older and newer NVD entries carry only one of these), the
``Primary`` metric of a version before a ``Secondary`` one.  v3 and v4 share
the qualitative ratings; a v2 score is rated low/medium/high by the v2 table
(it has no "critical").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from cvss import CVSS2, CVSS3, CVSS4, CVSSError

from iinode.monitoring.cpe import ANY, Cpe, version_in_range
from iinode.monitoring.errors import FeedInvalid
from iinode.monitoring.events import Severity

SAMPLE_FEED = "nvd-ics-sample.json"
_RANGES = (
    "versionStartIncluding",
    "versionStartExcluding",
    "versionEndIncluding",
    "versionEndExcluding",
)
#: NVD metric keys, in order of preference, with the scorer of each.
_METRICS: tuple[tuple[str, str, type[CVSS2] | type[CVSS3] | type[CVSS4]], ...] = (
    ("cvssMetricV31", "3.1", CVSS3),
    ("cvssMetricV30", "3.0", CVSS3),
    ("cvssMetricV40", "4.0", CVSS4),
    ("cvssMetricV2", "2.0", CVSS2),
)


@dataclass(frozen=True, slots=True)
class CpeMatch:
    criteria: Cpe
    vulnerable: bool
    ranges: tuple[tuple[str, str], ...] = ()

    def matches(self, name: Cpe) -> bool:
        if not self.ranges:
            return self.criteria.matches(name)
        if not Cpe(**{**_fields(self.criteria), "version": ANY}).matches(name):
            return False
        if name.version in (ANY, "-"):
            return False
        bounds: dict[str, str | None] = {
            "start_including": None,
            "start_excluding": None,
            "end_including": None,
            "end_excluding": None,
        }
        for key, value in self.ranges:
            bounds[_snake(key)] = value
        return version_in_range(name.version, **bounds)


def _fields(cpe: Cpe) -> dict[str, str]:
    return {a: getattr(cpe, a) for a in cpe.__slots__}


def _snake(key: str) -> str:
    return {
        "versionStartIncluding": "start_including",
        "versionStartExcluding": "start_excluding",
        "versionEndIncluding": "end_including",
        "versionEndExcluding": "end_excluding",
    }[key]


@dataclass(frozen=True, slots=True)
class ConfigNode:
    operator: str
    negate: bool
    matches: tuple[CpeMatch, ...]

    def evaluate(self, names: Sequence[Cpe]) -> tuple[bool, list[Cpe]]:
        """(satisfied, names hit by a vulnerable criterion)."""
        hits = [any(m.matches(n) for n in names) for m in self.matches]
        ok = all(hits) if self.operator == "AND" else any(hits)
        vulnerable = [n for n in names if any(m.vulnerable and m.matches(n) for m in self.matches)]
        return (not ok if self.negate else ok), vulnerable


@dataclass(frozen=True, slots=True)
class CveEntry:
    id: str
    description: str
    published: str
    vector: str | None
    score: float
    severity: Severity
    cwes: tuple[str, ...]
    configurations: tuple[tuple[str, tuple[ConfigNode, ...]], ...]
    #: CVSS version the score was computed with ("3.1", "3.0", "4.0", "2.0"; "" if none).
    cvss_version: str = ""
    #: When the feed last changed the entry (NVD ``lastModified``; "" if not given).
    last_modified: str = ""

    def affected(self, names: Sequence[Cpe]) -> list[Cpe]:
        """The names this entry marks vulnerable (empty if none)."""
        out: list[Cpe] = []
        for operator, nodes in self.configurations:
            results = [node.evaluate(names) for node in nodes]
            oks = [ok for ok, _ in results]
            if all(oks) if operator == "AND" else any(oks):
                for ok, vulnerable in results:
                    if ok:
                        out.extend(v for v in vulnerable if v not in out)
        return out


@dataclass(frozen=True, slots=True)
class CveFeed:
    entries: tuple[CveEntry, ...]

    @classmethod
    def load(cls, path: Path | str) -> CveFeed:
        return cls.parse(Path(path).read_bytes())

    @classmethod
    def sample(cls) -> CveFeed:
        """The shipped sample of industrial-control CVEs."""
        data = resources.files("iinode.monitoring").joinpath("data", SAMPLE_FEED).read_bytes()
        return cls.parse(data)

    @classmethod
    def parse(cls, raw: bytes) -> CveFeed:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FeedInvalid(f"CVE feed is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != "NVD_CVE":
            raise FeedInvalid("CVE feed must have format NVD_CVE")
        if doc.get("version") != "2.0":
            raise FeedInvalid(f"CVE feed version {doc.get('version')!r} is not 2.0")
        items = doc.get("vulnerabilities")
        if not isinstance(items, list):
            raise FeedInvalid("CVE feed has no 'vulnerabilities' list")
        try:
            return cls(tuple(_entry(item["cve"]) for item in items))
        except (KeyError, TypeError, ValueError, CVSSError) as exc:
            raise FeedInvalid(f"CVE feed entry is invalid: {exc!r}") from None

    def get(self, cve_id: str) -> CveEntry | None:
        return next((e for e in self.entries if e.id == cve_id), None)

    def match(self, names: Iterable[Cpe]) -> list[tuple[CveEntry, list[Cpe]]]:
        """Entries affecting any of ``names``, highest score first."""
        have = list(names)
        hits = [(e, a) for e in self.entries if (a := e.affected(have))]
        return sorted(hits, key=lambda h: (-h[0].score, h[0].id))


def _score(metrics: dict[str, Any]) -> tuple[str | None, str, float, Severity]:
    """``(vector, version, base score, rating)`` of the preferred CVSS metric."""
    for key, version, scorer in _METRICS:
        entries = metrics.get(key) or []
        chosen = next((m for m in entries if m.get("type", "Primary") == "Primary"), None)
        if chosen is None and entries:
            chosen = entries[0]
        if chosen is None:
            continue
        vector = str(chosen["cvssData"]["vectorString"])
        score = float(scorer(vector).base_score)
        if scorer is CVSS2:
            rating = Severity.HIGH if score >= 7.0 else Severity.from_cvss(score)
        else:
            rating = Severity.from_cvss(score)
        return vector, version, score, rating
    return None, "", 0.0, Severity.INFO


def _entry(cve: dict[str, Any]) -> CveEntry:
    vector, version, score, severity = _score(cve.get("metrics", {}))
    description = next(
        (d["value"] for d in cve.get("descriptions", []) if d.get("lang") == "en"), ""
    )
    cwes = tuple(
        d["value"]
        for w in cve.get("weaknesses", [])
        for d in w.get("description", [])
        if str(d.get("value", "")).startswith("CWE-")
    )
    configurations = tuple(
        (
            str(conf.get("operator", "OR")),
            tuple(
                ConfigNode(
                    str(node.get("operator", "OR")),
                    bool(node.get("negate", False)),
                    tuple(
                        CpeMatch(
                            Cpe.parse(m["criteria"]),
                            bool(m["vulnerable"]),
                            tuple((k, str(m[k])) for k in _RANGES if k in m),
                        )
                        for m in node["cpeMatch"]
                    ),
                )
                for node in conf["nodes"]
            ),
        )
        for conf in cve.get("configurations", [])
    )
    return CveEntry(
        id=str(cve["id"]),
        description=description,
        published=str(cve.get("published", "")),
        vector=vector,
        score=score,
        severity=severity,
        cwes=cwes,
        configurations=configurations,
        cvss_version=version,
        last_modified=str(cve.get("lastModified", "")),
    )
