"""The ISO 22400-2 time model: which machine state books time to which element (pure).

A work unit reports its state as samples; each sample's state holds until the
next one, at most ``max_hold`` (a longer silence is *unknown* time, which
marks the KPIs incomplete).  The states and the ISO 22400-2 time element each
one books to:

=============== ======================================================= =========
state           meaning                                                 element
=============== ======================================================= =========
``running``     producing (value-adding)                                APT
``setup``       preparing an order                                      ASUT
``down``        failure or other unplanned interruption of an order     ADET
``waiting``     available but no order to run (starved, blocked)        ADOT
``maintenance`` planned downtime (preventive maintenance)               PDOT
``idle``        outside the shift calendar: not planned to work         (none)
=============== ======================================================= =========

Derived elements (ISO 22400-2 names):

* PBT, planned busy time = APT + ASUT + ADET + ADOT (POT - PDOT);
* POT, planned operation time = PBT + PDOT;
* AUPT, actual unit processing time = APT + ASUT;
* AUBT, actual unit busy time = AUPT + ADET;
* AOET, actual order execution time = AUBT + ADOT = PBT.

Interpretations (the standard leaves the mapping from machine signals to
elements to the implementer; OPC 40001-1 annex C.2 proposes a similar one):
a failure interrupts the order being run, so ``down`` is unit delay time
(ADET: "malfunction-caused interrupts, minor stoppages"), while ADOT is time
the unit is available without an order.  Orders are taken to follow each other
through the planned busy time, so AOET (start to end of the orders, including
their queuing and transport time) is PBT.
"""

from __future__ import annotations

import enum

from iinode.errors import ValueInvalid


class UnitState(enum.StrEnum):
    RUNNING = "running"
    IDLE = "idle"
    SETUP = "setup"
    DOWN = "down"
    WAITING = "waiting"
    MAINTENANCE = "maintenance"


class TimeElement(enum.StrEnum):
    """The measured ISO 22400-2 time elements (the fields of ``Elements``)."""

    APT = "apt"
    ASUT = "asut"
    ADET = "adet"
    ADOT = "adot"
    PDOT = "pdot"


#: The element each state books its time to (``idle`` books none).
STATE_ELEMENT: dict[UnitState, TimeElement | None] = {
    UnitState.RUNNING: TimeElement.APT,
    UnitState.SETUP: TimeElement.ASUT,
    UnitState.DOWN: TimeElement.ADET,
    UnitState.WAITING: TimeElement.ADOT,
    UnitState.MAINTENANCE: TimeElement.PDOT,
    UnitState.IDLE: None,
}


def unit_state(text: object) -> UnitState:
    """The state named by ``text``; ``ValueInvalid`` for anything else."""
    if not isinstance(text, str):
        raise ValueInvalid(f"a work unit state is text, not {type(text).__name__}")
    try:
        return UnitState(text)
    except ValueError:
        raise ValueInvalid(f"unknown work unit state {text!r}") from None


__all__ = ["STATE_ELEMENT", "TimeElement", "UnitState", "unit_state"]
