"""ISO 22400-2 KPI elements of one work unit (or a sum of them) over one period (pure).

Elements are *additive*: the elements of a line, a plant, a day or a week are
the sums of its machines' and shifts' elements, and every KPI of the sum is
computed from the summed elements (:mod:`iinode.kpi.indicators`), never by
averaging ratios.  Times are integer microseconds, so sums are exact and do not
depend on the order they are taken in.

Quantity elements (from cumulative counters, see :mod:`iinode.kpi.tracker`):

* GQ, good quantity (``good_count``): parts that met the quality requirements
  at their first pass;
* SQ, scrap quantity (``scrap_count``);
* RQ, rework quantity (``rework_count``): parts that failed but can be reworked;
* PQ, produced quantity = GQ + SQ + RQ (a documented interpretation: each
  produced part is counted once, by its first-pass outcome);
* CM, consumed material (``consumed_count``, in parts' worth of material);
* energy (``energy``, kWh) and the part of it drawn while ``running``.

``ideal_s`` is the sum of PRI x PQ (planned runtime per item times produced
quantity) over the machines and shifts: the time the quantity would have taken
at the planned rate, which keeps effectiveness additive across machines with
different cycle times.  ``None`` means some produced quantity had no PRI.

``issues`` say why the elements may be incomplete (unknown state time, counter
resets, gaps, late or conflicting readings); ``complete`` is false when any.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

US = 1_000_000


def _add_opt(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


@dataclass(frozen=True, slots=True)
class Elements:
    apt_us: int = 0  # APT, actual production time
    asut_us: int = 0  # ASUT, actual setup time
    adet_us: int = 0  # ADET, actual unit delay time
    adot_us: int = 0  # ADOT, actual unit down time
    pdot_us: int = 0  # PDOT, planned downtime
    unknown_us: int = 0  # no state known (not part of any element)
    gq: float = 0  # GQ
    sq: float = 0  # SQ
    rq: float = 0  # RQ
    cm: float | None = None  # CM, consumed material
    energy_kwh: float | None = None
    energy_running_kwh: float | None = None
    ideal_s: float | None = 0.0  # sum of PRI x PQ
    failures: int = 0  # FE, failure events (entries into ``down``)
    ttr_us: int = 0  # time to restoration: time ``down`` after a failure
    issues: tuple[str, ...] = ()

    # -- derived elements --------------------------------------------------------

    @property
    def pq(self) -> float:
        """PQ, produced quantity = GQ + SQ + RQ."""
        return self.gq + self.sq + self.rq

    @property
    def pbt_us(self) -> int:
        """PBT, planned busy time = APT + ASUT + ADET + ADOT."""
        return self.apt_us + self.asut_us + self.adet_us + self.adot_us

    @property
    def pot_us(self) -> int:
        """POT, planned operation time = PBT + PDOT."""
        return self.pbt_us + self.pdot_us

    @property
    def aupt_us(self) -> int:
        """AUPT, actual unit processing time = APT + ASUT."""
        return self.apt_us + self.asut_us

    @property
    def aubt_us(self) -> int:
        """AUBT, actual unit busy time = AUPT + ADET."""
        return self.aupt_us + self.adet_us

    @property
    def aoet_us(self) -> int:
        """AOET, actual order execution time, taken as PBT (orders back to back)."""
        return self.pbt_us

    @property
    def complete(self) -> bool:
        return not self.issues and self.unknown_us == 0

    def __add__(self, other: Elements) -> Elements:
        if not isinstance(other, Elements):
            return NotImplemented
        return Elements(
            self.apt_us + other.apt_us,
            self.asut_us + other.asut_us,
            self.adet_us + other.adet_us,
            self.adot_us + other.adot_us,
            self.pdot_us + other.pdot_us,
            self.unknown_us + other.unknown_us,
            self.gq + other.gq,
            self.sq + other.sq,
            self.rq + other.rq,
            _add_opt(self.cm, other.cm),
            _add_opt(self.energy_kwh, other.energy_kwh),
            _add_opt(self.energy_running_kwh, other.energy_running_kwh),
            _add_opt(self.ideal_s, other.ideal_s),
            self.failures + other.failures,
            self.ttr_us + other.ttr_us,
            _merge_issues(self.issues, other.issues),
        )

    def to_json(self) -> dict[str, object]:
        """Times in seconds, with the derived elements."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_us"):
                out[f.name[:-3] + "_s"] = value / US
            elif f.name == "issues":
                out[f.name] = list(value)
            else:
                out[f.name] = value
        out.update(
            pq=self.pq,
            pbt_s=self.pbt_us / US,
            pot_s=self.pot_us / US,
            aupt_s=self.aupt_us / US,
            aubt_s=self.aubt_us / US,
            aoet_s=self.aoet_us / US,
            complete=self.complete,
        )
        return out


#: At most this many distinct issues are kept in a sum (the rest are counted).
MAX_ISSUES = 20


def _merge_issues(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    if not b:
        return a
    if not a:
        return b
    merged = list(dict.fromkeys(a + b))
    if len(merged) > MAX_ISSUES:
        extra = len(merged) - MAX_ISSUES + 1
        merged = [*merged[: MAX_ISSUES - 1], f"... and {extra} more issues"]
    return tuple(merged)


def total(parts: Iterable[Elements]) -> Elements:
    """The sum of ``parts`` (the empty sum has no time, no quantity and no energy meter)."""
    out: Elements | None = None
    for part in parts:
        out = part if out is None else out + part
    return out if out is not None else Elements()


__all__ = ["US", "Elements", "total"]
