"""Batch KPI elements of a whole plant from one columnar scan (numpy).

The batch path for many machines: :meth:`ParquetStore.scan_tags` reads every
KPI tag of every machine of the period (and its look-back) in one DuckDB scan,
the rows are ordered by machine, tag and time with a stable integer sort, and
each machine's elements per atom are derived with array arithmetic instead of
feeding the readings one by one to a :class:`~iinode.kpi.tracker.MachineTracker`.

The derivation is the tracker's, column by column, and gives the same
:class:`~iinode.kpi.Elements` (tested on messy data against the tracker):

* state time: each state sample holds until the next, at most ``max_hold_us``;
  booked time per element and atom is a difference of a cumulative booking
  function evaluated at the atom cuts; unknown time is split into its atoms
  and marked;
* counters: increases between consecutive readings of one tag, rollovers at
  2^16 and 2^32, resets and gaps (``max_gap_us``) marked; float sums are taken
  in time order within each atom (``numpy.cumsum``), so they are bit-identical
  to the tracker's running sums;
* energy drawn while running: the state in effect just before each reading;
* failures: entries into ``down`` from another state still in effect;
* identical duplicate readings are dropped;
* carry-in: readings are scanned in full from ``full_us`` before the period; before
  that, back to ``lookback_us``, only each tag's last readings (the state in effect,
  a counter's previous value), which give the same elements as all of them.

A machine whose readings the fast path does not model exactly (a reading of
bad or uncertain quality, an unknown state text, a counter that is not a
finite non-negative number or exceeds 2^53, conflicting readings at one
instant) is computed by the tracker itself from the store
(:func:`~iinode.telemetry.kpi_window.machine_atoms`): never a different number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from iinode.kpi import KPI_TAGS, Elements, PeriodGrid, TrackerSettings, UnitState
from iinode.kpi.periods import iso
from iinode.kpi.tracker import COUNTERS, CYCLE, STATE, atom_elements, new_atom
from iinode.kpi.tracker import _num as num_text
from iinode.telemetry.store import ParquetStore

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
BOOL = npt.NDArray[np.bool_]

_STATES = tuple(UnitState)
_SLOTS = ("apt", "asut", "adet", "adot", "pdot", "unknown")
_UNKNOWN = 5
_NONE = 6  # idle: no element
_SLOT_OF_STATE = np.array(
    [
        {
            UnitState.RUNNING: 0,
            UnitState.SETUP: 1,
            UnitState.DOWN: 2,
            UnitState.WAITING: 3,
            UnitState.MAINTENANCE: 4,
            UnitState.IDLE: _NONE,
        }[s]
        for s in _STATES
    ],
    np.int64,
)
_RUNNING = _STATES.index(UnitState.RUNNING)
_DOWN = _STATES.index(UnitState.DOWN)
_EXACT = float(1 << 53)
_TAGS = tuple(KPI_TAGS)


def atom_cuts(grid: PeriodGrid, low_us: int, start_us: int, end_us: int) -> I64:
    """Every atom boundary from the atom of ``low_us`` to ``end_us`` (the grid's cuts and
    ``start_us``, ``end_us``)."""
    cuts = {start_us, end_us}
    c = grid.atom_start(low_us)
    while c < end_us:
        cuts.add(c)
        c = grid.next_cut(c)
    return np.array(sorted(cuts), np.int64)


class _Rows:
    """One machine's rows of one tag, in time order."""

    __slots__ = ("is_int", "t", "v")

    def __init__(self, t: I64, v: F64, is_int: BOOL) -> None:
        self.t, self.v, self.is_int = t, v, is_int


def _dedupe(t: I64, v: F64, code: I64, flags: I64) -> tuple[npt.NDArray[np.intp], bool]:
    """Indices kept after dropping identical duplicates; whether a conflict exists
    (``flags``: is_int, is_bool and has_text as bits; ``code``: the state's position)."""
    if len(t) < 2:
        return np.arange(len(t)), False
    same_t = t[1:] == t[:-1]
    if not same_t.any():
        return np.arange(len(t)), False
    same_v = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
    same = same_v & (code[1:] == code[:-1]) & (flags[1:] == flags[:-1])
    if (same_t & ~same).any():
        return np.arange(len(t)), True
    keep = np.ones(len(t), np.bool_)
    keep[1:] = ~same_t
    return np.flatnonzero(keep), False


