"""Alarm rules, states, hysteresis, history and the monitoring notification."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from iinode.analytics.alarms import (
    AlarmEngine,
    AlarmState,
    AlarmStore,
    Rule,
    RuleKind,
    RuleSource,
    Transition,
)
from iinode.api.alarms import monitoring_notifier
from iinode.errors import ValueInvalid
from iinode.identifiers import Prefix
from iinode.kpi import Elements, compute
from iinode.monitoring.events import EventKind
from iinode.monitoring.node import MonitoringNode, MonitoringSettings
from iinode.telemetry.model import Quality, Reading

ENT = "88.118.8"
M1 = f"{ENT}/M001"
S = 1_000_000


def temp(values: list[float], machine: str = M1, tag: str = "temperature") -> list[Reading]:
    return [Reading(machine, tag, 1_000 * S + i * 10 * S, v) for i, v in enumerate(values)]


def engine(tmp_path: Path, *rules: Rule, **kw: Any) -> tuple[AlarmEngine, list[Transition]]:
    seen: list[Transition] = []
    e = AlarmEngine(AlarmStore(tmp_path / "alarms.sqlite3"), seen.append,
                    clock=lambda: 5_000 * S, **kw)  # fmt: skip
    for rule in rules:
        e.put_rule(rule)
    return e, seen


HOT = Rule("hot", M1, RuleSource.TAG, "temperature", RuleKind.HIGH, 80.0, deadband=5.0,
           severity="high")  # fmt: skip


def test_threshold_with_deadband_active_acknowledged_cleared(tmp_path: Path) -> None:
    e, seen = engine(tmp_path, HOT)
    e.observe(temp([70, 81, 79, 82, 76]))  # 79 and 76 are inside the deadband: one alarm
    (alarm,) = e.alarms()
    assert alarm.state is AlarmState.ACTIVE
    assert alarm.value == 81
    assert [t.event for t in seen] == ["raised"]
    acked = e.acknowledge(alarm.id, "300:0.NA/88.118.8")
    assert acked is not None
    assert acked.state is AlarmState.ACKNOWLEDGED
    e.observe(temp([74.9]))  # at or below 80 - 5: cleared, and gone from the list
    assert e.alarms() == []
    assert [t.event for t in seen] == ["raised", "acknowledged", "cleared"]
    history = e.store.history(M1)
    assert [h["event"] for h in history] == ["cleared", "acknowledged", "raised"]
    assert history[0]["value"] == 74.9


def test_a_cleared_alarm_stays_listed_until_acknowledged(tmp_path: Path) -> None:
    e, _ = engine(tmp_path, HOT)
    e.observe(temp([90, 60]))
    (alarm,) = e.alarms()
    assert alarm.state is AlarmState.CLEARED
    e.observe(temp([95]))  # a new episode is a new alarm
    assert len(e.alarms()) == 2
    assert e.acknowledge(alarm.id, "op") is not None
    (left,) = e.alarms()
    assert left.state is AlarmState.ACTIVE
    assert e.acknowledge("no-such-alarm", "op") is None


def test_low_and_rate_rules_and_prefix_scope(tmp_path: Path) -> None:
    low = Rule("slow", ENT, RuleSource.TAG, "spindle_speed", RuleKind.LOW, 1000.0, deadband=50)
    rate = Rule("jump", ENT, RuleSource.TAG, "temperature", RuleKind.RATE, 0.5, deadband=0.1)
    e, _ = engine(tmp_path, low, rate)
    other = f"{ENT}/M002"
    e.observe(temp([1500, 990, 1020], machine=other, tag="spindle_speed"))
    (alarm,) = e.alarms()  # 1020 is inside the deadband
    assert (alarm.rule, alarm.equipment) == ("slow", other)
    e.observe(temp([50, 52, 60]))  # +0.2/s, then +0.8/s over 10 s
    jump = next(a for a in e.alarms() if a.rule == "jump")
    assert jump.value == pytest.approx(0.8)
    e.observe([Reading(M1, "temperature", 1_030 * S, 60.5)])  # 0.05/s: cleared
    assert next(a for a in e.alarms() if a.rule == "jump").state is AlarmState.CLEARED


def test_kpi_rules_and_bad_readings(tmp_path: Path) -> None:
    poor = compute(Elements(apt_us=10 * S, adet_us=90 * S, gq=1, ideal_s=10.0))
    rule = Rule("oee", ENT, RuleSource.KPI, "oee", RuleKind.LOW, 0.6)
    e, _ = engine(tmp_path, rule, kpis=lambda equipment, t: poor, kpi_every_us=60 * S)
    e.observe(temp([20.0]))
    (alarm,) = e.alarms()
    assert alarm.value == pytest.approx(0.1)
    # readings of bad quality and non-numbers never evaluate a rule
    e2, seen = engine(tmp_path / "2", HOT)
    e2.observe([Reading(M1, "temperature", S, 99.0, Quality.BAD),
                Reading(M1, "temperature", 2 * S, "hot")])  # fmt: skip
    assert seen == []


def test_rules_and_alarms_survive_a_restart(tmp_path: Path) -> None:
    e, _ = engine(tmp_path, HOT)
    e.observe(temp([90]))
    again = AlarmEngine(AlarmStore(tmp_path / "alarms.sqlite3"))
    assert again.rules() == [HOT]
    (alarm,) = again.alarms()
    again.observe(temp([70]))  # the reopened engine clears the alarm it found
    assert again.alarms()[0].state is AlarmState.CLEARED
    assert alarm.state is AlarmState.ACTIVE
    assert again.delete_rule("hot")
    assert again.rules() == []


@pytest.mark.parametrize(
    "change",
    [{"id": "bad id"}, {"kind": "sideways"}, {"limit": float("nan")}, {"deadband": -1.0},
     {"source": RuleSource.KPI, "name": "happiness"}, {"severity": "dire"}],
)  # fmt: skip
def test_invalid_rules_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueInvalid):
        replace(HOT, **change)


async def test_transitions_become_operational_monitoring_events(tmp_path: Path) -> None:
    async def nobody(*_: object) -> None:
        return None

    node = MonitoringNode(
        MonitoringSettings(Prefix(ENT), tmp_path / "monitoring"),
        is_child=lambda _prefix: False, authenticate=nobody,  # type: ignore[arg-type]
    )  # fmt: skip
    try:
        e, _ = engine(tmp_path, HOT)
        e.notify = monitoring_notifier(node)
        e.observe(temp([85, 60]))
        events = node.store.recent(10, kind=EventKind.HEALTH)
        assert len(events) == 2
        raised = next(ev for ev in events if ev.detail and ev.detail["event"] == "raised")
        assert str(raised.asset) == M1
        assert raised.severity.label == "high"
        assert raised.detail is not None
        assert raised.detail["rule"] == "hot"
        assert not node.store.recent(10, kind=EventKind.SECURITY)
    finally:
        await node.close()


def test_processes_sharing_the_store_see_rules_and_acknowledgements(tmp_path: Path) -> None:
    primary, seen = engine(tmp_path)
    other = AlarmEngine(AlarmStore(tmp_path / "alarms.sqlite3"))  # an API-only process
    other.put_rule(HOT)
    primary.refresh_rules()
    primary.observe(temp([90]))
    (alarm,) = other.alarms()
    assert other.acknowledge(alarm.id, "op") is not None
    primary.observe(temp([60]))  # cleared where it was raised: acknowledged, so closed
    assert other.alarms() == []
    assert [t.event for t in seen] == ["raised", "cleared"]
