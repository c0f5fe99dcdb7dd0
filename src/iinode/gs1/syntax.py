"""GS1 Digital Link URI syntax: parse a request path, validate it, write its canonical form.

A Digital Link path is ``/{primary AI}/{key}`` followed by the key's qualifiers in
their fixed order (``/01/{gtin}/22/{cpv}/10/{lot}/21/{serial}``); GS1 data
attributes travel in the query string as ``{AI}={value}``.  Every value is checked
against the AI table (format, character set, check digit); anything else raises
``DigitalLinkError`` with the specific reason, which the resolver answers with 400.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from iinode.gs1.ai import (
    AI_TABLE,
    PRIMARY_KEYS,
    DigitalLinkError,
    normalise_gtin,
    qualifier_alternative,
    validate,
)
from iinode.gs1.associations import NOT_DATA_ATTRIBUTES, check_associations

#: The characters of a value left as they are in a canonical URI (RFC 3986 unreserved).
_SAFE = "-._~"


@dataclass(frozen=True, slots=True)
class DigitalLink:
    """A validated GS1 Digital Link: primary key, qualifiers in path order, data attributes."""

    primary: tuple[str, str]
    qualifiers: tuple[tuple[str, str], ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        check_elements(self.primary, self.qualifiers, self.attributes)

    @property
    def key(self) -> str:
        return self.primary[0]

    @property
    def path(self) -> str:
        """The canonical path, values percent-encoded: ``/01/09506000134352/10/AB%2FC``."""
        return "".join(
            f"/{ai}/{quote(v, safe=_SAFE)}" for ai, v in (self.primary, *self.qualifiers)
        )

    @property
    def query(self) -> str:
        return "&".join(f"{ai}={quote(v, safe=_SAFE)}" for ai, v in self.attributes)

    def uri(self, root: str) -> str:
        """The uncompressed URI on the resolver at ``root`` (no trailing slash)."""
        q = self.query
        return f"{root}{self.path}" + (f"?{q}" if q else "")

    def levels(self) -> list[DigitalLink]:
        """This link and each ancestor, most specific first, up to the bare primary key."""
        return [
            DigitalLink(self.primary, self.qualifiers[:n])
            for n in range(len(self.qualifiers), -1, -1)
        ]

    def describe(self) -> str:
        """A plain description of the key, e.g. ``GTIN 09506000134352, BATCH/LOT L1``."""
        return ", ".join(f"{AI_TABLE[ai].title} {v}" for ai, v in (self.primary, *self.qualifiers))

    def elements(self) -> dict[str, str]:
        return dict((self.primary, *self.qualifiers, *self.attributes))


def check_elements(
    primary: tuple[str, str],
    qualifiers: Sequence[tuple[str, str]],
    attributes: Sequence[tuple[str, str]] = (),
) -> None:
    """Raise ``DigitalLinkError`` unless the elements form a valid Digital Link.

    This is the syntax of each element and of the path; the rules on which AIs
    stand together are ``check_associations``, applied where a URI comes in.
    """
    key, value = primary
    if key not in PRIMARY_KEYS:
        if key in AI_TABLE:
            raise DigitalLinkError(f"AI {key} ({AI_TABLE[key].title}) is not a GS1 primary key")
        raise DigitalLinkError(f"unknown GS1 Application Identifier {key!r}")
    validate(key, value)
    alternatives = PRIMARY_KEYS[key]
    allowed = " | ".join(", ".join(alt) for alt in alternatives) or "none"
    path_ais = [ai for ai, _ in qualifiers]
    for ai, v in qualifiers:
        if ai not in AI_TABLE:
            raise DigitalLinkError(f"unknown GS1 Application Identifier {ai!r}")
        if not any(ai in alt for alt in alternatives):
            raise DigitalLinkError(
                f"AI {ai} is not a key qualifier of primary key {key} (its qualifiers: {allowed})"
            )
        validate(ai, v)
    if qualifier_alternative(key, path_ais) is None:
        if any(all(ai in alt for ai in path_ais) for alt in alternatives):
            raise DigitalLinkError(
                f"key qualifiers {', '.join(path_ais)} are out of order or repeated; "
                f"after {key} the order is {allowed}"
            )
        raise DigitalLinkError(
            f"key qualifiers {', '.join(path_ais)} cannot be combined after {key} "
            f"(one of the sequences {allowed})"
        )
    seen = {key, *path_ais}
    for ai, v in attributes:
        if ai in seen:
            raise DigitalLinkError(f"AI {ai} appears twice in the Digital Link")
        seen.add(ai)
        if ai not in AI_TABLE:
            raise DigitalLinkError(f"unknown GS1 Application Identifier {ai!r}")
        qualifies = any(ai in alt for alt in alternatives)
        for cut in range(len(path_ais) + 1 if qualifies else 0):
            if qualifier_alternative(key, [*path_ais[:cut], ai, *path_ais[cut:]]) is not None:
                raise DigitalLinkError(
                    f"AI {ai} is a key qualifier of {key} here; it belongs in the path, "
                    "not the query"
                )
        if ai in NOT_DATA_ATTRIBUTES:
            raise DigitalLinkError(
                f"AI {ai} ({AI_TABLE[ai].title}) is not permitted as a GS1 Digital Link "
                "data attribute"
            )
        validate(ai, v)


def is_ai(text: str) -> bool:
    return 2 <= len(text) <= 4 and text.isascii() and text.isdigit()


def parse_path(raw_path: str, query: Iterable[tuple[str, str]] = ()) -> DigitalLink:
    """Parse a still percent-encoded path (one trailing slash tolerated) and query pairs.

    Query keys that are all digits are GS1 data attributes and validated; the
    others (``linkType``, ``context``, anything) are not part of the identifier.
    """
    path = raw_path[:-1] if raw_path.endswith("/") and len(raw_path) > 1 else raw_path
    parts = path.split("/")[1:]
    if not parts or parts == [""]:
        raise DigitalLinkError("the path holds no GS1 primary key")
    if len(parts) % 2:
        raise DigitalLinkError(
            f"the path has {len(parts)} segments; a GS1 Digital Link path is AI/value pairs"
        )
    pairs: list[tuple[str, str]] = []
    for i in range(0, len(parts), 2):
        ai, raw = parts[i], parts[i + 1]
        if not is_ai(ai):
            raise DigitalLinkError(f"path segment {ai[:20]!r} is not a GS1 Application Identifier")
        try:
            value = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise DigitalLinkError(f"the value of AI {ai} is not valid UTF-8") from None
        pairs.append((ai, value))
    (key, value), *qualifiers = pairs
    if key == "01":
        value = normalise_gtin(value)
    attributes = [(k, v) for k, v in query if is_ai(k)]
    link = DigitalLink((key, value), tuple(qualifiers), tuple(attributes))
    check_associations(link.elements())
    return link


def from_elements(elements: dict[str, str]) -> DigitalLink:
    """The Digital Link of a set of AI values (as decompression gives them).

    The qualifiers of the key follow the alternative that takes the most of them
    into the path (the first one whose link is valid); the other AIs are data
    attributes.
    """
    keys = [ai for ai in elements if ai in PRIMARY_KEYS]
    if len(keys) != 1:
        found = ", ".join(keys) or "none"
        raise DigitalLinkError(f"exactly one GS1 primary key is needed (found: {found})")
    key = keys[0]
    alternatives = sorted(
        PRIMARY_KEYS[key] or ((),), key=lambda alt: -sum(ai in elements for ai in alt)
    )
    failure: DigitalLinkError | None = None
    for alt in alternatives:
        qualifiers = [(ai, elements[ai]) for ai in alt if ai in elements]
        used = {key, *(ai for ai, _ in qualifiers)}
        attributes = [(ai, v) for ai, v in elements.items() if ai not in used]
        try:
            link = DigitalLink((key, elements[key]), tuple(qualifiers), tuple(attributes))
        except DigitalLinkError as exc:
            failure = failure or exc
            continue
        check_associations(link.elements())
        return link
    assert failure is not None
    raise failure
