"""Checking records against a template: :class:`CompiledTemplate`.

A template version (``node.templates``) is compiled once into

* a ``jsonschema`` validator of its JSON Schema, the judge whose errors are the
  report of a refused record;
* one Python predicate per property (:func:`_property_checks`, a generated expression
  over exactly the keywords the schema uses), so a valid record is accepted without
  the validator (which costs about 90 µs for seven attributes);
* a table of the attributes by index, so a record's values are checked as they come,
  with no instance built, when they are all right (:meth:`CompiledTemplate.check`);
* what registration stores beside the values (:meth:`CompiledTemplate.normal_form`):
  the canonical link, the hidden form of restricted attributes, the readers grant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from operator import attrgetter
from typing import Any, NamedTuple

from jsonschema import Draft202012Validator, FormatChecker

from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleValue,
    IndexedHandle,
    Permissions,
    Record,
    StringData,
)
from iinode.node.templates import (
    READER_GRANT_INDEX,
    READERS_INDEX,
    AttributeType,
    Template,
    Violation,
    is_date,
)
from iinode.storage.search import FIRST_ATTRIBUTE_INDEX, TEMPLATE_LINK_INDEX, TEMPLATE_LINK_TYPE

#: Canonical link values kept per compiled template (clients send a few link forms).
_LINK_FORMS = 64


class _Slot(NamedTuple):
    """An attribute as the per-value check needs it."""

    name: str
    number: bool
    accepts: Callable[[Any], bool]
    required: int
    earliest: str | None
    latest: str | None


class CompiledTemplate:
    """A template version with its checks compiled once (``check`` per record)."""

    def __init__(self, template: Template) -> None:
        self.template = template
        schema = template.json_schema()
        self.validator = Draft202012Validator(schema, format_checker=FormatChecker(["date"]))
        checks = _property_checks(schema)
        self.accepts = _instance_check(checks, tuple(schema.get("required", ())))
        self.by_name = {a.name: a for a in template.attributes}
        self.numbers = frozenset(
            a.name for a in template.attributes if a.type is AttributeType.NUMBER
        )
        self.dates = tuple(
            a for a in template.attributes if a.type is AttributeType.DATE and a.constraints
        )
        #: The per-value check's table (``None``: the schema has keywords it does not know).
        self._slots: dict[int, _Slot] | None = None
        if checks is not None:
            self._slots = {
                a.index: _Slot(
                    a.name,
                    a.type is AttributeType.NUMBER,
                    checks[a.name],
                    int(a.required),
                    a.constraints.get("min") if a.type is AttributeType.DATE else None,
                    a.constraints.get("max") if a.type is AttributeType.DATE else None,
                )
                for a in template.attributes
            }
        self._required = sum(1 for a in template.attributes if a.required)
        #: What registration stores (:meth:`normal_form`), made once.
        self.restricted = frozenset(a.name for a in template.attributes if a.restricted)
        link: dict[str, Any] = {
            "template": str(template.handle),
            "unique": list(template.unique_names),
        }
        if template.fulltext_names:
            link["fulltext"] = list(template.fulltext_names)
        self.link_data = StringData(json.dumps(link, separators=(",", ":")))
        self.reader_grant = HandleValue(
            READER_GRANT_INDEX,
            "HS_ADMIN",
            AdminData(AdminPermission.READ_VALUE, IndexedHandle(READERS_INDEX, template.handle)),
        )
        self._links: dict[HandleValue, HandleValue] = {}

    def check(self, values: Iterable[HandleValue]) -> list[Violation]:
        """Every violation of the template by the attribute values among ``values``."""
        values = tuple(values)
        if self._valid(values):
            return []
        return self._violations(values)

    def _valid(self, values: Sequence[HandleValue]) -> bool:
        """True only if every attribute value is right, checked value by value (in index
        order, as a stored record is); any doubt (false) leaves the verdict and the
        report to :meth:`_violations`."""
        slots = self._slots
        if slots is None:
            return False
        required = self._required
        last = 0
        for v in values:
            index = v.index
            if index < FIRST_ATTRIBUTE_INDEX:
                continue
            slot = slots.get(index)
            if slot is None or index <= last:
                return False
            last = index
            name, number, accepts, needed, earliest, latest = slot
            if name != v.type:
                return False
            data = v.data
            text = (
                data.text if type(data) is StringData else v.data_bytes.decode("utf-8", "replace")
            )
            if not accepts(_number(text) if number else text):
                return False
            if earliest is not None and text < earliest:
                return False
            if latest is not None and text > latest:
                return False
            required -= needed
        return required == 0

    def _violations(self, values: Sequence[HandleValue]) -> list[Violation]:
        problems: list[Violation] = []
        instance: dict[str, Any] = {}
        by_name = self.by_name
        for v in values:
            if v.index < FIRST_ATTRIBUTE_INDEX:
                continue
            data = v.data
            text = (
                data.text
                if isinstance(data, StringData)
                else v.data_bytes.decode("utf-8", "replace")
            )
            attribute = by_name.get(v.type)
            if attribute is None:
                problems.append(
                    Violation(v.type, text, "unknown", "the template has no such attribute")
                )
                continue
            if v.index != attribute.index:
                problems.append(
                    Violation(
                        v.type, text, "index", f"this attribute is at index {attribute.index}"
                    )
                )
            if v.type in instance:
                problems.append(Violation(v.type, text, "repeated", "one value per attribute"))
                continue
            instance[v.type] = _number(text) if v.type in self.numbers else text
        if not self.accepts(instance):  # the schema's own report, only when it is needed
            for error in self.validator.iter_errors(instance):
                problems.extend(_schema_violations(error, instance))
        for attribute in self.dates:
            given = instance.get(attribute.name)
            if isinstance(given, str) and is_date(given):
                text = given
                low, high = attribute.constraints.get("min"), attribute.constraints.get("max")
                if low is not None and text < low:
                    problems.append(
                        Violation(attribute.name, text, "min", f"must not be before {low}")
                    )
                if high is not None and text > high:
                    problems.append(
                        Violation(attribute.name, text, "max", f"must not be after {high}")
                    )
        return problems

    def normal_form(self, values: Sequence[HandleValue]) -> Record:
        """The record as stored: canonical link, restricted attributes hidden (no
        PUBLIC_READ, with ADMIN_READ), readers grant at its index; sorted by index."""
        restricted = self.restricted
        replaces_grant = self.template.has_restricted
        grant: HandleValue | None = None
        if replaces_grant:
            stamp = values[0].timestamp if values else 0
            grant = self.reader_grant if stamp == 0 else replace(self.reader_grant, timestamp=stamp)
        out: list[HandleValue] = []
        last = -1
        ordered = True
        for v in values:
            index = v.index
            ordered = ordered and index > last
            last = index
            if index == READER_GRANT_INDEX and replaces_grant:
                continue  # the grant below takes its place
            if grant is not None and index > READER_GRANT_INDEX:
                out.append(grant)
                grant = None
            if index == TEMPLATE_LINK_INDEX and v.type == TEMPLATE_LINK_TYPE:
                if v.data != self.link_data:
                    v = self._canonical_link(v)
            elif index >= FIRST_ATTRIBUTE_INDEX and v.type in restricted:
                hidden = Permissions((v.permissions | Permissions.ADMIN_READ) & ~_PUBLIC)
                if hidden != v.permissions:
                    v = HandleValue(
                        index, v.type, v.data, v.ttl, v.ttl_type, v.timestamp, hidden, v.references
                    )
            out.append(v)
        if grant is not None:
            out.append(grant)
        if not ordered:
            out.sort(key=_INDEX)
        return tuple(out)

    def _canonical_link(self, link: HandleValue) -> HandleValue:
        found = self._links.get(link)
        if found is None:
            found = replace(link, data=self.link_data)
            if len(self._links) < _LINK_FORMS:
                self._links[link] = found
        return found


_INDEX = attrgetter("index")
_PUBLIC = Permissions.PUBLIC_READ


#: A date as JSON Schema's ``date`` format takes it (then ``date.fromisoformat``).
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


def _property_checks(schema: Mapping[str, Any]) -> dict[str, Callable[[Any], bool]] | None:
    """A predicate per property, true only of values the schema accepts, compiled from
    the very keywords :meth:`Template.json_schema` writes (type, minimum, maximum,
    minLength, maxLength, pattern, enum, format date); ``None`` when a property uses
    any other keyword.

    They spare the full validator on valid records; a false answer hands the record to
    ``jsonschema`` for the report, so the library stays the judge of what is wrong.
    """
    known = {"type", "minimum", "maximum", "minLength", "maxLength", "pattern", "enum", "format"}
    checks: dict[str, Callable[[Any], bool]] = {}
    for name, prop in schema.get("properties", {}).items():
        if set(prop) - known or prop.get("format", "date") != "date":
            return None
        checks[name] = _property_check(prop)
    return checks


def _instance_check(
    checks: dict[str, Callable[[Any], bool]] | None, required: tuple[str, ...]
) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate true only of instances the schema accepts (``checks`` and
    ``required``, with additionalProperties false); always false without ``checks``."""
    if checks is None:
        return lambda instance: False
    table = checks

    def accepts(instance: Mapping[str, Any]) -> bool:
        for name in required:
            if name not in instance:
                return False
        for name, value in instance.items():
            check = table.get(name)
            if check is None or not check(value):
                return False
        return True

    return accepts


