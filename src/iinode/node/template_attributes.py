"""Template attributes: their types, how a definition's attribute is read and
checked (``_attribute`` reports every problem), and the violations a record or a
definition is refused with.  ``node.templates`` builds templates from them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import FormatChecker

from iinode.errors import ValueInvalid
from iinode.identifiers import VALUE_TYPES
from iinode.storage.search import FIRST_ATTRIBUTE_INDEX

#: The last index an attribute may take.
LAST_ATTRIBUTE_INDEX = 2**31 - 1

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_HANDLE_TEXT = r"^[^/\s]+/\S.*$"


class AttributeType(enum.StrEnum):
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    ENUM = "enum"
    REFERENCE = "reference"


#: Constraints each attribute type takes.
_CONSTRAINTS = {
    AttributeType.STRING: {"minLength", "maxLength", "pattern"},
    AttributeType.NUMBER: {"min", "max"},
    AttributeType.DATE: {"min", "max"},
    AttributeType.ENUM: {"values"},
    AttributeType.REFERENCE: {"pattern"},
}


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a record breaks its template: the attribute, the value given, the rule."""

    attribute: str
    value: str | None
    rule: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "value": self.value,
            "rule": self.rule,
            "message": self.message,
        }


class TemplateViolations(ValueInvalid):
    """A record (or a template definition) breaks its rules; carries every violation."""

    def __init__(
        self, violations: Sequence[Violation], *, what: str = "record", handle: str | None = None
    ) -> None:
        listed = "; ".join(f"{v.attribute}: {v.message}" for v in violations[:8])
        more = f" (and {len(violations) - 8} more)" if len(violations) > 8 else ""
        super().__init__(
            f"{what} violates its template in {len(violations)} place(s): {listed}{more}",
            handle=handle,
        )
        self.violations = tuple(violations)

    @property
    def body_extra(self) -> dict[str, Any]:
        """What an HTTP error body adds: the list of violations."""
        return {"violations": [v.to_json() for v in self.violations]}


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    type: AttributeType
    index: int
    required: bool = False
    unique: bool = False
    restricted: bool = False
    fulltext: bool = False
    constraints: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type.value,
            "index": self.index,
            "required": self.required,
            "unique": self.unique,
            "access": "restricted" if self.restricted else "public",
        }
        if self.fulltext:
            out["fulltext"] = True
        if self.constraints:
            out["constraints"] = dict(self.constraints)
        if self.description:
            out["description"] = self.description
        return out

    def schema(self) -> dict[str, Any]:
        """This attribute's JSON Schema (the instance holds numbers as numbers, the rest
        as text)."""
        c = self.constraints
        if self.type is AttributeType.NUMBER:
            out: dict[str, Any] = {"type": "number"}
            if "min" in c:
                out["minimum"] = c["min"]
            if "max" in c:
                out["maximum"] = c["max"]
            return out
        out = {"type": "string"}
        if self.type is AttributeType.DATE:
            out["format"] = "date"  # min/max of dates are checked by CompiledTemplate
        elif self.type is AttributeType.ENUM:
            out["enum"] = list(c["values"])
        elif self.type is AttributeType.REFERENCE:
            out["pattern"] = c.get("pattern", _HANDLE_TEXT)
        else:
            for key in ("minLength", "maxLength", "pattern"):
                if key in c:
                    out[key] = c[key]
        return out


