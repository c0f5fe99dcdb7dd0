"""One machine's readings in, its KPI elements per period atom out (pure, no I/O).

The same :class:`MachineTracker` serves both ways KPIs are computed:

* streaming (:class:`iinode.kpi.stream.KpiStream`): readings are fed as they
  arrive (after a short reorder allowance) and shift windows fill live;
* batch: the readings of any period, read back from the store in the same
  order (time, then tag, then value), are fed to a fresh tracker.

Fed the same readings, both give identical elements.  The tracker books each
state's time to its element (:mod:`iinode.kpi.time_model`), split exactly at
the grid's cuts (:mod:`iinode.kpi.periods`), and each counter increase to the
atom of the reading that shows it.

Bad input never gives a silent wrong number.  An issue (text, kept with the
atom's elements; the atom is then incomplete) is recorded for:

* state time nobody reported: after ``max_hold_us`` without a new state sample,
  before the first sample, after a bad-quality or unknown state;
* a counter that went down: a rollover at 2^16, 2^32 or 2^64 (from the top
  tenth to the bottom tenth) is counted exactly and is no issue; any other drop
  is a reset, its increase since the previous reading is lost;
* a counter's first reading with no earlier one within ``max_gap_us`` (unless
  it reads 0): its increase is unknown;
* two readings of one tag at the same instant with different values;
* a reading that arrived too late to be used (streaming only: recomputing the
  period from the store then gives the complete figure).

An identical duplicate reading is dropped silently; readings of bad quality
are not used (a bad state reading makes the state unknown).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from iinode.errors import ValueInvalid
from iinode.kpi.elements import Elements
from iinode.kpi.periods import PeriodGrid, iso
from iinode.kpi.time_model import STATE_ELEMENT, UnitState

STATE = "state"
CYCLE = "cycle_time"
#: Cumulative counters and the element their increase books to.
COUNTERS: Mapping[str, str] = {
    "good_count": "gq",
    "scrap_count": "sq",
    "rework_count": "rq",
    "consumed_count": "cm",
    "energy": "energy",
}
#: Every tag KPIs are computed from.
KPI_TAGS = (STATE, CYCLE, *COUNTERS)
_MODULI = (1 << 16, 1 << 32, 1 << 64)

Value = bool | int | float | str | None


def reading_key(time_us: int, tag: str, value: Value) -> tuple[int, str, int, float, str]:
    """The order readings are fed in, the same for the stream and the store: by time,
    then tag, then value (so that even conflicting duplicates come in one order)."""
    kind = type(value)
    if (kind is float or kind is int) and value == value:  # not NaN
        return (time_us, tag, 1, value, "")  # type: ignore[return-value]
    if kind is str:
        return (time_us, tag, 2, 0, value)  # type: ignore[return-value]
    return (time_us, tag, 0, 0, repr(value))


def sample_key(sample: tuple[int, str, Value, bool]) -> tuple[int, str, int, float, str]:
    """:func:`reading_key` of a ``(time_us, tag, value, good)`` sample."""
    return reading_key(sample[0], sample[1], sample[2])


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _positive(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


class _Atom:
    __slots__ = (
        "adet", "adot", "apt", "asut", "cm", "energy", "energy_running", "failures", "gq",
        "issues", "min_cycle", "pdot", "rq", "sq", "ttr", "unknown",
    )  # fmt: skip

    def __init__(self) -> None:
        self.apt = self.asut = self.adet = self.adot = self.pdot = self.unknown = 0
        self.ttr = self.failures = 0
        self.gq = self.sq = self.rq = self.cm = 0
        self.energy = self.energy_running = 0.0
        self.min_cycle = math.inf
        self.issues: list[str] = []

    def merged(self, other: _Atom | None) -> _Atom:
        if other is None:
            return self
        out = _Atom()
        for name in _Atom.__slots__:
            if name == "issues":
                out.issues = self.issues + other.issues
            elif name == "min_cycle":
                out.min_cycle = min(self.min_cycle, other.min_cycle)
            else:
                setattr(out, name, getattr(self, name) + getattr(other, name))
        return out


def new_atom() -> _Atom:
    """An empty atom (for derivations that fill one, e.g. the columnar batch path)."""
    return _Atom()


def atom_elements(atom: _Atom, settings: TrackerSettings) -> Elements:
    """The elements of one atom's running sums (the one place they are built)."""
    meters = settings.meters
    pq = atom.gq + atom.sq + atom.rq
    pri = settings.pri_s
    if pri is None and math.isfinite(atom.min_cycle):
        pri = atom.min_cycle
    ideal = 0.0 if pq == 0 else None if pri is None else pri * pq
    energy = "energy" in meters
    return Elements(
        atom.apt, atom.asut, atom.adet, atom.adot, atom.pdot, atom.unknown,
        atom.gq, atom.sq, atom.rq,
        atom.cm if "consumed_count" in meters else None,
        atom.energy if energy else None,
        atom.energy_running if energy else None,
        ideal, atom.failures, atom.ttr, tuple(dict.fromkeys(atom.issues)),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """``max_hold_us``: the longest a state sample holds (24 h: sources report the state
    by exception, e.g. Sparkplug B sends only changes, so a machine running all shift may
    have its only state sample hours before; a source that goes silent is marked by a
    bad-quality reading); ``max_gap_us``: the longest two
    readings of one counter may be apart and still give an increase; ``pri_s``: the
    planned runtime per item (else the shortest ``cycle_time`` of the atom);
    ``meters``: the counters the machine has (a missing energy meter gives no energy
    KPIs rather than zero energy)."""

    max_hold_us: int = 86_400_000_000
    max_gap_us: int = 900_000_000
    pri_s: float | None = None
    meters: frozenset[str] = frozenset({"good_count", "scrap_count", "energy"})

    def __post_init__(self) -> None:
        if self.max_hold_us <= 0 or self.max_gap_us <= 0:
            raise ValueInvalid("max_hold_us and max_gap_us must be positive")
        pri = self.pri_s
        if pri is not None and not (math.isfinite(pri) and pri > 0):
            raise ValueInvalid(f"the planned runtime per item must be positive seconds: {pri!r}")

    @property
    def lookback_us(self) -> int:
        """How far before a period the readings it depends on may lie."""
        return max(self.max_hold_us, self.max_gap_us)

    @property
    def full_us(self) -> int:
        """Carry-in: readings from ``max_gap_us`` before a period on are read in full;
        before that, back to :attr:`lookback_us`, only each tag's last reading (the
        state in effect, a counter's previous value) is needed, and gives the same
        elements as all of them."""
        return self.max_gap_us


class MachineTracker:
    """Elements of one machine per atom of ``grid`` (optionally cut at ``cuts`` too).

    ``origin_us``: from when the state should be known (time before the first
    state sample after it is unknown); by default the atom of the first reading.
    """

    def __init__(
        self,
        grid: PeriodGrid,
        settings: TrackerSettings | None = None,
        *,
        origin_us: int | None = None,
        cuts: Iterable[int] = (),
    ) -> None:
        self.grid = grid
        self.settings = settings or TrackerSettings()
        self.origin_us = origin_us
        self.cuts = tuple(sorted(set(cuts)))
        self._max_gap = self.settings.max_gap_us
        self.atoms: dict[int, _Atom] = {}
        self._span: tuple[int, int] = (0, 0)  # the atom last booked to
        self._state: UnitState | None = None
        self._state_t: int | None = None
        self._counters: dict[str, tuple[int, float]] = {}
        self._last: tuple[int, str, Value] | None = None
        self.fed = 0

    # -- atoms ---------------------------------------------------------------------

    def _atom_span(self, t: int) -> tuple[int, int]:
        start, end = self._span
        if start <= t < end:
            return self._span
        start, end = self.grid.atom_start(t), self.grid.next_cut(t)
        for c in self.cuts:
            if start < c <= t:
                start = c
            elif t < c < end:
                end = c
        self._span = (start, end)
        return self._span

    def _atom(self, t: int, into: dict[int, _Atom]) -> _Atom:
        start = self._atom_span(t)[0]
        atom = into.get(start)
        if atom is None:
            atom = into[start] = _Atom()
        return atom

    def _book_time(self, what: str, a: int, b: int, into: dict[int, _Atom]) -> None:
        while a < b:
            end = min(b, self._atom_span(a)[1])
            atom = self._atom(a, into)
            setattr(atom, what, getattr(atom, what) + (end - a))
            if what == "adet" and self._state is UnitState.DOWN:
                atom.ttr += end - a
            if what == "unknown":
                atom.issues.append(f"no state known from {iso(a)} to {iso(end)}")
            a = end

    def _issue(self, t: int, text: str) -> None:
        self._atom(t, self.atoms).issues.append(text)

    # -- state -----------------------------------------------------------------------

    def _hold(self, t: int, into: dict[int, _Atom]) -> None:
        """Book the time from the last state sample up to ``t``."""
        since = self._state_t
        if since is None:
            if self.origin_us is not None:
                self._book_time("unknown", self.origin_us, t, into)
            return
        state = self._state
        if state is None:
            self._book_time("unknown", since, t, into)
            return
        held = min(t, since + self.settings.max_hold_us)
        element = STATE_ELEMENT[state]
        if element is not None:
            self._book_time(element.value, since, held, into)
        self._book_time("unknown", held, t, into)

    def _feed_state(self, t: int, value: Value, good: bool) -> None:
        self._hold(t, self.atoms)
        state: UnitState | None = None
        if good:
            try:
                state = UnitState(value) if isinstance(value, str) else None
            except ValueError:
                state = None
            if state is None:
                self._issue(t, f"invalid state {value!r} at {iso(t)}")
        in_effect = self._state_t is not None and t - self._state_t <= self.settings.max_hold_us
        if state is UnitState.DOWN and in_effect and self._state not in (UnitState.DOWN, None):
            self._atom(t, self.atoms).failures += 1
        self._state, self._state_t = state, t

    # -- counters --------------------------------------------------------------------

    def _feed_counter(self, t: int, tag: str, value: Value) -> None:
        kind = type(value)
        if not ((kind is int or kind is float) and 0 <= value < math.inf):  # type: ignore[operator]
            self._issue(t, f"{tag}: invalid reading {value!r} at {iso(t)}")
            return
        v = cast(float, value)  # an int stays exact
        previous = self._counters.get(tag)
        self._counters[tag] = (t, v)
        if previous is None or t - previous[0] > self._max_gap:
            if v != 0:
                self._issue(
                    t, f"{tag}: no earlier reading within {self.settings.max_gap_us / 1e6:g} s "
                    f"of {iso(t)}; its increase up to {_num(v)} is not counted",
                )  # fmt: skip
            return
        last = previous[1]
        if v >= last:
            increase = v - last
        else:
            modulus = next((m for m in _MODULI if last < m), None)
            if isinstance(value, int) and modulus and last >= 0.9 * modulus and v < 0.1 * modulus:
                increase = modulus - last + v
            else:
                increase = v
                self._issue(
                    t, f"{tag}: dropped from {_num(last)} to {_num(v)} at {iso(t)} (a reset); "
                    "the increase before it is not counted",
                )  # fmt: skip
        if increase == 0:
            return
        atom = self._atom(t, self.atoms)
        what = COUNTERS[tag]
        if what == "energy":
            atom.energy += increase
            if self._state is UnitState.RUNNING and self._held(t):
                atom.energy_running += increase
        else:
            setattr(atom, what, getattr(atom, what) + increase)

    def _held(self, t: int) -> bool:
        return self._state_t is not None and t - self._state_t <= self.settings.max_hold_us

    # -- feeding -----------------------------------------------------------------------

    def feed(self, time_us: int, tag: str, value: Value, good: bool = True) -> None:
        """One reading; readings come in :func:`reading_key` order."""
        last = self._last
        if last is not None and last[0] == time_us and last[1] == tag:
            if last[2] == value and type(last[2]) is type(value):
                return  # an identical duplicate
            self._issue(time_us, f"{tag}: conflicting readings at {iso(time_us)}")
        self._last = (time_us, tag, value)
        self.fed += 1
        if self.origin_us is None:
            self.origin_us = self._atom_span(time_us)[0]
        if tag == STATE:
            self._feed_state(time_us, value, good)
        elif not good:
            return
        elif tag in COUNTERS:
            self._feed_counter(time_us, tag, value)
        elif tag == CYCLE and _positive(value):
            atom = self._atom(time_us, self.atoms)
            atom.min_cycle = min(atom.min_cycle, float(value))  # type: ignore[arg-type]

    def late(self, time_us: int, tag: str) -> None:
        """A reading that came after later ones were used: not used, its atom marked."""
        self._issue(time_us, f"{tag}: reading at {iso(time_us)} arrived too late to be used")

    # -- results -------------------------------------------------------------------------

    def _elements(self, atom: _Atom) -> Elements:
        return atom_elements(atom, self.settings)

    def elements(self, start_us: int, end_us: int) -> dict[int, Elements]:
        """Elements per atom in ``[start_us, end_us)`` with the state held up to ``end_us``
        (the tracker itself is not changed: it may be fed on)."""
        tail: dict[int, _Atom] = {}
        if self.fed:
            self._hold(end_us, tail)
        out: dict[int, Elements] = {}
        for start in sorted(set(self.atoms) | set(tail)):
            if start_us <= start < end_us:
                atom = self.atoms.get(start, _Atom()).merged(tail.get(start))
                out[start] = self._elements(atom)
        return out

    def forget_before(self, t_us: int) -> None:
        """Drop atoms that start before ``t_us`` (a stream's retention)."""
        for start in [s for s in self.atoms if s < t_us]:
            del self.atoms[start]


__all__ = [
    "COUNTERS",
    "CYCLE",
    "KPI_TAGS",
    "STATE",
    "MachineTracker",
    "TrackerSettings",
    "atom_elements",
    "new_atom",
    "reading_key",
    "sample_key",
]
