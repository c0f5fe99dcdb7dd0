"""CPE 2.3 names (NISTIR 7695 formatted-string binding), matching and version order.

A ``Cpe`` holds the eleven attributes.  ``*`` is ANY and ``-`` is NA; other
values are kept in their bound (escaped) form and compared case-insensitively,
with unescaped ``*`` and ``?`` in a pattern acting as wildcards.  ``normalise``
turns free text reported by devices ("Siemens AG", "SIMATIC S7-1200") into
attribute values the NVD dictionary uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

ATTRIBUTES = (
    "part",
    "vendor",
    "product",
    "version",
    "update",
    "edition",
    "language",
    "sw_edition",
    "target_sw",
    "target_hw",
    "other",
)
ANY = "*"
NA = "-"
_SPLIT = re.compile(r"(?<!\\):")
_TOKEN = re.compile(r"\d+|[a-z]+")
_UNSAFE = re.compile(r"([^A-Za-z0-9_.\-*?\\])")


@dataclass(frozen=True, slots=True)
class Cpe:
    part: str
    vendor: str
    product: str
    version: str = ANY
    update: str = ANY
    edition: str = ANY
    language: str = ANY
    sw_edition: str = ANY
    target_sw: str = ANY
    target_hw: str = ANY
    other: str = ANY

    def __post_init__(self) -> None:
        if self.part not in ("a", "o", "h", ANY):
            raise ValueError(f"CPE part {self.part!r} must be a, o, h or *")
        for name in ATTRIBUTES:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"CPE attribute {name} must be a non-empty string")

    @classmethod
    def parse(cls, text: str) -> Cpe:
        """Parse ``cpe:2.3:part:vendor:product:...`` (11 attributes)."""
        if not isinstance(text, str) or not text.startswith("cpe:2.3:"):
            raise ValueError(f"{text!r} is not a CPE 2.3 formatted string")
        fields = _SPLIT.split(text[8:])
        if len(fields) != 11:
            raise ValueError(f"{text!r} has {len(fields)} attributes; CPE 2.3 has 11")
        return cls(*(f.lower() if i < 3 else f for i, f in enumerate(fields)))

    def __str__(self) -> str:
        return "cpe:2.3:" + ":".join(getattr(self, a) for a in ATTRIBUTES)

    def matches(self, name: Cpe) -> bool:
        """True if this pattern selects ``name`` (attribute by attribute)."""
        return all(_attr_match(getattr(self, a), getattr(name, a)) for a in ATTRIBUTES)


def _attr_match(pattern: str, value: str) -> bool:
    if pattern == ANY:
        return True
    if pattern == NA or value == NA:
        return pattern == value
    if value == ANY:
        return False
    return _compile(pattern).fullmatch(value.lower()) is not None


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    text = pattern.lower()
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(re.escape(text[i : i + 2]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out))


def normalise(text: str) -> str:
    """Free text to a bound CPE attribute value: lower case, ``_`` for blanks, escaped."""
    value = re.sub(r"\s+", "_", text.strip().lower())
    if not value:
        return NA
    return _UNSAFE.sub(r"\\\1", value.replace("*", "\\*").replace("?", "\\?"))


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """An order on version strings: ``V4.5.0`` < ``4.10``; trailing zeros do not matter."""
    text = version.lower().replace("\\", "")
    if text.startswith("v") and text[1:2].isdigit():
        text = text[1:]
    parts: list[tuple[int, int | str]] = [
        (1, int(t)) if t.isdigit() else (0, t) for t in _TOKEN.findall(text)
    ]
    while parts and parts[-1] == (1, 0):
        parts.pop()
    return tuple(parts)


def version_in_range(
    version: str,
    *,
    start_including: str | None = None,
    start_excluding: str | None = None,
    end_including: str | None = None,
    end_excluding: str | None = None,
) -> bool:
    """NVD ``cpeMatch`` version range semantics."""
    v = version_key(version)
    if start_including is not None and v < version_key(start_including):
        return False
    if start_excluding is not None and v <= version_key(start_excluding):
        return False
    if end_including is not None and v > version_key(end_including):
        return False
    return not (end_excluding is not None and v >= version_key(end_excluding))
