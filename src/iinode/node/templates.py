"""Industry metadata templates: definitions, their JSON Schema, and record checks.

A template belongs to a prefix and lives as an identifier record of its own,
``<prefix>/template/<name>/<version>``:

* index 1, type ``II_TEMPLATE_DEF``: the definition as UTF-8 JSON (see
  :meth:`Template.to_json`): name, version, industry (GB/T 4754 code), status,
  the template it was derived from, and its attributes;
* index 100, HS_ADMIN: who may change it (as on any record);
* index 400, HS_VLIST: the template's *readers*, identities allowed to read the
  restricted attributes of every identifier registered against it.

An identifier registered against a template carries the link at index 1001
(type ``II_TEMPLATE``, data: UTF-8 JSON ``{"template": "<handle>", "unique":
[names]}``, plus ``"fulltext": [names]`` when the template has such attributes;
a client may send the template handle alone), one value per
attribute at the attribute's index (2000 and up; type = the attribute's name,
data = the value as text) and, when the template has restricted attributes, an
HS_ADMIN at index 1002 granting READ_VALUE to the template's readers group
``400:<template>``.  Restricted attributes are stored without PUBLIC_READ.

Each attribute has a type (string, number, date, enum, reference), may be
required or unique, a string one may be ``fulltext`` (found by the words of its
value, ``GET /api/search?q=``; the link then names it), and has constraints
(``min``/``max`` for numbers,
``minLength``/``maxLength``/``pattern`` for text, ``values`` for an enum).
:meth:`Template.json_schema` turns a definition into a JSON Schema (draft 2020-12);
``node.template_check`` compiles it once and checks records against it.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from iinode.errors import InvalidHandle, ValueInvalid
from iinode.identifiers import (
    VALUE_TYPES,
    HandleName,
    HandleValue,
)
from iinode.storage.search import FIRST_ATTRIBUTE_INDEX

#: Value types of a template record's definition and of its readers group index.
DEFINITION_TYPE = "II_TEMPLATE_DEF"
DEFINITION_INDEX = 1
READERS_INDEX = 400
#: Index of the HS_ADMIN on an identifier granting the template's readers READ_VALUE.
READER_GRANT_INDEX = 1002
#: The last index an attribute may take.
LAST_ATTRIBUTE_INDEX = 2**31 - 1
MAX_ATTRIBUTES = 256

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}\Z")
_HANDLE_TEXT = r"^[^/\s]+/\S.*$"

#: GB/T 4754-2017 sections and the divisions (two-digit codes) each one spans.
GBT4754_SECTIONS: dict[str, tuple[int, int]] = {
    "A": (1, 5), "B": (6, 12), "C": (13, 43), "D": (44, 46), "E": (47, 50),
    "F": (51, 52), "G": (53, 60), "H": (61, 62), "I": (63, 65), "J": (66, 69),
    "K": (70, 70), "L": (71, 72), "M": (73, 75), "N": (76, 79), "O": (80, 82),
    "P": (83, 83), "Q": (84, 85), "R": (86, 90), "S": (91, 96), "T": (97, 97),
}  # fmt: skip
_INDUSTRY = re.compile(r"([A-Z])([0-9]{4})\Z")
_INDUSTRY_LEVELS = re.compile(r"([A-Z])[-. ]([0-9]{2})[-. ]([0-9]{3})[-. ]([0-9]{4})\Z")


class Status(enum.StrEnum):
    """A template's lifecycle: only published templates take new registrations."""

    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


#: Status changes a template may go through.
TRANSITIONS = {
    (Status.DRAFT, Status.DRAFT),
    (Status.DRAFT, Status.PUBLISHED),
    (Status.PUBLISHED, Status.WITHDRAWN),
}


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


def industry_levels(code: str) -> dict[str, str]:
    """The four levels of a GB/T 4754 class code (``C3451`` or ``C-34-345-3451``):
    section letter, two-digit division, three-digit group, four-digit class."""
    text = code.strip().upper() if isinstance(code, str) else ""
    short = _INDUSTRY.match(text)
    full = _INDUSTRY_LEVELS.match(text)
    if short is not None:
        section, klass = short.groups()
        division, group = klass[:2], klass[:3]
    elif full is not None:
        section, division, group, klass = full.groups()
    else:
        raise ValueInvalid(
            f"industry {code!r} is not a GB/T 4754 class code (section letter and a "
            "four-digit class, e.g. C3451 or C-34-345-3451)"
        )
    bounds = GBT4754_SECTIONS.get(section)
    if bounds is None or not bounds[0] <= int(division) <= bounds[1]:
        raise ValueInvalid(f"industry {code!r}: division {division} is not in section {section}")
    if not group.startswith(division) or not klass.startswith(group):
        raise ValueInvalid(
            f"industry {code!r}: group and class must extend the division ({division}…)"
        )
    return {"section": section, "division": division, "group": group, "class": klass}


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


def _attribute(doc: Any, position: int, taken: set[int], problems: list[Violation]) -> Attribute:
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


