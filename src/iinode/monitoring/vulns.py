"""Vulnerability matching: an NVD CVE API 2.0 feed against CPE names, scored with CVSS.

``CveFeed.load`` reads the JSON the NVD serves (``{"format": "NVD_CVE",
"version": "2.0", "vulnerabilities": [{"cve": {...}}]}``) from a file, plain or
gzipped (the NVD's yearly ``nvdcve-2.0-<year>.json.gz`` feeds); the package
ships a small real sample of industrial-control entries (``SAMPLE_FEED``).
``install_feed`` checks feed files and installs them, merged, as a node's feed
(``feed_path``: ``<data-dir>/monitoring/cve-feed.json``, written atomically),
keeping of each entry only what matching uses and only entries with
configurations (the others cannot match an asset); it is what
``iinode monitor cve load`` runs, with progress reported per stage, and a
running node picks the new file up (``node_sources``).  ``match`` looks
entries up by the vendor and product of their vulnerable criteria, so a full
feed costs each asset only its candidates.  Matching follows the feed's ``configurations``: each
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

import gzip
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from cvss import CVSS2, CVSS3, CVSS4, CVSSError

from iinode.monitoring.cpe import ANY, Cpe, version_in_range
from iinode.monitoring.errors import FeedInvalid
from iinode.monitoring.events import Severity

SAMPLE_FEED = "nvd-ics-sample.json"
#: The installed feed's name in a node's monitoring directory.
FEED_FILE = "cve-feed.json"
#: Fields of an NVD ``cve`` object that matching and the findings use.
_KEPT = ("id", "published", "lastModified", "descriptions", "metrics", "weaknesses",
         "configurations")  # fmt: skip
#: Told of progress: ``(stage, file name, done, total)``; stages ``read`` (bytes of the
#: file), ``check`` (entries) and ``write`` (bytes of the installed feed).
FeedProgress = Callable[[str, str, int, int], None]
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
    #: Entry positions by (vendor, product) of their vulnerable criteria; criteria with
    #: wildcards in either are under ``_WILD``.
    _index: dict[tuple[str, str], list[int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for n, entry in enumerate(self.entries):
            keys = {
                _key(m.criteria)
                for _, nodes in entry.configurations
                for node in nodes
                for m in node.matches
                if m.vulnerable
            }
            for key in keys:
                self._index.setdefault(key, []).append(n)

    @classmethod
    def load(cls, path: Path | str, progress: FeedProgress | None = None) -> CveFeed:
        """A feed file, plain or gzipped (``FeedInvalid`` if it is not NVD JSON 2.0)."""
        path = Path(path)
        return cls(
            tuple(
                e for _, e in _checked(_items(read_feed_file(path, progress)), path.name, progress)
            )
        )

    @classmethod
    def sample(cls) -> CveFeed:
        """The shipped sample of industrial-control CVEs."""
        data = resources.files("iinode.monitoring").joinpath("data", SAMPLE_FEED).read_bytes()
        return cls.parse(data)

    @classmethod
    def parse(cls, raw: bytes, progress: FeedProgress | None = None) -> CveFeed:
        return cls(tuple(entry for _, entry in _checked(_items(raw), "feed", progress)))

    def get(self, cve_id: str) -> CveEntry | None:
        return next((e for e in self.entries if e.id == cve_id), None)

    def match(self, names: Iterable[Cpe]) -> list[tuple[CveEntry, list[Cpe]]]:
        """Entries affecting any of ``names``, highest score first."""
        have = list(names)
        candidates: set[int] = set()
        candidates.update(self._index.get(_WILD, ()))
        for name in have:
            candidates.update(self._index.get((name.vendor.lower(), name.product.lower()), ()))
        entries = [self.entries[n] for n in sorted(candidates)]
        hits = [(e, a) for e in entries if (a := e.affected(have))]
        return sorted(hits, key=lambda h: (-h[0].score, h[0].id))


_WILD = ("*", "*")
_WILDCARD = re.compile(r"(?<!\\)[*?]")


def _key(criteria: Cpe) -> tuple[str, str]:
    """The index key of a criterion: its vendor and product, or ``_WILD``."""
    vendor, product = criteria.vendor.lower(), criteria.product.lower()
    if _WILDCARD.search(vendor) or _WILDCARD.search(product):
        return _WILD
    return vendor, product


def read_feed_file(path: Path, progress: FeedProgress | None = None) -> bytes:
    """The JSON of a feed file, ungzipped if it is gzipped; reports bytes of the file read."""
    try:
        size = path.stat().st_size
        with path.open("rb") as raw:
            zipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if zipped else raw
            chunks: list[bytes] = []
            while chunk := stream.read(1 << 20):
                chunks.append(chunk)
                if progress is not None:
                    progress("read", path.name, raw.tell(), size)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise FeedInvalid(f"cannot read CVE feed {path}: {exc}") from None
    return b"".join(chunks)


def _items(raw: bytes) -> list[Any]:
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
    return items


def _checked(
    items: list[Any], name: str, progress: FeedProgress | None
) -> Iterable[tuple[dict[str, Any], CveEntry]]:
    """``(cve object, entry)`` of each item; ``FeedInvalid`` names the first bad one."""
    total = len(items)
    for n, item in enumerate(items):
        try:
            cve = item["cve"]
            yield cve, _entry(cve)
        except (KeyError, TypeError, ValueError, AttributeError, CVSSError) as exc:
            where = cve.get("id", n) if isinstance(item, dict) and isinstance(cve, dict) else n
            raise FeedInvalid(f"CVE feed entry {where} is invalid: {exc!r}") from None
        if progress is not None and (n % 1000 == 999 or n == total - 1):
            progress("check", name, n + 1, total)


def feed_path(data_dir: Path) -> Path:
    """Where a node with this data directory keeps its installed CVE feed."""
    return data_dir / "monitoring" / FEED_FILE


def installed_feed(data_dir: Path) -> CveFeed | None:
    """The feed installed for a node (``None`` if none was)."""
    path = feed_path(data_dir)
    return CveFeed.load(path) if path.exists() else None


def install_feed(
    sources: Sequence[Path], data_dir: Path, progress: FeedProgress | None = None
) -> tuple[CveFeed, int]:
    """Check NVD feed files and install them, merged, as the node's feed.

    Returns the installed feed and how many entries were left out for having
    no configurations.  An entry in several files is kept as last modified.
    Nothing is installed if any file is not a valid feed (``FeedInvalid``).
    """
    kept: dict[str, tuple[dict[str, Any], CveEntry]] = {}
    skipped = 0
    for path in sources:
        for cve, entry in _checked(_items(read_feed_file(path, progress)), path.name, progress):
            if not entry.configurations:
                skipped += 1
                continue
            old = kept.get(entry.id)
            if old is None or old[1].last_modified <= entry.last_modified:
                kept[entry.id] = ({k: cve[k] for k in _KEPT if k in cve}, entry)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000", time.gmtime())
    body = orjson.dumps({
        "resultsPerPage": len(kept), "startIndex": 0, "totalResults": len(kept),
        "format": "NVD_CVE", "version": "2.0", "timestamp": stamp,
        "vulnerabilities": [{"cve": cve} for cve, _ in kept.values()],
    })  # fmt: skip
    target = feed_path(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if progress is not None:
        progress("write", target.name, len(body), len(body))
    return CveFeed(tuple(entry for _, entry in kept.values())), skipped


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
