"""The plain JSON topic scheme for simple devices (sans-IO).

Topic: ``iinode/v1/<prefix>/<suffix>``, naming the equipment identifier
``<prefix>/<suffix>`` (the suffix may itself contain ``/``).  Payload: one
object or an array of objects::

    {"ts": 1767225690123, "values": {"temperature": 71.5, "state": "running"}, "quality": 192}

``ts`` is milliseconds since the epoch or an ISO 8601 string, and defaults to
the time of arrival; ``quality`` defaults to 192 (good).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from iinode.errors import InvalidHandle, RemoteProtocolError, ValueInvalid
from iinode.identifiers import HandleName
from iinode.telemetry.model import Quality, Reading, Value, to_us

ROOT = "iinode/v1"


def topic_for(equipment: str, root: str = ROOT) -> str:
    return f"{root}/{HandleName.parse(equipment)}"


def subscription(root: str = ROOT) -> str:
    return f"{root}/#"


def equipment_of(topic: str, root: str = ROOT) -> str:
    if not topic.startswith(root + "/"):
        raise RemoteProtocolError(f"topic {topic!r} is not under {root}/")
    try:
        return str(HandleName.parse(topic[len(root) + 1 :]))
    except InvalidHandle as exc:
        raise RemoteProtocolError(f"topic {topic!r}: {exc.message}") from None


def encode(values: Mapping[str, Value], ts_ms: int | None = None, quality: int = 192) -> bytes:
    body: dict[str, Any] = {"values": dict(values)}
    if ts_ms is not None:
        body["ts"] = ts_ms
    if quality != 192:
        body["quality"] = quality
    return orjson.dumps(body)


def _time_us(raw: Any, default_us: int) -> int:
    if raw is None:
        return default_us
    if type(raw) is int:
        return raw * 1000
    if isinstance(raw, str):
        try:
            return to_us(datetime.fromisoformat(raw))
        except ValueError:
            pass
    raise RemoteProtocolError(f"ts {raw!r} is neither epoch milliseconds nor ISO 8601")


def decode(topic: str, payload: bytes, now_us: int, root: str = ROOT) -> list[Reading]:
    """Readings of one message; raises ``RemoteProtocolError`` if anything is malformed."""
    equipment = equipment_of(topic, root)
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"{topic}: payload is not JSON ({exc})") from None
    items = body if isinstance(body, list) else [body]
    out: list[Reading] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("values"), dict):
            raise RemoteProtocolError(f"{topic}: each message needs a 'values' object")
        when = _time_us(item.get("ts"), now_us)
        try:
            quality = Quality(item.get("quality", 192))
            for tag, value in item["values"].items():
                out.append(Reading(equipment, tag, when, value, quality))
        except (ValueError, TypeError, ValueInvalid) as exc:
            raise RemoteProtocolError(f"{topic}: {exc}") from None
    return out
