"""Search terms of records, and the query every store answers (``HandleStore.search``).

Each store keeps, beside the record bytes, the *terms* :func:`record_terms` draws
from them, in the same transaction as the record (SQLite: triggers on the handle
table; PostgreSQL and memory: the write itself), so the index never disagrees
with the records whatever path wrote them (REST, native, bulk-load):

* ``url``: the text of every ``URL`` value (reverse lookup);
* ``template``: the template handle a record is registered against (its
  ``II_TEMPLATE`` value at index 1001);
* ``attr:<name>``: each template attribute value (index 2000 and up, type = the
  attribute's name) of a record that has a template link;
* ``oid``: the text of every ``II_OID`` value (an OID bound to a record or, in a
  prefix record ``0.NA/<prefix>``, an OID arc mapped to the prefix).
* ``words``: each word (``storage.words``) of the values of the attributes the
  link names as full-text (``"fulltext"`` in the link), for ``GET /api/search?q=``.

A term is *public* when its value carries PUBLIC_READ; searches by anonymous
callers see public terms only, so a restricted attribute is not found by value.
A term of an attribute the link names as unique is marked so, and each store
refuses a second record under the same prefix with the same unique
``(field, value)``: :class:`UniqueValueTaken`.  Values longer than
:data:`MAX_TERM_CHARS` are not indexed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from iinode.errors import ValueInvalid
from iinode.identifiers import HandleValue, StringData
from iinode.storage.words import words

#: Index of the template link on an identifier, and of the first attribute.
TEMPLATE_LINK_INDEX = 1001
FIRST_ATTRIBUTE_INDEX = 2000
#: Value types: the template link on an identifier, and an OID bound to a record.
TEMPLATE_LINK_TYPE = "II_TEMPLATE"
OID_TYPE = "II_OID"
#: Longest value text that is indexed (longer values are stored, not searchable).
MAX_TERM_CHARS = 512
#: Most handles one search page returns.
MAX_SEARCH_LIMIT = 1000

_HEAD = struct.Struct(">IIBiBI")  # index, timestamp, TTL type, TTL, permissions, type length
_U32 = struct.Struct(">I")
_PUBLIC_READ = 0x02

#: A term: (field, value, public, unique).
Term = tuple[str, str, bool, bool]
#: Terms of the rows of one ``bulk_put``, by handle (the bulk path's, computed from values).
BulkTerms = dict[str, list[Term]]


class UniqueValueTaken(ValueInvalid):
    """A record would repeat a unique attribute value already held under its prefix."""


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Handles whose terms include every ``(field, value)`` of ``terms``, sorted by
    handle, strictly after ``after``; optionally only handles of ``prefix``.

    With no terms, ``prefix`` is required and the query lists the prefix.
    ``public_only`` limits matching to public terms.
    """

    terms: tuple[tuple[str, str], ...] = ()
    prefix: str | None = None
    after: str | None = None
    limit: int = 100
    public_only: bool = True

    def __post_init__(self) -> None:
        if not self.terms and not self.prefix:
            raise ValueInvalid("a search needs at least one term or a prefix")
        if not 1 <= self.limit <= MAX_SEARCH_LIMIT:
            raise ValueInvalid(f"a search limit must be within 1..{MAX_SEARCH_LIMIT}")
        for name, value in self.terms:
            if not name or len(value) > MAX_TERM_CHARS:
                raise ValueInvalid(f"search term {name!r} is empty or too long")


class Link(NamedTuple):
    """What a template link value says: the template, its unique and its full-text
    attribute names."""

    template: str
    unique: tuple[str, ...] = ()
    fulltext: tuple[str, ...] = ()


def link_target(data: bytes | str) -> Link | None:
    """What a link value's data says.

    The data is UTF-8 JSON ``{"template": "<handle>", "unique": [names], "fulltext":
    [names]}`` (as the node stores it; ``fulltext`` only when there are some) or the
    template handle alone (as a client may send it).
    """
    if isinstance(data, str):
        text = data.strip()
    else:
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
    found = _LINKS.get(text)
    if found is not None:
        return found
    found = _link_target(text)
    if found is not None and len(_LINKS) < 1024:
        _LINKS[text] = found
    return found


#: Link texts already read (a store holds few distinct ones: one per template version).
_LINKS: dict[str, Link] = {}


