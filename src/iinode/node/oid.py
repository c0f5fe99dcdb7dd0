"""The OID front end: object identifiers (ITU-T X.660) resolved to identifier records.

An OID reaches a record in one of two ways, tried in this order:

1. a record carries the OID itself in an ``II_OID`` value: that record;
2. an OID arc is mapped to a prefix by an ``II_OID`` value in the prefix record
   ``0.NA/<prefix>`` (e.g. ``1.2.156.3001`` -> ``88.118.8``): the longest mapped
   arc above the OID wins and the arcs below it name the suffix, so
   ``1.2.156.3001.7.42`` is ``88.118.8/7.42``.

Both are answered from the store's search index (``oid`` terms), one index probe
per candidate arc.  An OID is written in dotted decimal (``1.2.156.3001``),
optionally as ``urn:oid:…`` or ``oid:…``; its first arc is 0, 1 or 2, the second
below 40 under 0 and 1, and no arc has a leading zero.

OIDs as names over the Handle interfaces
----------------------------------------
``GET /api/handles/oid:1.2.156.3001.7.42`` and a native resolution request for
``oid:1.2.156.3001.7.42`` (or ``urn:oid:…``, the scheme in any case) resolve the
OID (``answer_oid``).  The rule that keeps this unambiguous: a handle always has a
``/`` between prefix and suffix, an OID name never has one and must carry the
scheme.  A bare dotted OID is not taken as a name: without a slash it reads as a
prefix (``88.118.8``), and guessing would turn a mistyped prefix into an OID lookup.

The answer is an alias, the Handle System's way of saying "this name is another
name": an ``HS_ALIAS`` value (index ``ALIAS_INDEX``) naming the mapped handle, then,
when this node answers that handle itself, the handle's values exactly as asking for
it would give them (same read permissions, type and index filters).  A client that
reads values gets the record in one round trip; a client that follows aliases (the
Handle.Net proxy does) goes to the canonical handle; and when the handle lies under a
prefix delegated to another node, the alias alone is the answer, so the client
resolves the handle through the ordinary referral, which a referral for the OID
name could not do (the child node holds no mapping for it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iinode.codes import ResponseCode
from iinode.errors import HandleNotFound, InvalidHandle
from iinode.identifiers import AliasData, HandleName, HandleValue, IndexedHandle, Record
from iinode.storage import HandleStore
from iinode.storage.search import SearchQuery

if TYPE_CHECKING:
    from iinode.node.service import HandleService

#: Longest OID accepted (characters, arcs).
MAX_OID_CHARS = 256
MAX_ARCS = 64

_OID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+\Z")


class InvalidOid(InvalidHandle):
    """Text that is not an OID (answered with HTTP 400)."""


def parse_oid(text: str) -> str:
    """The OID in plain dotted form, or ``InvalidOid`` saying what is wrong."""
    oid = text.strip()
    for scheme in ("urn:oid:", "oid:"):
        if oid.lower().startswith(scheme):
            oid = oid[len(scheme) :]
    if len(oid) > MAX_OID_CHARS or not oid.isascii() or not _OID.match(oid):
        raise InvalidOid(
            f"{text[:64]!r} is not an OID (dotted decimal arcs, at least two, no leading zeros)"
        )
    arcs = oid.split(".")
    if len(arcs) > MAX_ARCS:
        raise InvalidOid(f"an OID has at most {MAX_ARCS} arcs")
    if int(arcs[0]) > 2:
        raise InvalidOid(f"{oid}: the first arc is 0, 1 or 2")
    if int(arcs[0]) < 2 and int(arcs[1]) > 39:
        raise InvalidOid(f"{oid}: under {arcs[0]} the second arc is below 40")
    return oid


async def resolve_oid(store: HandleStore, oid: str) -> HandleName | None:
    """The handle an OID names (see the module text), ``None`` when nothing maps it."""
    bound = await store.search(SearchQuery((("oid", oid),), limit=1))
    if bound:
        return HandleName.parse(bound[0])
    arcs = oid.split(".")
    for cut in range(len(arcs) - 1, 1, -1):
        arc = ".".join(arcs[:cut])
        for holder in await store.search(SearchQuery((("oid", arc),), limit=10)):
            prefix_text, _, prefix = holder.partition("/")
            if prefix_text.upper() == "0.NA" and prefix:
                return HandleName(prefix, ".".join(arcs[cut:]))
    return None


#: The index of the ``HS_ALIAS`` value an OID name answers with: the highest index,
#: which no record written through the node's interfaces is expected to use.
ALIAS_INDEX = 2**31 - 1
#: How long a client may keep the alias (seconds), as a value's default TTL.
ALIAS_TTL = 86_400
_SCHEMES = ("oid:", "urn:oid:")


def is_oid_name(text: str) -> bool:
    """Whether a requested name is an OID name: no ``/``, and ``oid:`` or ``urn:oid:``
    (any case) in front.  Cheap; the OID itself is checked by ``answer_oid``."""
    return "/" not in text and text[:8].lower().startswith(_SCHEMES)


@dataclass(frozen=True, slots=True)
class OidAnswer:
    """What an OID name resolves to: the alias, then the record's values if local."""

    name: str  # as asked
    oid: str  # dotted decimal
    handle: HandleName  # the handle the OID is mapped to
    values: Record

    @property
    def code(self) -> ResponseCode:
        return ResponseCode.SUCCESS

    def to_json(self) -> dict[str, Any]:
        """The body of ``GET /api/handles/<OID name>``: Handle JSON plus the OID and
        the handle it names (``target``)."""
        return {
            "responseCode": int(self.code),
            "handle": self.name,
            "oid": self.oid,
            "target": str(self.handle),
            "values": [v.to_json() for v in self.values],
        }


async def answer_oid(
    service: HandleService,
    name: str,
    *,
    identity: IndexedHandle | None = None,
    types: Sequence[str] = (),
    indexes: Sequence[int] = (),
) -> OidAnswer:
    """Resolve an OID name (see the module text).

    Raises ``InvalidOid`` (HANDLE_INVALID, HTTP 400) for text that is no OID and
    ``HandleNotFound`` (HTTP 404) when no mapping reaches a handle, or the handle it
    reaches does not exist on this node.
    """
    oid = parse_oid(name)
    handle = await resolve_oid(service.store, oid)
    if handle is None:
        raise HandleNotFound(f"no identifier is mapped to OID {oid}", handle=name)
    alias = HandleValue(
        ALIAS_INDEX, "HS_ALIAS", AliasData(str(handle)), ttl=ALIAS_TTL, timestamp=service.now()
    )
    try:
        answer = await service.answer(handle, identity=identity, types=types, indexes=indexes)
    except HandleNotFound:
        raise HandleNotFound(
            f"OID {oid} is mapped to {handle}, which does not exist", handle=name
        ) from None
    if answer.is_referral:
        return OidAnswer(name, oid, handle, (alias,))
    return OidAnswer(name, oid, handle, (alias, *answer.values))


__all__ = [
    "ALIAS_INDEX",
    "ALIAS_TTL",
    "MAX_ARCS",
    "MAX_OID_CHARS",
    "InvalidOid",
    "OidAnswer",
    "answer_oid",
    "is_oid_name",
    "parse_oid",
    "resolve_oid",
]
