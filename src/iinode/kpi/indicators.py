"""ISO 22400-2 KPIs computed from :class:`~iinode.kpi.elements.Elements` (pure).

Formulas, by their ISO 22400-2 names (element symbols in :mod:`iinode.kpi.elements`
and :mod:`iinode.kpi.time_model`):

=========================== ======================================= ==========
KPI                         formula                                 unit
=========================== ======================================= ==========
Availability                APT / PBT                               ratio
Effectiveness               PRI x PQ / APT                          ratio
Quality ratio               GQ / PQ                                 ratio
OEE index                   Availability x Effectiveness x QR       ratio
Utilisation efficiency      APT / AUBT                              ratio
NEE index                   AUPT / PBT x Effectiveness x QR         ratio
Throughput rate             PQ / AOET                               1/s
Production process ratio    APT / AOET                              ratio
Scrap ratio                 SQ / PQ                                 ratio
Rework ratio                RQ / PQ                                 ratio
First pass yield            GP / IP = (PQ - SQ - RQ) / PQ           ratio
Allocation ratio            AUBT / AOET                             ratio
Allocation efficiency       AUBT / PBT                              ratio
Equipment load ratio        PQ / EPC, EPC = PBT / PRI               ratio
Setup rate                  ASUT / AUPT                             ratio
Technical efficiency        APT / (APT + ADET)                      ratio
Finished goods ratio        GQ / CM                                 ratio
Energy per good unit        energy / GQ                             kWh
MTBF                        (APT + ASUT) / FE                       s
MTTR                        TTR / FE                                s
=========================== ======================================= ==========

Documented interpretations: NEE follows the published formula AUPT / PBT x E x QR
(setup is not a loss); first pass yield counts every produced part as inspected
and GQ as the parts good at their first pass, so it equals the quality ratio
unless a plant counts reworked parts into GQ; equipment load ratio takes the
equipment production capacity as what PRI allows in the planned busy time;
MTBF uses the operating time (production and setup, no delays) of the period
per failure event, and MTTR the time spent ``down`` per failure event.

A ratio whose denominator is zero (no planned time, nothing produced, no
failure) is ``None``, never an error; so is one whose input is unknown (no PRI,
no energy meter, no consumed-material counter).

Unknown state time: every counted part is in PQ, but time with no known state
is in no time element, so parts made in it would inflate PRI x PQ / APT.  When
a period has unknown time (``unknown_us`` > 0), effectiveness, and with it OEE,
NEE and the equipment load ratio, is ``None`` if the unknown time exceeds the
known planned busy time (PBT) or the ratio would exceed 1; the period's issues
say which time was unknown.  A ratio above 1 is never made of missing time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from iinode.kpi.elements import US, Elements


def _ratio(numerator: float | None, denominator: float) -> float | None:
    return None if numerator is None or denominator == 0 else numerator / denominator


def availability(e: Elements) -> float | None:
    """APT / PBT."""
    return _ratio(e.apt_us, e.pbt_us)


def _unknown_spoils(e: Elements, value: float | None) -> bool:
    """Whether unknown state time makes a PRI x PQ ratio no figure (module docstring)."""
    return e.unknown_us > 0 and value is not None and (value > 1 or e.unknown_us > e.pbt_us)


def effectiveness(e: Elements) -> float | None:
    """PRI x PQ / APT (the sum of PRI x PQ over the parts of ``e``); ``None`` when unknown
    state time dominates or would make it exceed 1."""
    value = _ratio(e.ideal_s, e.apt_us / US)
    return None if _unknown_spoils(e, value) else value


def quality_ratio(e: Elements) -> float | None:
    """GQ / PQ."""
    return _ratio(e.gq, e.pq)


def _product(*factors: float | None) -> float | None:
    out = 1.0
    for f in factors:
        if f is None:
            return None
        out *= f
    return out


def oee_index(e: Elements) -> float | None:
    """Availability x Effectiveness x Quality ratio."""
    return _product(availability(e), effectiveness(e), quality_ratio(e))


def utilisation_efficiency(e: Elements) -> float | None:
    """APT / AUBT."""
    return _ratio(e.apt_us, e.aubt_us)


def nee_index(e: Elements) -> float | None:
    """AUPT / PBT x Effectiveness x Quality ratio."""
    return _product(_ratio(e.aupt_us, e.pbt_us), effectiveness(e), quality_ratio(e))


def throughput_rate(e: Elements) -> float | None:
    """PQ / AOET, parts per second."""
    return _ratio(e.pq, e.aoet_us / US)


def production_process_ratio(e: Elements) -> float | None:
    """APT / AOET."""
    return _ratio(e.apt_us, e.aoet_us)


def scrap_ratio(e: Elements) -> float | None:
    """SQ / PQ."""
    return _ratio(e.sq, e.pq)


def rework_ratio(e: Elements) -> float | None:
    """RQ / PQ."""
    return _ratio(e.rq, e.pq)


def first_pass_yield(e: Elements) -> float | None:
    """GP / IP = (PQ - SQ - RQ) / PQ."""
    return _ratio(e.pq - e.sq - e.rq, e.pq)


def allocation_ratio(e: Elements) -> float | None:
    """AUBT / AOET."""
    return _ratio(e.aubt_us, e.aoet_us)


def allocation_efficiency(e: Elements) -> float | None:
    """AUBT / PBT."""
    return _ratio(e.aubt_us, e.pbt_us)


def equipment_load_ratio(e: Elements) -> float | None:
    """PQ / EPC with EPC = PBT / PRI, i.e. PRI x PQ / PBT (``None`` as effectiveness is
    when unknown state time dominates or would make it exceed 1)."""
    value = _ratio(e.ideal_s, e.pbt_us / US)
    return None if _unknown_spoils(e, value) else value


def setup_rate(e: Elements) -> float | None:
    """ASUT / AUPT."""
    return _ratio(e.asut_us, e.aupt_us)


def technical_efficiency(e: Elements) -> float | None:
    """APT / (APT + ADET)."""
    return _ratio(e.apt_us, e.apt_us + e.adet_us)


def finished_goods_ratio(e: Elements) -> float | None:
    """GQ / CM."""
    return None if e.cm is None else _ratio(e.gq, e.cm)


def energy_per_good_unit(e: Elements) -> float | None:
    """Energy / GQ, kWh per good part."""
    return _ratio(e.energy_kwh, e.gq)


def mtbf_s(e: Elements) -> float | None:
    """(APT + ASUT) / FE, seconds of operation per failure."""
    return _ratio(e.aupt_us / US, e.failures)


def mttr_s(e: Elements) -> float | None:
    """TTR / FE, seconds down per failure."""
    return _ratio(e.ttr_us / US, e.failures)


@dataclass(frozen=True, slots=True)
class Kpis:
    """Every KPI of one set of elements; ``complete`` and ``issues`` come from them."""

    availability: float | None
    effectiveness: float | None
    quality_ratio: float | None
    oee: float | None
    utilisation_efficiency: float | None
    nee: float | None
    throughput_rate: float | None
    production_process_ratio: float | None
    scrap_ratio: float | None
    rework_ratio: float | None
    first_pass_yield: float | None
    allocation_ratio: float | None
    allocation_efficiency: float | None
    equipment_load_ratio: float | None
    setup_rate: float | None
    technical_efficiency: float | None
    finished_goods_ratio: float | None
    energy_per_good_kwh: float | None
    mtbf_s: float | None
    mttr_s: float | None
    complete: bool
    issues: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["issues"] = list(self.issues)
        return out


def compute(e: Elements) -> Kpis:
    """Every KPI of ``e``."""
    return Kpis(
        availability(e),
        effectiveness(e),
        quality_ratio(e),
        oee_index(e),
        utilisation_efficiency(e),
        nee_index(e),
        throughput_rate(e),
        production_process_ratio(e),
        scrap_ratio(e),
        rework_ratio(e),
        first_pass_yield(e),
        allocation_ratio(e),
        allocation_efficiency(e),
        equipment_load_ratio(e),
        setup_rate(e),
        technical_efficiency(e),
        finished_goods_ratio(e),
        energy_per_good_unit(e),
        mtbf_s(e),
        mttr_s(e),
        e.complete,
        e.issues,
    )


__all__ = [
    "Kpis",
    "allocation_efficiency",
    "allocation_ratio",
    "availability",
    "compute",
    "effectiveness",
    "energy_per_good_unit",
    "equipment_load_ratio",
    "finished_goods_ratio",
    "first_pass_yield",
    "mtbf_s",
    "mttr_s",
    "nee_index",
    "oee_index",
    "production_process_ratio",
    "quality_ratio",
    "rework_ratio",
    "scrap_ratio",
    "setup_rate",
    "technical_efficiency",
    "throughput_rate",
    "utilisation_efficiency",
]