@dataclass(frozen=True, slots=True)
class Template:
    """One version of a template, as its definition value holds it."""

    prefix: str
    name: str
    version: str
    industry: str
    attributes: tuple[Attribute, ...]
    status: Status = Status.DRAFT
    derived_from: str | None = None
    description: str = ""

    @property
    def handle(self) -> HandleName:
        return template_handle(self.prefix, self.name, self.version)

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    @property
    def unique_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes if a.unique)

    @property
    def fulltext_names(self) -> tuple[str, ...]:
        """The attributes searched by the words of their values (``?q=``)."""
        return tuple(a.name for a in self.attributes if a.fulltext)

    @property
    def has_restricted(self) -> bool:
        return any(a.restricted for a in self.attributes)

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "name": self.name,
            "version": self.version,
            "handle": str(self.handle),
            "industry": {"code": self.industry, **industry_levels(self.industry)},
            "status": self.status.value,
            "derivedFrom": self.derived_from,
            "description": self.description,
            "attributes": [a.to_json() for a in self.attributes],
        }

    def definition_bytes(self) -> bytes:
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True).encode("utf-8")

    def json_schema(self) -> dict[str, Any]:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"hdl:{self.handle}",
            "type": "object",
            "properties": {a.name: a.schema() for a in self.attributes},
            "required": [a.name for a in self.attributes if a.required],
            "additionalProperties": False,
        }

    @classmethod
    def from_json(cls, doc: Any, *, prefix: str | None = None) -> Template:
        """A definition read from JSON; every problem with it is reported at once."""
        if not isinstance(doc, Mapping):
            raise ValueInvalid("a template definition is a JSON object")
        problems: list[Violation] = []
        name = doc.get("name")
        if not isinstance(name, str) or not _TEMPLATE_NAME.match(name):
            problems.append(
                Violation("name", str(name), "name", "a template name is a-z, 0-9, _ and -")
            )
        version = str(doc.get("version", ""))
        if not _VERSION.match(version):
            problems.append(
                Violation("version", version, "version", "a version is 1-32 of 0-9A-Za-z._-")
            )
        owner = prefix if prefix is not None else doc.get("prefix")
        if not isinstance(owner, str) or not owner:
            problems.append(
                Violation("prefix", str(owner), "prefix", "a template names its prefix")
            )
            owner = "0"
        industry = doc.get("industry")
        if isinstance(industry, Mapping):
            industry = industry.get("code") or industry.get("class")
            industry = industry if isinstance(industry, str) else ""
            full = doc["industry"]
            if isinstance(full.get("section"), str) and not str(industry).startswith(
                full["section"]
            ):
                industry = f"{full['section']}{industry}"
        try:
            industry_levels(str(industry))
        except ValueInvalid as exc:
            problems.append(Violation("industry", str(industry), "industry", exc.message))
        try:
            status = Status(doc.get("status", "draft"))
        except ValueError:
            problems.append(Violation("status", str(doc.get("status")), "status", "unknown status"))
            status = Status.DRAFT
        derived = doc.get("derivedFrom")
        if derived is not None:
            try:
                HandleName.parse(str(derived))
            except InvalidHandle:
                problems.append(Violation("derivedFrom", str(derived), "reference", "not a handle"))
        raw_attributes = doc.get("attributes")
        attributes: list[Attribute] = []
        if not isinstance(raw_attributes, list) or not raw_attributes:
            problems.append(
                Violation("attributes", None, "attributes", "a template has attributes")
            )
        elif len(raw_attributes) > MAX_ATTRIBUTES:
            problems.append(
                Violation("attributes", None, "attributes", f"at most {MAX_ATTRIBUTES} attributes")
            )
        else:
            taken: set[int] = set()
            names: set[str] = set()
            for position, item in enumerate(raw_attributes):
                attribute = _attribute(item, position, taken, problems)
                if attribute.name in names:
                    problems.append(
                        Violation(attribute.name, None, "name", "two attributes share this name")
                    )
                names.add(attribute.name)
                attributes.append(attribute)
        if problems:
            raise TemplateViolations(problems, what="template definition")
        assert isinstance(name, str)
        template = cls(
            prefix=owner,
            name=name,
            version=version,
            industry=_short_code(str(industry)),
            attributes=tuple(attributes),
            status=status,
            derived_from=None if derived is None else str(derived),
            description=str(doc.get("description", "")),
        )
        try:
            template.handle  # noqa: B018 - the name must make a valid handle
            Draft202012Validator.check_schema(template.json_schema())
        except (InvalidHandle, SchemaError) as exc:
            raise ValueInvalid(f"template definition is not usable: {exc}") from None
        return template

    @classmethod
    def from_definition(cls, raw: bytes, *, default_prefix: str | None = None) -> Template:
        """A definition value's template (``default_prefix`` when it names none)."""
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ValueInvalid("a template definition value is not JSON") from None
        given = doc.get("prefix") if isinstance(doc, dict) else None
        return cls.from_json(doc, prefix=given or default_prefix)


def _short_code(code: str) -> str:
    levels = industry_levels(code)
    return levels["section"] + levels["class"]


def template_handle(prefix: str, name: str, version: str) -> HandleName:
    return HandleName(prefix, f"template/{name}/{version}")


def definition_of(values: Iterable[HandleValue]) -> bytes | None:
    """The raw definition of a template record, ``None`` if it is not one."""
    for v in values:
        if v.index == DEFINITION_INDEX and v.type == DEFINITION_TYPE:
            return v.data_bytes
    return None


__all__ = [
    "DEFINITION_INDEX",
    "DEFINITION_TYPE",
    "GBT4754_SECTIONS",
    "READERS_INDEX",
    "READER_GRANT_INDEX",
    "TRANSITIONS",
    "Attribute",
    "AttributeType",
    "Status",
    "Template",
    "TemplateViolations",
    "Violation",
    "definition_of",
    "industry_levels",
    "is_date",
    "template_handle",
]
