"""Live state ("twin"): the latest value of every tag of every piece of equipment."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from iinode.errors import InvalidHandle
from iinode.identifiers import HandleName
from iinode.telemetry.model import Quality, Reading, Value, from_us


@dataclass(frozen=True, slots=True)
class TagState:
    """The latest known value of one tag (``None`` if the source never gave one)."""

    value: Value | None
    time_us: int
    quality: Quality

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "time": from_us(self.time_us).isoformat(),
            "quality": int(self.quality),
        }


class LiveState:
    """Latest value per (equipment, tag); an older reading never replaces a newer one.

    A reading without a value (bad quality, no value given) keeps the tag's last
    value and takes its quality and time.  Equipment marked offline
    (:meth:`mark_stale`, a Sparkplug death) shows every tag with bad quality,
    including the values of readings that reach this state after the death but
    were sent before it (a birth's values still on their way through the bus),
    until :meth:`revive` (its next birth).
    """

    def __init__(self) -> None:
        self._state: dict[str, dict[str, TagState]] = {}
        self._offline: set[str] = set()

    def update(self, readings: Iterable[Reading]) -> int:
        """Apply readings; returns how many changed the state."""
        changed = 0
        state = self._state
        offline = self._offline
        for r in readings:
            tags = state.get(r.equipment)
            if tags is None:
                tags = state[r.equipment] = {}
            current = tags.get(r.tag)
            if current is None or r.time_us >= current.time_us:
                value = r.value
                if value is None and current is not None:
                    value = current.value
                quality = Quality.BAD if offline and r.equipment in offline else r.quality
                tags[r.tag] = TagState(value, r.time_us, quality)
                changed += 1
        return changed

    def get(self, equipment_id: str) -> dict[str, TagState]:
        """A copy of the tag states of one piece of equipment (empty if none)."""
        return dict(self._state.get(equipment_id, {}))

    def mark_stale(self, equipment_id: str, time_us: int) -> None:
        """Set every tag of the equipment to bad quality until :meth:`revive` (a death)."""
        equipment_id = _normal(equipment_id)
        self._offline.add(equipment_id)
        tags = self._state.get(equipment_id)
        if not tags:
            return
        for name, st in list(tags.items()):
            tags[name] = TagState(st.value, max(st.time_us, time_us), Quality.BAD)

    def revive(self, equipment_id: str) -> None:
        """The equipment is online again (a birth): new readings keep their quality."""
        self._offline.discard(_normal(equipment_id))

    def offline(self, equipment_id: str) -> bool:
        return _normal(equipment_id) in self._offline

    def equipment(self) -> list[str]:
        return sorted(self._state)


def _normal(equipment_id: str) -> str:
    """The id as the validator writes it into readings (prefix in its normal case)."""
    try:
        return str(HandleName.parse(equipment_id))
    except InvalidHandle:
        return equipment_id
