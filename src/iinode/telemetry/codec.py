"""Reading batches as bytes, for buses and JSON-speaking devices (sans-IO).

A batch is a JSON array of ``[equipment, tag, time_us, value, quality]``
arrays; JSON keeps the difference between ``1``, ``1.0``, ``true`` and ``"1"``,
so values round-trip with their type.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from iinode.errors import RemoteProtocolError, ValueInvalid
from iinode.telemetry.model import Quality, Reading


def encode_batch(readings: Sequence[Reading]) -> bytes:
    return orjson.dumps(
        [[r.equipment, r.tag, r.time_us, r.value, int(r.quality)] for r in readings]
    )


def decode_batch(data: bytes) -> list[Reading]:
    """Parse a batch; raises ``RemoteProtocolError`` if any part is malformed."""
    try:
        rows = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"reading batch is not JSON: {exc}") from None
    if not isinstance(rows, list):
        raise RemoteProtocolError("reading batch must be a JSON array")
    out: list[Reading] = []
    try:
        for row in rows:
            equipment, tag, time_us, value, quality = row
            out.append(Reading(equipment, tag, time_us, value, Quality(quality)))
    except (TypeError, ValueError, ValueInvalid) as exc:
        raise RemoteProtocolError(f"malformed reading in batch: {exc}") from None
    return out
