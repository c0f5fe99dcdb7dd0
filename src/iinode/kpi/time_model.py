"""The ISO 22400-2 time model of a work unit, built from state samples (pure).

A work unit reports its state (``running``, ``idle``, ``setup``, ``down``) as
samples; each sample's state holds until the next sample, at most
``max_hold_s`` (a longer silence is unknown time and counts nowhere), and the
last one until the end of the period.  The time elements are:

* APT, actual production time: time ``running``;
* AUST, actual unit setup time: time in ``setup``;
* ADOT, actual unit down time (delays and failures): time ``down``;
* PBT, planned busy time: APT + AUST + ADOT.  ``idle`` is time the unit is not
  planned to work (outside the shift calendar), so it is not part of PBT.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from iinode.errors import ValueInvalid

#: Relative slack allowed when checking that the parts of PBT fit in it.
_SLACK = 1e-9


class UnitState(enum.StrEnum):
    RUNNING = "running"
    IDLE = "idle"
    SETUP = "setup"
    DOWN = "down"


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueInvalid(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueInvalid(f"{name} must be a finite, non-negative number of seconds: {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class TimeModel:
    """Time elements of one work unit over one period, in seconds."""

    planned_busy_s: float  # PBT
    production_s: float  # APT
    setup_s: float = 0.0  # AUST
    down_s: float = 0.0  # ADOT

    def __post_init__(self) -> None:
        for name in ("planned_busy_s", "production_s", "setup_s", "down_s"):
            object.__setattr__(self, name, _seconds(name, getattr(self, name)))
        used = self.production_s + self.setup_s + self.down_s
        if used > self.planned_busy_s * (1 + _SLACK) + _SLACK:
            raise ValueInvalid(
                f"production, setup and down time ({used:g} s) exceed "
                f"the planned busy time ({self.planned_busy_s:g} s)"
            )


def state_durations(
    samples: Iterable[tuple[float, str]], end_s: float, max_hold_s: float = math.inf
) -> dict[UnitState, float]:
    """Seconds spent in each state from ``(time_s, state)`` samples, in time order, to ``end_s``.

    Raises ``ValueInvalid`` for an unknown state, samples out of order or after
    ``end_s``, or a negative ``max_hold_s``.
    """
    if not max_hold_s >= 0:
        raise ValueInvalid(f"max_hold_s must not be negative: {max_hold_s!r}")
    out = dict.fromkeys(UnitState, 0.0)
    previous: tuple[float, UnitState] | None = None
    for time_s, text in samples:
        try:
            state = UnitState(text)
        except ValueError:
            raise ValueInvalid(f"unknown work unit state {text!r}") from None
        if previous is not None:
            if time_s < previous[0]:
                raise ValueInvalid(f"state samples out of order at {time_s!r}")
            out[previous[1]] += min(time_s - previous[0], max_hold_s)
        previous = (time_s, state)
    if previous is not None:
        if end_s < previous[0]:
            raise ValueInvalid(f"the period ends ({end_s!r}) before its last sample")
        out[previous[1]] += min(end_s - previous[0], max_hold_s)
    return out


def time_model(durations: Mapping[UnitState, float]) -> TimeModel:
    """The time model of per-state durations (``idle`` is outside planned busy time)."""
    running = _seconds("running time", durations.get(UnitState.RUNNING, 0.0))
    setup = _seconds("setup time", durations.get(UnitState.SETUP, 0.0))
    down = _seconds("down time", durations.get(UnitState.DOWN, 0.0))
    return TimeModel(running + setup + down, running, setup, down)


__all__ = ["TimeModel", "UnitState", "state_durations", "time_model"]
