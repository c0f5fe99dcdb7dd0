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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from iinode.errors import InvalidHandle, ValueInvalid
from iinode.identifiers import (
    HandleName,
    HandleValue,
)
from iinode.node.template_attributes import (
    Attribute,
    AttributeType,
    TemplateViolations,
    Violation,
    is_date,
    read_attribute,
)

#: Value types of a template record's definition and of its readers group index.
DEFINITION_TYPE = "II_TEMPLATE_DEF"
DEFINITION_INDEX = 1
READERS_INDEX = 400
#: Index of the HS_ADMIN on an identifier granting the template's readers READ_VALUE.
READER_GRANT_INDEX = 1002
MAX_ATTRIBUTES = 256

_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}\Z")

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
                attribute = read_attribute(item, position, taken, problems)
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