def _link_target(text: str) -> Link | None:
    if not text.startswith("{"):
        return Link(text) if text else None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("template"), str):
        return None
    return Link(doc["template"], _names(doc.get("unique")), _names(doc.get("fulltext")))


def _names(given: object) -> tuple[str, ...]:
    return tuple(n for n in given if isinstance(n, str)) if isinstance(given, list) else ()


def record_terms(data: bytes) -> list[Term]:
    """The search terms of one stored record (RFC 3651 record bytes); ``[]`` when
    the bytes do not parse (an index is never a reason to refuse a stored record)."""
    try:
        return _terms(data)
    except (struct.error, IndexError, UnicodeDecodeError):
        return []


def _terms(data: bytes) -> list[Term]:
    (count,) = _U32.unpack_from(data, 0)
    at = 4
    items = []
    for _ in range(count):
        index, _ts, _ttl_type, _ttl, perms, tlen = _HEAD.unpack_from(data, at)
        at += _HEAD.size
        vtype = data[at : at + tlen]
        at += tlen
        (dlen,) = _U32.unpack_from(data, at)
        at += 4
        body = data[at : at + dlen]
        at += dlen
        (refs,) = _U32.unpack_from(data, at)
        at += 4
        for _r in range(refs):
            (rlen,) = _U32.unpack_from(data, at)
            at += 4 + rlen + 4
        if index >= FIRST_ATTRIBUTE_INDEX or vtype in _INDEXED_TYPES:
            try:
                items.append((index, vtype.decode("utf-8"), body.decode("utf-8"), perms))
            except UnicodeDecodeError:
                continue  # binary data is not searchable
    return _collect(items)


#: Types whose values are terms below the attribute indexes.
_INDEXED_TYPES = frozenset({b"URL", TEMPLATE_LINK_TYPE.encode(), OID_TYPE.encode()})
_INDEXED_TYPE_NAMES = frozenset(t.decode() for t in _INDEXED_TYPES)


def values_terms(values: Iterable[HandleValue]) -> list[Term]:
    """:func:`record_terms` of the record ``values`` encode to, without encoding them (the
    bulk path hands them to the store beside the rows)."""
    urls: list[tuple[str, bool]] = []
    oids: list[tuple[str, bool]] = []
    attrs: list[tuple[str, str, bool]] = []
    link: Link | None = None
    link_public = False
    for v in values:
        index = v.index
        vtype = v.type
        if index < FIRST_ATTRIBUTE_INDEX and vtype not in _INDEXED_TYPE_NAMES:
            continue
        data = v.data
        if isinstance(data, StringData):
            text = data.text
        else:
            try:
                text = v.data_bytes.decode("utf-8")
            except UnicodeDecodeError:
                continue  # binary data is not searchable
        public = bool(int(v.permissions) & _PUBLIC_READ)
        if vtype == "URL":
            urls.append((text, public))
        elif index == TEMPLATE_LINK_INDEX and vtype == TEMPLATE_LINK_TYPE:
            link = link_target(text)
            link_public = public
        elif index >= FIRST_ATTRIBUTE_INDEX:
            attrs.append((vtype, text, public))
        elif vtype == OID_TYPE:
            oids.append((text, public))
    return _assemble(urls, oids, link, link_public, attrs)


def _collect(items: Iterable[tuple[int, str, str, int]]) -> list[Term]:
    """The terms of a record's values given as (index, type, data text, permissions)."""
    urls: list[tuple[str, bool]] = []
    oids: list[tuple[str, bool]] = []
    attrs: list[tuple[str, str, bool]] = []
    link: Link | None = None
    link_public = False
    for index, vtype, text, perms in items:
        public = bool(perms & _PUBLIC_READ)
        if vtype == "URL":
            urls.append((text, public))
        elif index == TEMPLATE_LINK_INDEX and vtype == TEMPLATE_LINK_TYPE:
            link = link_target(text)
            link_public = public
        elif index >= FIRST_ATTRIBUTE_INDEX:
            attrs.append((vtype, text, public))
        elif vtype == OID_TYPE:
            oids.append((text, public))
    return _assemble(urls, oids, link, link_public, attrs)


