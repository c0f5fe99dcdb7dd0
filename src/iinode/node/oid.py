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
"""

from __future__ import annotations

import re

from iinode.errors import InvalidHandle
from iinode.identifiers import HandleName
from iinode.storage import HandleStore
from iinode.storage.search import SearchQuery

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


__all__ = ["MAX_ARCS", "MAX_OID_CHARS", "InvalidOid", "parse_oid", "resolve_oid"]