def read_attribute(
    doc: Any, position: int, taken: set[int], problems: list[Violation]
) -> Attribute:
    """Attribute ``position`` of a definition, its problems added to ``problems``."""
    where = f"attributes[{position}]"
    if not isinstance(doc, Mapping):
        raise TemplateViolations(
            [Violation(where, None, "type", "an attribute is an object")], what="template"
        )
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(
            Violation(where, str(name), "name", "a name is a-z, 0-9 and _, starting with a letter")
        )
        name = f"#{position}"
    elif name.upper() in VALUE_TYPES:
        problems.append(Violation(name, name, "name", "a name must not be a Handle value type"))
    try:
        kind = AttributeType(str(doc.get("type")))
    except ValueError:
        problems.append(
            Violation(name, str(doc.get("type")), "type", "type is one of "
                      + ", ".join(t.value for t in AttributeType))
        )  # fmt: skip
        kind = AttributeType.STRING
    index = doc.get("index")
    if index is None:
        index = max(taken | {FIRST_ATTRIBUTE_INDEX - 1}) + 1
    if not isinstance(index, int) or isinstance(index, bool):
        problems.append(Violation(name, str(index), "index", "an index is an integer"))
        index = FIRST_ATTRIBUTE_INDEX
    elif not FIRST_ATTRIBUTE_INDEX <= index <= LAST_ATTRIBUTE_INDEX:
        problems.append(Violation(name, str(index), "index", "attribute indexes start at 2000"))
    elif index in taken:
        problems.append(Violation(name, str(index), "index", "two attributes share this index"))
    taken.add(index)
    access = doc.get("access", "public")
    if access not in ("public", "restricted"):
        problems.append(Violation(name, str(access), "access", "access is public or restricted"))
    constraints = doc.get("constraints") or {}
    if not isinstance(constraints, Mapping):
        problems.append(Violation(name, None, "constraints", "constraints are an object"))
        constraints = {}
    for key in set(constraints) - _CONSTRAINTS[kind]:
        problems.append(
            Violation(name, key, "constraints", f"a {kind.value} attribute takes no {key!r}")
        )
    _check_constraints(name, kind, constraints, problems)
    for flag in ("required", "unique", "fulltext"):
        if not isinstance(doc.get(flag, False), bool):
            problems.append(Violation(name, str(doc.get(flag)), flag, f"{flag} is true or false"))
    fulltext = doc.get("fulltext", False) is True
    if fulltext and kind is not AttributeType.STRING:
        problems.append(
            Violation(name, kind.value, "fulltext", "only a string attribute is searched by words")
        )
    return Attribute(
        name=name,
        type=kind,
        index=index,
        required=doc.get("required", False) is True,
        unique=doc.get("unique", False) is True,
        restricted=access == "restricted",
        fulltext=fulltext,
        constraints=dict(constraints),
        description=str(doc.get("description", "")),
    )


def _check_constraints(
    name: str, kind: AttributeType, c: Mapping[str, Any], problems: list[Violation]
) -> None:
    def bad(key: str, message: str) -> None:
        problems.append(Violation(name, str(c.get(key)), key, message))

    if kind is AttributeType.NUMBER:
        for key in ("min", "max"):
            if key in c and (isinstance(c[key], bool) or not isinstance(c[key], int | float)):
                bad(key, f"{key} of a number is a number")
    if kind is AttributeType.DATE:
        for key in ("min", "max"):
            if key in c and not is_date(c[key]):
                bad(key, f"{key} of a date is a date YYYY-MM-DD")
    for key in ("minLength", "maxLength"):
        if key in c and (isinstance(c[key], bool) or not isinstance(c[key], int) or c[key] < 0):
            bad(key, f"{key} is a non-negative integer")
    if "pattern" in c:
        try:
            re.compile(c["pattern"])
        except (re.error, TypeError):
            bad("pattern", "pattern is a regular expression")
    if kind is AttributeType.ENUM:
        values = c.get("values")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v for v in values)
            or len(set(values)) != len(values)
        ):
            bad("values", "an enum needs a list of distinct, non-empty texts")


def is_date(text: Any) -> bool:
    """Whether ``text`` is a date as JSON Schema's ``date`` format takes it."""
    return isinstance(text, str) and FormatChecker(["date"]).conforms(text, "date")


__all__ = [
    "LAST_ATTRIBUTE_INDEX",
    "Attribute",
    "AttributeType",
    "TemplateViolations",
    "Violation",
    "is_date",
    "read_attribute",
]