class _Machine:
    """The derivation for one machine (see the module docstring)."""

    def __init__(self, cuts: I64, start_us: int, end_us: int, settings: TrackerSettings) -> None:
        self.cuts = cuts
        self.start_us, self.end_us = start_us, end_us
        self.settings = settings
        n = len(cuts) - 1
        self.booked = np.zeros((n, 6), np.int64)
        self.present = np.zeros(n, np.bool_)
        self.failures = np.zeros(n, np.int64)
        self.sums: dict[str, dict[int, int | float]] = {}
        self.energy_running: dict[int, float] = {}
        self.min_cycle: dict[int, float] = {}
        #: ``(time, tag, order, atom, text)``: the tracker's order of issues in an atom.
        self.issues: list[tuple[float, str, int, int, str]] = []

    def atom_of(self, t: I64) -> I64:
        return np.searchsorted(self.cuts, t, "right").astype(np.int64) - 1

    # -- state time ----------------------------------------------------------------

    def state(self, s: I64, code: I64, fed: bool) -> None:
        start, end, hold = self.start_us, self.end_us, self.settings.max_hold_us
        if len(s) == 0:
            if fed:
                self._segments(np.array([start]), np.array([end]), np.array([_UNKNOWN]),
                               np.array([math.inf]))  # fmt: skip
            return
        nxt = np.append(s[1:], end)
        held = np.minimum(nxt, s + hold)
        emit_next = np.append(s[1:].astype(np.float64), math.inf)
        slots = _SLOT_OF_STATE[code]
        a = np.empty(2 * len(s) + 1, np.int64)
        b = np.empty_like(a)
        slot = np.empty_like(a)
        emit = np.empty(len(a), np.float64)
        a[0], b[0], slot[0], emit[0] = start, max(start, s[0]), _UNKNOWN, float(s[0])
        a[1::2], b[1::2], slot[1::2], emit[1::2] = s, held, slots, emit_next
        a[2::2], b[2::2], slot[2::2], emit[2::2] = held, nxt, _UNKNOWN, emit_next
        self._segments(a, b, slot, emit)
        if len(s) > 1:
            enters = (code[1:] == _DOWN) & (code[:-1] != _DOWN) & (s[1:] - s[:-1] <= hold)
            if enters.any():
                np.add.at(self.failures, self.atom_of(s[1:][enters]), 1)

    def _segments(self, a: I64, b: I64, slot: I64, emit: F64) -> None:
        """Book consecutive segments ``[a, b)`` (``b >= a``; ``a`` ascending, except the
        leading one, which may be empty) to their slots, split at the atom cuts."""
        ok = b > a
        a, b, slot, emit = a[ok], b[ok], slot[ok], emit[ok]
        if len(a) == 0:
            return
        order = np.argsort(a, kind="stable")
        a, b, slot, emit = a[order], b[order], slot[order], emit[order]
        length = b - a
        booked = slot != _NONE
        cum = np.zeros((len(a) + 1, 6), np.int64)
        rows = np.flatnonzero(booked)
        per = np.zeros((len(a), 6), np.int64)
        per[rows, slot[rows]] = length[rows]
        np.cumsum(per, axis=0, out=cum[1:])
        cuts = self.cuts
        i = np.searchsorted(a, cuts, "right") - 1
        inside = i >= 0
        ii = np.where(inside, i, 0)
        partial = np.clip(cuts - a[ii], 0, length[ii]) * inside
        f = cum[np.where(inside, i, 0)] * inside[:, None]
        sel = booked[ii] & inside
        f[np.flatnonzero(sel), slot[ii][sel]] += partial[sel]
        got = np.diff(f, axis=0)
        self.booked += got
        self.present |= got.any(axis=1)
        for k in np.flatnonzero(slot == _UNKNOWN):
            lo, hi = int(a[k]), int(b[k])
            first = int(np.searchsorted(cuts, lo, "right")) - 1
            for atom in range(first, len(cuts) - 1):
                piece_a, piece_b = max(lo, int(cuts[atom])), min(hi, int(cuts[atom + 1]))
                if piece_a >= hi:
                    break
                text = f"no state known from {iso(piece_a)} to {iso(piece_b)}"
                self.issues.append((float(emit[k]), STATE, int(k), atom, text))

    # -- counters --------------------------------------------------------------------

    def counter(self, tag: str, rows: _Rows, running: BOOL | None) -> None:
        t, v, is_int = rows.t, rows.v, rows.is_int
        if len(t) == 0:
            return
        gap = self.settings.max_gap_us
        opening = np.ones(len(t), np.bool_)
        opening[1:] = t[1:] - t[:-1] > gap
        for k in np.flatnonzero(opening & (v != 0)):
            value: float = int(v[k]) if is_int[k] else float(v[k])
            self._issue(
                int(t[k]), tag, f"{tag}: no earlier reading within {gap / 1e6:g} s of "
                f"{iso(int(t[k]))}; its increase up to {num_text(value)} is not counted",
            )  # fmt: skip
        last, cur = v[:-1], v[1:]
        last_int, cur_int = is_int[:-1], is_int[1:]
        up = cur >= last
        modulus = np.where(last < 65536.0, 65536.0, 4294967296.0)
        roll = ~up & cur_int & (last >= 0.9 * modulus) & (cur < 0.1 * modulus)
        reset = ~up & ~roll
        inc = np.where(up, cur - last, np.where(roll, (modulus - last) + cur, cur))
        inc_int = np.where(reset, cur_int, cur_int & last_int)
        counted = ~opening[1:]
        for k in np.flatnonzero(reset & counted):
            before = int(last[k]) if last_int[k] else float(last[k])
            after = int(cur[k]) if cur_int[k] else float(cur[k])
            self._issue(
                int(t[k + 1]), tag, f"{tag}: dropped from {num_text(before)} to "
                f"{num_text(after)} at {iso(int(t[k + 1]))} (a reset); the increase "
                "before it is not counted",
            )  # fmt: skip
        use = counted & (inc != 0)
        times = t[1:][use]
        if len(times) == 0:
            return
        inc, inc_int = inc[use], inc_int[use]
        atoms = self.atom_of(times)
        self.present[atoms] = True
        what = COUNTERS[tag]
        sums = self.sums.setdefault(what, {})
        starts = np.flatnonzero(np.append(True, atoms[1:] != atoms[:-1]))
        ends = np.append(starts[1:], len(atoms))
        run = None if running is None or what != "energy" else running[1:][use]
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            atom = int(atoms[lo])
            seg = inc[lo:hi]
            if what == "energy":
                sums[atom] = float(np.cumsum(seg)[-1])
                assert run is not None
                self.energy_running[atom] = float(np.cumsum(np.where(run[lo:hi], seg, 0.0))[-1])
            elif inc_int[lo:hi].all():
                sums[atom] = int(seg.sum())
            else:
                sums[atom] = float(np.cumsum(seg)[-1])

    def _issue(self, t: int, tag: str, text: str) -> None:
        atom = int(self.atom_of(np.array([t]))[0])
        self.issues.append((float(t), tag, 0, atom, text))

    def cycle(self, rows: _Rows) -> None:
        positive = rows.v > 0
        if not positive.any():
            return
        atoms = self.atom_of(rows.t[positive])
        values = rows.v[positive]
        self.present[atoms] = True
        best = np.full(len(self.cuts) - 1, np.inf)
        np.minimum.at(best, atoms, values)
        for atom in np.unique(atoms).tolist():
            self.min_cycle[atom] = float(best[atom])

    # -- result ----------------------------------------------------------------------------

    def elements(self) -> dict[int, Elements]:
        issues: dict[int, list[str]] = {}
        for _, _, _, atom, text in sorted(self.issues, key=lambda i: i[:3]):
            issues.setdefault(atom, []).append(text)
        present = self.present | (self.failures > 0)
        for atom in issues:
            present[atom] = True
        out: dict[int, Elements] = {}
        cuts = self.cuts
        for atom in np.flatnonzero(present).tolist():
            start = int(cuts[atom])
            if not self.start_us <= start < self.end_us:
                continue
            a = new_atom()
            for j, name in enumerate(_SLOTS):
                setattr(a, name, int(self.booked[atom, j]))
            a.ttr = a.adet
            a.failures = int(self.failures[atom])
            for what, sums in self.sums.items():
                if atom in sums:
                    setattr(a, what, sums[atom])
            if atom in self.energy_running:
                a.energy_running = self.energy_running[atom]
            a.min_cycle = self.min_cycle.get(atom, math.inf)
            a.issues = issues.get(atom, [])
            out[start] = atom_elements(a, self.settings)
        return out


