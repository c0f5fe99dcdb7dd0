"""Live state ("twin"): the latest value of every tag of every piece of equipment."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from iinode.telemetry.model import Quality, Reading, Value, from_us


@dataclass(frozen=True, slots=True)
class TagState:
    """The latest known value of one tag."""

    value: Value
    time_us: int
    quality: Quality

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "time": from_us(self.time_us).isoformat(),
            "quality": int(self.quality),
        }


class LiveState:
    """Latest value per (equipment, tag); an older reading never replaces a newer one."""

    def __init__(self) -> None:
        self._state: dict[str, dict[str, TagState]] = {}

    def update(self, readings: Iterable[Reading]) -> int:
        """Apply readings; returns how many changed the state."""
        changed = 0
        state = self._state
        for r in readings:
            tags = state.get(r.equipment)
            if tags is None:
                tags = state[r.equipment] = {}
            current = tags.get(r.tag)
            if current is None or r.time_us >= current.time_us:
                tags[r.tag] = TagState(r.value, r.time_us, r.quality)
                changed += 1
        return changed

    def get(self, equipment_id: str) -> dict[str, TagState]:
        """A copy of the tag states of one piece of equipment (empty if none)."""
        return dict(self._state.get(equipment_id, {}))

    def mark_stale(self, equipment_id: str, time_us: int) -> None:
        """Set every tag of the equipment to bad quality (e.g. on a Sparkplug death)."""
        tags = self._state.get(equipment_id)
        if not tags:
            return
        for name, st in list(tags.items()):
            tags[name] = TagState(st.value, max(st.time_us, time_us), Quality.BAD)

    def equipment(self) -> list[str]:
        return sorted(self._state)