def _assemble(
    urls: list[tuple[str, bool]],
    oids: list[tuple[str, bool]],
    link: Link | None,
    link_public: bool,
    attrs: list[tuple[str, str, bool]],
) -> list[Term]:
    """The terms of a record from its URLs, OIDs, template link and attribute values (the
    attributes count only with a link); one term per (field, value), public if any of
    its values is, unique if any is."""
    if not oids and link is None and len(urls) == 1:  # the common plain record
        url, public = urls[0]
        return [("url", url, public, False)] if url and len(url) <= MAX_TERM_CHARS else []
    found: list[Term] = [("url", url, public, False) for url, public in urls]
    found += [("oid", oid, public, False) for oid, public in oids]
    fulltext = False
    if link is not None:
        template, unique, fulltext_names = link
        found.append(("template", template, link_public, False))
        fields = _ATTR_FIELDS
        for name, value, public in attrs:
            field = fields.get(name)
            if field is None:
                field = f"attr:{name}"
                if len(fields) < 4096:
                    fields[name] = field
            found.append((field, value, public, name in unique))
            if fulltext_names and name in fulltext_names:
                found += [("words", w, public, False) for w in words(value)]
                fulltext = True
    # The same (field, value) twice needs two URLs, two OIDs, an attribute name twice or
    # words (a word may be in two full-text values).
    if (
        not fulltext
        and len(urls) < 2
        and len(oids) < 2
        and len({a[0] for a in attrs}) == len(attrs)
    ):
        return [t for t in found if t[1] and len(t[1]) <= MAX_TERM_CHARS]
    out: dict[tuple[str, str], Term] = {}
    for term in found:
        name, value, public, uniq = term
        if not value or len(value) > MAX_TERM_CHARS:
            continue
        key = (name, value)
        before = out.get(key)
        if before is None:
            out[key] = term
        else:  # the same text twice: public if either is, unique if either is
            out[key] = (name, value, public or before[2], uniq or before[3])
    return list(out.values())


#: ``attr:<name>`` search fields by attribute name.
_ATTR_FIELDS: dict[str, str] = {}


def search_sql(query: SearchQuery, table: str, mark: str) -> tuple[str, tuple[str | int, ...]]:
    """The SQL of a query with terms over a term table (``field, value, handle, prefix,
    public``; ``mark`` is the driver's placeholder).  The first term drives an index
    range on ``(field, value, handle)`` in handle order (no sort); the others are
    primary-key probes."""
    (field, value), *others = query.terms
    public = " AND t0.public" if query.public_only else ""
    sql = f"SELECT t0.handle FROM {table} AS t0 WHERE t0.field = {mark} AND t0.value = {mark}"
    sql += public
    args: tuple[str | int, ...] = (field, value)
    if query.after is not None:
        sql += f" AND t0.handle > {mark}"
        args += (query.after,)
    if query.prefix is not None:
        sql += f" AND t0.prefix = {mark}"
        args += (query.prefix,)
    for n, (f, v) in enumerate(others, start=1):
        also = f" AND t{n}.public" if query.public_only else ""
        sql += (
            f" AND EXISTS (SELECT 1 FROM {table} AS t{n} WHERE t{n}.field = {mark}"
            f" AND t{n}.value = {mark} AND t{n}.handle = t0.handle{also})"
        )
        args += (f, v)
    return f"{sql} ORDER BY t0.handle LIMIT {mark}", (*args, query.limit)


def terms_json(data: bytes) -> str | None:
    """:func:`record_terms` as JSON ``[[field, value, public, unique], ...]`` (for SQLite's
    ``json_each`` in the index triggers); ``None`` when there is none."""
    terms = record_terms(data)
    if not terms:
        return None
    return json.dumps([[f, v, int(p), int(u)] for f, v, p, u in terms], ensure_ascii=False)


__all__ = [
    "FIRST_ATTRIBUTE_INDEX",
    "MAX_SEARCH_LIMIT",
    "MAX_TERM_CHARS",
    "OID_TYPE",
    "TEMPLATE_LINK_INDEX",
    "TEMPLATE_LINK_TYPE",
    "BulkTerms",
    "Link",
    "SearchQuery",
    "Term",
    "UniqueValueTaken",
    "link_target",
    "record_terms",
    "search_sql",
    "terms_json",
    "values_terms",
]
