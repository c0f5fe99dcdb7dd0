"""Predictive maintenance: will a machine fail within the horizon? (scikit-learn, optional).

Training data comes from the factory simulator run to failure
(:mod:`iinode.telemetry.simulator`): while a machine runs its tool wears, and
temperature, vibration and torque drift up with the wear; the failure hazard
grows with it and a machine fails at the latest at full wear.  Machines differ
in tool life, so wear minutes alone do not tell how close a failure is; the
sensors do.

Each sample (one per ``sample_s`` while running) has the features of
:data:`FEATURES`: temperature, vibration, torque, tool wear (minutes), and the
vibration and torque means over the last :data:`WINDOW` samples.  Its label
says whether the machine fails within ``horizon_s``.  The classifier is
scikit-learn's ``RandomForestClassifier`` (60 trees of depth 10, classes
balanced).  :func:`evaluate` scores it
on machines it never saw:

* per sample: precision and recall of "fails within the horizon";
* per failure: the share of failures warned of (a warning on the last sample
  before it), and the lead time, from the first warning of the run of warnings
  that reached the failure to the failure.

scikit-learn is an optional extra (``iinode[ml]``): importing this module
never needs it, :func:`available` says whether it is there, and KPIs, alarms
and the node run without it.  :class:`MaintenanceWatcher` turns the model's
probability into an alarm through an :class:`~iinode.analytics.alarms.AlarmEngine`
rule of source ``model`` (name ``failure_probability``).
"""

from __future__ import annotations

import importlib.util
import math
import pickle
import random
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from iinode.analytics.alarms import AlarmEngine, Rule, RuleKind, RuleSource
from iinode.errors import ConfigurationError
from iinode.telemetry.model import Reading
from iinode.telemetry.simulator import Machine, MachineSpec, MachineState

FEATURES = ("temperature", "vibration", "torque", "tool_wear", "vibration_mean", "torque_mean")
#: Samples in the moving means.
WINDOW = 5
#: The tags the features are made of.
TAGS = ("temperature", "vibration", "torque", "tool_wear", "state")
OUTPUT = "failure_probability"


def available() -> bool:
    """Whether scikit-learn is installed (the ``ml`` extra)."""
    return importlib.util.find_spec("sklearn") is not None


def _require() -> None:
    if not available():
        raise ConfigurationError(
            "predictive maintenance needs scikit-learn: pip install 'iinode[ml]'"
        )


@dataclass(slots=True)
class FeatureWindow:
    """One machine's recent sensor values, turned into a feature row."""

    recent: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def row(self, temperature: float, vibration: float, torque: float,
            wear_min: float) -> list[float]:  # fmt: skip
        self.recent.append((vibration, torque))
        vib = statistics.fmean(v for v, _ in self.recent)
        tq = statistics.fmean(t for _, t in self.recent)
        return [temperature, vibration, torque, wear_min, vib, tq]


@dataclass(frozen=True, slots=True)
class Samples:
    """Feature rows, labels, and where they came from (machine, time in s)."""

    rows: list[list[float]]
    labels: list[int]
    machine: list[int]
    time_s: list[float]
    failures: list[tuple[int, float]]  # (machine, time in s)


def run_to_failure(
    machines: int,
    hours: float,
    *,
    seed: int,
    sample_s: float = 60.0,
    horizon_s: float = 1800.0,
) -> Samples:
    """Simulate ``machines`` machines running around the clock for ``hours``, each with its
    own tool life and cycle; samples while running, labelled by failure within the horizon."""
    rng = random.Random(seed)
    rows: list[list[float]] = []
    where: list[tuple[int, float]] = []
    failures: list[tuple[int, float]] = []
    for m in range(machines):
        spec = MachineSpec(
            id=f"SIM/{seed}-{m}", cycle_s=rng.uniform(18, 40),
            tool_life_min=rng.uniform(150, 330), ambient_c=rng.uniform(18, 28),
            setup_every=10**9,
        )  # fmt: skip
        machine = Machine(spec, random.Random(f"{seed}:{m}"), temperature=spec.ambient_c)
        window = FeatureWindow()
        before = 0
        steps = int(hours * 3600 / sample_s)
        for i in range(1, steps + 1):
            now = i * sample_s
            machine.step(now, sample_s, True)
            if machine.failures > before:
                before = machine.failures
                failures.append((m, now))
                window = FeatureWindow()
            if machine.state is MachineState.RUNNING:
                rows.append(window.row(machine.temperature, machine.vibration, machine.torque,
                                       machine.wear_min))  # fmt: skip
                where.append((m, now))
    labels = []
    next_failure: dict[int, list[float]] = {}
    for m, t in failures:
        next_failure.setdefault(m, []).append(t)
    for m, t in where:
        times = next_failure.get(m, [])
        labels.append(int(any(t < f <= t + horizon_s for f in times)))
    return Samples(rows, labels, [m for m, _ in where], [t for _, t in where], failures)


