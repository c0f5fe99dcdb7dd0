"""The monitoring event: the unit that is enqueued, reported upward and aggregated.

An event is identified by ``(origin, id)``: ``origin`` is the prefix of the node
that produced it and ``id`` is unique within that node.  A receiver stores each
key at most once, which makes delivery idempotent.  ``detail`` carries the full
body (for example a STIX 2.1 bundle); a *summary* is the same event without it,
naming in ``detail_at`` the node from which the detail can be fetched.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import orjson

from iinode.codes import TolerantIntEnum
from iinode.errors import InvalidHandle
from iinode.identifiers import HandleName, Prefix
from iinode.monitoring.errors import EventInvalid

_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}\Z")
_LABEL = re.compile(r"[A-Za-z0-9._\-]{0,64}\Z")


class Severity(TolerantIntEnum):
    """Event severity, ordered; names follow CVSS v3 qualitative ratings."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def from_cvss(cls, score: float) -> Severity:
        """The CVSS v3 qualitative rating of a base score (0.0 is ``INFO``)."""
        if score >= 9.0:
            return cls.CRITICAL
        if score >= 7.0:
            return cls.HIGH
        if score >= 4.0:
            return cls.MEDIUM
        if score > 0.0:
            return cls.LOW
        return cls.INFO

    @property
    def label(self) -> str:
        return self.name.lower()


class EventKind(enum.StrEnum):
    HEARTBEAT = "heartbeat"
    HEALTH = "health"
    ASSET = "asset"
    FINDING = "finding"
    SECURITY = "security"
    NOTICE_STATUS = "notice_status"


@lru_cache(maxsize=4096)
def _prefix(text: str) -> Prefix:
    return Prefix(text)


@lru_cache(maxsize=65536)
def _handle(text: str) -> HandleName:
    return HandleName.parse(text)


_KINDS: dict[Any, EventKind] = {k.value: k for k in EventKind}
_SEVERITIES: dict[Any, Severity] = {s.label: s for s in Severity}


def new_event_id() -> str:
    """A fresh, practically unique event id."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Event:
    """One monitoring event; validates on construction."""

    id: str
    origin: Prefix
    kind: EventKind
    severity: Severity
    observed_at: float
    province: str = ""
    industry: str = ""
    asset: HandleName | None = None
    asset_kind: str = ""
    detail: Mapping[str, Any] | None = None
    detail_at: Prefix | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise EventInvalid(f"event id {self.id!r} must be 1-128 of [A-Za-z0-9._:-]")
        if not isinstance(self.observed_at, int | float) or not 0 <= self.observed_at < 2**33:
            raise EventInvalid(f"event {self.id}: observed_at must be Unix seconds")
        if not 0 <= int(self.severity) <= 4:
            raise EventInvalid(f"event {self.id}: severity {int(self.severity)} is out of range")
        for name in ("province", "industry", "asset_kind"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _LABEL.match(value):
                raise EventInvalid(f"event {self.id}: {name} {value!r} is not a valid label")
        if self.asset is not None and not self.asset.prefix.is_within(self.origin):
            raise EventInvalid(
                f"event {self.id}: asset {self.asset} is not under origin {self.origin}"
            )

    @property
    def key(self) -> tuple[str, str]:
        return (self.origin.text, self.id)

    def summary(self, held_at: Prefix) -> Event:
        """This event without its detail, pointing to ``held_at`` for it."""
        return replace(self, detail=None, detail_at=self.detail_at or held_at)

    def summary_bytes(self, held_at: Prefix) -> bytes:
        """``summary(held_at).encode()``, without building the intermediate event."""
        out = self.to_json()
        out.pop("detail", None)
        out.setdefault("detail_at", held_at.text)
        return orjson.dumps(out)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "origin": self.origin.text,
            "kind": self.kind.value,
            "severity": self.severity.label,
            "observed_at": self.observed_at,
        }
        if self.province:
            out["province"] = self.province
        if self.industry:
            out["industry"] = self.industry
        if self.asset is not None:
            out["asset"] = str(self.asset)
        if self.asset_kind:
            out["asset_kind"] = self.asset_kind
        if self.detail is not None:
            out["detail"] = self.detail
        if self.detail_at is not None:
            out["detail_at"] = self.detail_at.text
        return out

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: Any) -> Event:
        """Build from decoded JSON; raises ``EventInvalid`` with the reason."""
        if not isinstance(data, dict):
            raise EventInvalid("an event must be a JSON object")
        try:
            ident = data["id"]
            origin = _prefix(data["origin"])
            kind = _KINDS.get(data["kind"]) or EventKind(data["kind"])
            severity = _SEVERITIES.get(data["severity"])
            if severity is None:
                severity = Severity.from_text(data["severity"])
            observed_at = data["observed_at"]
            asset_text = data.get("asset")
            asset = None if asset_text is None else _handle(asset_text)
            detail = data.get("detail")
            if detail is not None and not isinstance(detail, dict):
                raise EventInvalid(f"event {ident!r}: detail must be an object")
            held = data.get("detail_at")
            return cls(
                id=ident,
                origin=origin,
                kind=kind,
                severity=severity,
                observed_at=observed_at,
                province=data.get("province", ""),
                industry=data.get("industry", ""),
                asset=asset,
                asset_kind=data.get("asset_kind", ""),
                detail=detail,
                detail_at=None if held is None else _prefix(held),
            )
        except KeyError as exc:
            raise EventInvalid(f"event is missing field {exc.args[0]!r}") from None
        except InvalidHandle as exc:
            raise EventInvalid(f"event has an invalid prefix or handle: {exc.message}") from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise EventInvalid(f"event field is invalid: {exc}") from None
