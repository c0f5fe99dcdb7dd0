"""State samples to the ISO 22400 time model."""

from __future__ import annotations

import math

import pytest

from iinode.errors import ValueInvalid
from iinode.kpi import TimeModel, UnitState, state_durations, time_model


def test_each_sample_holds_until_the_next_and_the_last_until_the_end() -> None:
    samples = [(0.0, "running"), (600.0, "setup"), (900.0, "running"), (1500.0, "down"),
               (2100.0, "idle"), (2400.0, "running")]  # fmt: skip
    d = state_durations(samples, 3000.0)
    assert d == {UnitState.RUNNING: 600 + 600 + 600, UnitState.SETUP: 300,
                 UnitState.DOWN: 600, UnitState.IDLE: 300}  # fmt: skip
    assert time_model(d) == TimeModel(2700, 1800, 300, 600)  # idle is not planned busy time


def test_silence_longer_than_max_hold_counts_nowhere() -> None:
    d = state_durations([(0.0, "running"), (1000.0, "running")], 1010.0, max_hold_s=60)
    assert d[UnitState.RUNNING] == 70
    assert state_durations([], 100.0) == dict.fromkeys(UnitState, 0.0)
    assert time_model({}) == TimeModel(0, 0)


@pytest.mark.parametrize(
    ("samples", "end", "hold"),
    [
        ([(0.0, "exploded")], 1.0, math.inf),
        ([(5.0, "running"), (1.0, "idle")], 10.0, math.inf),
        ([(5.0, "running")], 1.0, math.inf),
        ([(0.0, "running")], 1.0, -1.0),
    ],
)
def test_bad_samples_are_refused(samples: list[tuple[float, str]], end: float, hold: float) -> None:
    with pytest.raises(ValueInvalid):
        state_durations(samples, end, hold)


def test_time_model_refuses_negative_durations() -> None:
    with pytest.raises(ValueInvalid, match="running time"):
        time_model({UnitState.RUNNING: -1.0})
