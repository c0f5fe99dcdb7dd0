"""What the Sparkplug host application keeps and returns (no logic beyond bookkeeping).

:class:`HostSettings` configures :class:`~iinode.connectivity.sparkplug.host.HostApplication`;
:class:`HostResult` (and the :class:`Birth` records in it) is what each call of
it produced; ``NodeState`` is what it remembers per edge node (sequence and
``bdSeq``, aliases, templates, metric properties and the reorder buffer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from iinode.connectivity.sparkplug.codec import DataType, Payload, Template, Topic
from iinode.connectivity.sparkplug.session import Outgoing
from iinode.errors import InvalidHandle
from iinode.identifiers import HandleName
from iinode.telemetry.model import Reading


def default_equipment(group: str, edge_node: str, device: str | None) -> str | None:
    """``<group>/<device>`` (or ``<group>/<edge node>`` for node metrics) if a valid handle."""
    try:
        return str(HandleName(group, device if device is not None else edge_node))
    except InvalidHandle:
        return None


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Reorder Timeout (µs; 0 reports a gap at once), how many messages may wait, and
    how many edge nodes are tracked at most (see :class:`HostApplication`)."""

    reorder_timeout_us: int = 2_000_000
    max_held: int = 64
    max_nodes: int = 10_000

    def __post_init__(self) -> None:
        if self.reorder_timeout_us < 0 or not 0 < self.max_held < 256:
            raise ValueError("reorder_timeout_us must be >= 0 and max_held in 1..255")
        if self.max_nodes < 1:
            raise ValueError("max_nodes must be at least 1")


@dataclass(frozen=True, slots=True)
class DataMessage:
    """A data message whose metrics are converted while they are mapped (the fast path)."""

    seq: int | None
    timestamp: int | None
    pb: Any


@dataclass(frozen=True, slots=True)
class Known:
    """What a birth certificate said about one alias."""

    name: str
    datatype: DataType
    template_ref: str | None = None


@dataclass(slots=True)
class NodeState:
    bdseq: int | None = None
    seq: int | None = None
    online: bool = False
    aliases: dict[tuple[str | None, int], Known] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)
    templates: dict[str, Template] = field(default_factory=dict)
    refs: dict[tuple[str | None, str], str] = field(default_factory=dict)
    properties: dict[tuple[str | None, str], dict[str, Any]] = field(default_factory=dict)
    held: dict[int, tuple[Topic, Payload | DataMessage, object]] = field(default_factory=dict)
    gap_since: int | None = None

    def reset(self, r: HostResult) -> None:
        self.aliases = {}
        self.devices = set()
        self.templates = {}
        self.refs = {}
        self.properties = {}
        r.release(t for _, _, t in self.held.values())
        self.held = {}
        self.gap_since = None


@dataclass(frozen=True, slots=True)
class Birth:
    """An NBIRTH (``device`` None) or DBIRTH as processed: scalar metrics and their properties."""

    group: str
    edge_node: str
    device: str | None
    equipment: str | None
    metrics: dict[str, Any]
    properties: dict[str, dict[str, Any]]


@dataclass(slots=True)
class HostResult:
    """What one received message (or one :meth:`HostApplication.expire`) produced.

    ``malformed`` holds topics and payloads that did not parse; ``errors`` the
    protocol trouble of messages that did (sequence, aliases, births).  ``held``
    is 1 if the message received was put in the reorder buffer; ``released``
    lists the tokens (see :meth:`HostApplication.receive`) of held messages
    this call processed or dropped, possibly including the one just received.
    """

    readings: list[Reading] = field(default_factory=list)
    replies: list[Outgoing] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    births: list[Birth] = field(default_factory=list)
    skipped: int = 0
    held: int = 0
    released: list[object] = field(default_factory=list)

    def release(self, tokens: Iterable[object]) -> None:
        self.released.extend(t for t in tokens if t is not None)


__all__ = [
    "Birth",
    "DataMessage",
    "HostResult",
    "HostSettings",
    "Known",
    "NodeState",
    "default_equipment",
]