def _column(table: pa.Table, name: str) -> npt.NDArray[np.generic]:
    out: npt.NDArray[np.generic] = table.column(name).to_numpy(zero_copy_only=False)
    return out


def scanned_atoms(
    table: pa.Table,
    count: int,
    grid: PeriodGrid,
    start_us: int,
    end_us: int,
    settings: Sequence[TrackerSettings],
) -> tuple[dict[int, dict[int, Elements]], list[int]]:
    """Elements per atom of each machine ``0 .. count-1`` of a :meth:`scan_tags` table (of
    the tags :data:`KPI_TAGS`, in that order, texts coded by :class:`UnitState` order); and
    the machines left to the tracker."""
    key = _column(table, "key").astype(np.int64)
    t = _column(table, "time_us").astype(np.int64)
    order = np.argsort(key.astype(np.uint16 if count * 8 < 65536 else np.uint32), kind="stable")
    ts, ks = t[order], key[order]
    if ((ts[1:] < ts[:-1]) & (ks[1:] == ks[:-1])).any():
        order = np.lexsort((t, key))
        ts, ks = t[order], key[order]
    value = _column(table, "value").astype(np.float64)[order]
    flags = _column(table, "flags").astype(np.int64)[order]
    is_int = (flags & 1).astype(np.bool_)
    code = _column(table, "text_code").astype(np.int64)[order]
    good = _column(table, "good").astype(np.bool_)[order]
    bounds = np.searchsorted(ks, np.arange(count * 8 + 1, dtype=np.int64))
    lookback = max((s.lookback_us for s in settings), default=0)
    cuts = atom_cuts(grid, start_us - lookback, start_us, end_us)
    out: dict[int, dict[int, Elements]] = {}
    fallback: list[int] = []
    state_codes = np.zeros(0, np.int64)
    for m in range(count):
        lo, hi = int(bounds[m * 8]), int(bounds[m * 8 + len(_TAGS)])
        if lo == hi:
            out[m] = {}
            continue
        if not good[lo:hi].all():
            fallback.append(m)
            continue
        calc = _Machine(cuts, start_us, end_us, settings[m])
        slices: dict[str, _Rows] = {}
        bad = False
        for j, name in enumerate(_TAGS):
            a, b = int(bounds[m * 8 + j]), int(bounds[m * 8 + j + 1])
            keep, conflict = _dedupe(ts[a:b], value[a:b], code[a:b], flags[a:b])
            if conflict:
                bad = True
                break
            idx = keep + a
            v = value[idx]
            if name == STATE:
                if (code[idx] < 0).any():
                    bad = True
                    break
            elif (flags[idx] & 6).any() or not np.isfinite(v).all() or (v < 0).any() or (
                    v >= _EXACT).any():  # fmt: skip
                bad = True  # a counter not a finite count, or a cycle time not a number
                break
            slices[name] = _Rows(ts[idx], v, is_int[idx])
            if name == STATE:
                state_codes = code[idx]
        if bad:
            fallback.append(m)
            continue
        s = slices[STATE].t
        calc.state(s, state_codes, fed=True)
        hold = settings[m].max_hold_us
        for name in COUNTERS:
            rows = slices[name]
            running = None
            if COUNTERS[name] == "energy":
                running = np.zeros(len(rows.t), np.bool_)
                if len(s):
                    prior = np.searchsorted(s, rows.t, "left") - 1
                    ok = prior >= 0
                    jj = np.where(ok, prior, 0)
                    running = ok & (state_codes[jj] == _RUNNING) & (rows.t - s[jj] <= hold)
            calc.counter(name, rows, running)
        calc.cycle(slices[CYCLE])
        out[m] = calc.elements()
    return out, fallback