def _property_check(prop: Mapping[str, Any]) -> Callable[[Any], bool]:
    """One property's keywords as one compiled expression (no per-value dispatch)."""
    env: dict[str, Any] = {"bool": bool, "int": int, "float": float, "str": str, "len": len}
    if prop.get("type") == "number":
        terms = ["(type(v) is int or type(v) is float)"]
        if "minimum" in prop:
            env["low"] = prop["minimum"]
            terms.append("v >= low")
        if "maximum" in prop:
            env["high"] = prop["maximum"]
            terms.append("v <= high")
    else:
        terms = ["type(v) is str"]
        if "enum" in prop:
            env["allowed"] = frozenset(prop["enum"])
            terms.append("v in allowed")
        if "minLength" in prop:
            env["shortest"] = int(prop["minLength"])
            terms.append("len(v) >= shortest")
        if "maxLength" in prop:
            env["longest"] = int(prop["maxLength"])
            terms.append("len(v) <= longest")
        if "pattern" in prop:
            env["search"] = re.compile(prop["pattern"]).search
            terms.append("search(v) is not None")
        if prop.get("format") == "date":
            env["is_date"] = _is_iso_date
            terms.append("is_date(v)")
    env["type"] = type
    check: Callable[[Any], bool] = eval(f"lambda v: {' and '.join(terms)}", env)
    return check


def _is_iso_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _number(text: str) -> Any:
    """A number attribute's text as a JSON number, or the text (the schema says "type")."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if value == value and value not in (float("inf"), float("-inf")) else text


_RULES = {"minimum": "min", "maximum": "max", "format": "date"}


def _schema_violations(error: Any, instance: Mapping[str, Any]) -> list[Violation]:
    rule = str(error.validator)
    if rule == "required":
        missing = [n for n in error.validator_value if n not in instance]
        return [Violation(n, None, "required", "this attribute is required") for n in missing]
    name = str(error.path[0]) if error.path else "?"
    value = error.instance
    shown = None if value is None else str(value)
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return [Violation(name, shown, _RULES.get(rule, rule), message)]


__all__ = ["CompiledTemplate"]
