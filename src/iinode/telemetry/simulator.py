"""A deterministic factory simulator (no I/O): machines, shifts, wear and failures.

Each machine moves between ``running``, ``idle``, ``setup`` and ``down``.  While
running it completes parts at its cycle time (good or scrap), draws power, and
wears: temperature, vibration and torque drift upward with wear, the scrap
rate and the failure hazard grow with it, and at full wear the machine fails.
A repair resets wear.  Outside the shift calendar machines idle.  The same seed
gives the same readings, machine by machine, whatever else is simulated.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from iinode.telemetry.model import (
    Connection,
    DataType,
    Equipment,
    EquipmentKind,
    Reading,
    Tag,
    from_us,
)


class MachineState(enum.StrEnum):
    RUNNING = "running"
    IDLE = "idle"
    SETUP = "setup"
    DOWN = "down"


TAGS = (
    Tag("state", DataType.STRING),
    Tag("good_count", DataType.INT, "pcs"),
    Tag("scrap_count", DataType.INT, "pcs"),
    Tag("cycle_time", DataType.FLOAT, "s"),
    Tag("power", DataType.FLOAT, "kW"),
    Tag("energy", DataType.FLOAT, "kWh"),
    Tag("temperature", DataType.FLOAT, "degC"),
    Tag("vibration", DataType.FLOAT, "mm/s"),
    Tag("spindle_speed", DataType.FLOAT, "rpm"),
    Tag("torque", DataType.FLOAT, "Nm"),
    Tag("tool_wear", DataType.FLOAT, "min"),
)


@dataclass(frozen=True, slots=True)
class Shift:
    start: time
    end: time
    weekdays: frozenset[int] = frozenset(range(5))

    def covers(self, moment: datetime) -> bool:
        t = moment.timetz().replace(tzinfo=None)
        if self.start <= self.end:
            return moment.weekday() in self.weekdays and self.start <= t < self.end
        if t >= self.start:
            return moment.weekday() in self.weekdays
        return (moment - timedelta(days=1)).weekday() in self.weekdays and t < self.end


@dataclass(frozen=True, slots=True)
class ShiftCalendar:
    """Working shifts (UTC); an empty calendar means always working."""

    shifts: tuple[Shift, ...] = ()

    @classmethod
    def two_shifts(cls) -> ShiftCalendar:
        return cls((Shift(time(6), time(14)), Shift(time(14), time(22))))

    def working(self, moment: datetime) -> bool:
        return not self.shifts or any(s.covers(moment) for s in self.shifts)


@dataclass(frozen=True, slots=True)
class MachineSpec:
    id: str
    model: str = "CNC-5"
    vendor: str = "Simulated"
    line: str | None = None
    cycle_s: float = 30.0
    scrap_rate: float = 0.02
    power_running_kw: float = 15.0
    power_idle_kw: float = 2.0
    ambient_c: float = 22.0
    tool_life_min: float = 240.0
    setup_every: int = 200
    rpm: float = 1500.0


@dataclass(slots=True)
class Machine:
    """The changing state of one machine."""

    spec: MachineSpec
    rng: random.Random
    state: MachineState = MachineState.IDLE
    wear_min: float = 0.0
    good: int = 0
    scrap: int = 0
    energy_kwh: float = 0.0
    temperature: float = 22.0
    progress: float = 0.0
    busy_until_s: float = 0.0
    since_setup: int = 0
    cycle_time: float = 0.0
    power: float = 0.0
    vibration: float = 0.0
    torque: float = 0.0
    speed: float = 0.0
    failures: int = 0

    @property
    def wear(self) -> float:
        return min(1.0, self.wear_min / self.spec.tool_life_min)

    def step(self, now_s: float, dt: float, working: bool) -> None:
        spec, rng = self.spec, self.rng
        if self.state in (MachineState.DOWN, MachineState.SETUP) and now_s < self.busy_until_s:
            pass
        elif self.state is MachineState.DOWN:
            self.wear_min = 0.0
            self.state = MachineState.RUNNING if working else MachineState.IDLE
        elif not working:
            self.state = MachineState.IDLE
        elif self.state is MachineState.SETUP or self.state is MachineState.IDLE:
            self.state = MachineState.RUNNING
        if self.state is MachineState.RUNNING:
            hazard = 1e-5 * math.exp(6 * self.wear) * dt
            if self.wear >= 1.0 or rng.random() < hazard:
                self.state = MachineState.DOWN
                self.failures += 1
                self.busy_until_s = now_s + rng.uniform(900, 2700)
            elif self.since_setup >= spec.setup_every:
                self.state = MachineState.SETUP
                self.since_setup = 0
                self.busy_until_s = now_s + rng.uniform(300, 900)
        wear = self.wear
        running = self.state is MachineState.RUNNING
        if running:
            self.cycle_time = spec.cycle_s * (1 + 0.15 * wear) * rng.uniform(0.97, 1.03)
            self.progress += dt / self.cycle_time
            while self.progress >= 1.0:
                self.progress -= 1.0
                self.since_setup += 1
                if rng.random() < spec.scrap_rate * (1 + 4 * wear * wear):
                    self.scrap += 1
                else:
                    self.good += 1
            self.wear_min += dt / 60
        self.power = spec.power_running_kw * (1 + 0.1 * wear) if running else spec.power_idle_kw
        self.power *= rng.uniform(0.98, 1.02)
        self.energy_kwh += self.power * dt / 3600
        target = spec.ambient_c + (30 + 25 * wear if running else 3)
        self.temperature += (target - self.temperature) * (1 - math.exp(-dt / 600))
        self.temperature += rng.gauss(0, 0.05)
        self.speed = spec.rpm * rng.uniform(0.99, 1.01) if running else 0.0
        self.torque = (40 + 25 * wear + rng.gauss(0, 1.5)) if running else 0.0
        self.vibration = (1.5 * (1 + 4 * wear * wear) + abs(rng.gauss(0, 0.1))) if running else 0.05

    def values(self) -> dict[str, bool | int | float | str]:
        return {
            "state": self.state.value,
            "good_count": self.good,
            "scrap_count": self.scrap,
            "cycle_time": round(self.cycle_time, 3),
            "power": round(self.power, 3),
            "energy": round(self.energy_kwh, 4),
            "temperature": round(self.temperature, 3),
            "vibration": round(self.vibration, 4),
            "spindle_speed": round(self.speed, 1),
            "torque": round(self.torque, 3),
            "tool_wear": round(self.wear_min, 2),
        }


@dataclass(slots=True)
class Factory:
    """Machines under one enterprise prefix, advanced in fixed steps of simulated time."""

    prefix: str
    specs: Sequence[MachineSpec]
    seed: int = 0
    start: datetime = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    calendar: ShiftCalendar = field(default_factory=ShiftCalendar.two_shifts)
    machines: list[Machine] = field(init=False)
    now_s: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.machines = [
            Machine(s, random.Random(f"{self.seed}:{s.id}"), temperature=s.ambient_c)
            for s in self.specs
        ]

    @classmethod
    def demo(cls, prefix: str, machines: int = 4, seed: int = 0) -> Factory:
        line = f"{prefix}/LINE-1"
        specs = [
            MachineSpec(
                id=f"{prefix}/M{i + 1:03d}",
                line=line,
                cycle_s=20.0 + 5 * (i % 4),
                tool_life_min=180.0 + 60 * (i % 3),
            )
            for i in range(machines)
        ]
        return cls(prefix, specs, seed)

    @property
    def time_us(self) -> int:
        start_us = int(self.start.timestamp()) * 1_000_000
        return start_us + int(self.now_s * 1_000_000)

    @property
    def moment(self) -> datetime:
        return from_us(self.time_us)

    def equipment(self, protocol: str = "sparkplug", address: str = "") -> list[Equipment]:
        return [
            Equipment(
                id=m.spec.id,
                kind=EquipmentKind.MACHINE,
                model=m.spec.model,
                vendor=m.spec.vendor,
                line=m.spec.line,
                connection=Connection(protocol, address),
                tags=TAGS,
            )
            for m in self.machines
        ]

    def step(self, dt: float) -> list[Reading]:
        """Advance ``dt`` seconds; the readings of every tag of every machine at the new time."""
        self.now_s += dt
        working = self.calendar.working(self.moment)
        t = self.time_us
        out: list[Reading] = []
        for m in self.machines:
            m.step(self.now_s, dt, working)
            out.extend(Reading(m.spec.id, k, t, v) for k, v in m.values().items())
        return out

    def run(self, duration_s: float, dt: float) -> Iterator[list[Reading]]:
        steps = int(duration_s / dt)
        for _ in range(steps):
            yield self.step(dt)