def plant_atoms(
    store: ParquetStore,
    equipment: Sequence[str],
    start_us: int,
    end_us: int,
    grid: PeriodGrid,
    settings: Sequence[TrackerSettings],
    limit: int,
) -> tuple[dict[str, dict[int, Elements]], list[str]]:
    """Batch: every machine's (``equipment``: identifiers, ``settings`` in the same order)
    elements per atom of ``[start_us, end_us)`` from one scan per prefix (blocking); and the
    machines the caller must compute with the tracker."""
    out: dict[str, dict[int, Elements]] = {}
    fallback: list[str] = []
    by_prefix: dict[str, list[int]] = {}
    for i, e in enumerate(equipment):
        by_prefix.setdefault(e.partition("/")[0], []).append(i)
    for indices in by_prefix.values():
        ids = [equipment[i] for i in indices]
        own = [settings[i] for i in indices]
        low = start_us - max(s.lookback_us for s in own)
        full = start_us - max(s.full_us for s in own)
        texts = [s.value for s in _STATES]
        table = store.scan_tags(ids, _TAGS, full, end_us, limit, texts)
        if low < full:  # the carry-in: each tag's last readings before the full scan
            carried = store.scan_tags(ids, _TAGS, low, full, limit, texts, last_only=True)
            table = pa.concat_tables([carried, table])
        atoms, left = scanned_atoms(table, len(ids), grid, start_us, end_us, own)
        for m, elements in atoms.items():
            out[ids[m]] = elements
        fallback += [ids[m] for m in left]
    return out, fallback


__all__ = ["atom_cuts", "plant_atoms", "scanned_atoms"]