@dataclass(slots=True)
class FailurePredictor:
    """A trained classifier and the horizon it predicts over."""

    model: Any
    horizon_s: float
    threshold: float = 0.5

    def probability(self, rows: Sequence[Sequence[float]]) -> list[float]:
        if not rows:
            return []
        return [float(p) for p in self.model.predict_proba(list(rows))[:, 1]]


def train(samples: Samples, horizon_s: float = 1800.0, *, seed: int = 0) -> FailurePredictor:
    """Fit the classifier (raises ``ConfigurationError`` without scikit-learn)."""
    _require()
    from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]

    model = RandomForestClassifier(
        n_estimators=60,
        max_depth=10,
        min_samples_leaf=5,
        class_weight="balanced",
        n_jobs=1,
        random_state=seed,
    )
    model.fit(samples.rows, samples.labels)
    return FailurePredictor(model, horizon_s)


@dataclass(frozen=True, slots=True)
class Evaluation:
    precision: float
    recall: float
    failures: int
    warned: int
    failure_recall: float
    median_lead_s: float | None
    mean_lead_s: float | None
    samples: int
    positives: int

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def evaluate(predictor: FailurePredictor, samples: Samples) -> Evaluation:
    """Scores on held-out machines (see the module docstring)."""
    probs = predictor.probability(samples.rows)
    warn = [p >= predictor.threshold for p in probs]
    tp = sum(1 for w, y in zip(warn, samples.labels, strict=True) if w and y)
    fp = sum(1 for w, y in zip(warn, samples.labels, strict=True) if w and not y)
    fn = sum(1 for w, y in zip(warn, samples.labels, strict=True) if not w and y)
    by_machine: dict[int, list[int]] = {}
    for i, m in enumerate(samples.machine):
        by_machine.setdefault(m, []).append(i)
    leads: list[float] = []
    for m, t_fail in samples.failures:
        idx = [i for i in by_machine.get(m, []) if samples.time_s[i] < t_fail]
        if not idx or not warn[idx[-1]] or t_fail - samples.time_s[idx[-1]] > predictor.horizon_s:
            continue
        first = idx[-1]
        for i in reversed(idx):
            if not warn[i]:
                break
            first = i
        leads.append(t_fail - samples.time_s[first])
    n = len(samples.failures)
    return Evaluation(
        tp / (tp + fp) if tp + fp else math.nan,
        tp / (tp + fn) if tp + fn else math.nan,
        n, len(leads), len(leads) / n if n else math.nan,
        statistics.median(leads) if leads else None,
        statistics.fmean(leads) if leads else None,
        len(samples.rows), sum(samples.labels),
    )  # fmt: skip


def save(predictor: FailurePredictor, path: Path) -> None:
    """Write a trained predictor (a pickle: load only files this node wrote)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(predictor))
    tmp.replace(path)


def load(path: Path) -> FailurePredictor | None:
    """The predictor saved at ``path``; ``None`` if there is none or scikit-learn is absent."""
    if not path.is_file() or not available():
        return None
    loaded = pickle.loads(path.read_bytes())  # written by save() into the node's data dir
    return loaded if isinstance(loaded, FailurePredictor) else None


RULE = Rule("predicted-failure", "*", RuleSource.MODEL, OUTPUT, RuleKind.HIGH, 0.5,
            deadband=0.2, severity="high",
            message="failure predicted within the maintenance horizon")  # fmt: skip


class MaintenanceWatcher:
    """An ingest observer: each machine's latest sensor values through the predictor, its
    failure probability through ``rule`` of ``engine`` (a warning raises an alarm)."""

    def __init__(self, predictor: FailurePredictor, engine: AlarmEngine, prefix: str,
                 rule: Rule | None = None) -> None:  # fmt: skip
        self.predictor = predictor
        self.engine = engine
        self.rule = rule or replace(RULE, equipment=prefix, limit=predictor.threshold)
        self._latest: dict[str, dict[str, Any]] = {}
        self._windows: dict[str, FeatureWindow] = {}

    def observe(self, readings: Iterable[Reading]) -> None:
        touched: dict[str, int] = {}
        for r in readings:
            if r.tag in TAGS and r.quality.is_good and self.rule.covers(r.equipment):
                self._latest.setdefault(r.equipment, {})[r.tag] = r.value
                touched[r.equipment] = max(r.time_us, touched.get(r.equipment, 0))
        for equipment, t in touched.items():
            values = self._latest[equipment]
            if values.get("state") != MachineState.RUNNING.value:
                continue
            try:
                numbers = [float(values[k]) for k in ("temperature", "vibration", "torque",
                                                       "tool_wear")]  # fmt: skip
            except (KeyError, TypeError, ValueError):
                continue
            window = self._windows.setdefault(equipment, FeatureWindow())
            (p,) = self.predictor.probability([window.row(*numbers)])
            self.engine.evaluate(self.rule, equipment, t, p)


__all__ = [
    "FEATURES",
    "RULE",
    "Evaluation",
    "FailurePredictor",
    "MaintenanceWatcher",
    "Samples",
    "available",
    "evaluate",
    "load",
    "run_to_failure",
    "save",
    "train",
]
