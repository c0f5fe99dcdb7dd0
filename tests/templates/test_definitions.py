"""Template definitions: GB/T 4754 classes, attribute rules, the compiled schema."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iinode.errors import ValueInvalid
from iinode.identifiers import HandleValue, StringData
from iinode.node.template_check import CompiledTemplate
from iinode.node.templates import (
    Template,
    TemplateViolations,
    industry_levels,
)
from templates.conftest import BEARING, INDEX, bearing


def test_industry_code_gives_four_levels() -> None:
    assert industry_levels("C3451") == {
        "section": "C", "division": "34", "group": "345", "class": "3451"
    }  # fmt: skip
    assert industry_levels("c-34-345-3451")["class"] == "3451"
    assert industry_levels("A0111")["division"] == "01"


@pytest.mark.parametrize(
    "code",
    ["", "C345", "C34511", "3451", "Z3451", "A3451", "C0111", "C-34-356-3561", "C-34-345-3461"],
)
def test_bad_industry_codes_are_refused(code: str) -> None:
    with pytest.raises(ValueInvalid):
        industry_levels(code)


def test_definition_round_trips_with_indexes_from_2000() -> None:
    t = Template.from_json(BEARING, prefix="88.118.8")
    assert [a.index for a in t.attributes] == list(INDEX.values())
    assert str(t.handle) == "88.118.8/template/bearing/1"
    again = Template.from_definition(t.definition_bytes())
    assert again == t
    assert t.to_json()["industry"]["group"] == "345"
    assert t.unique_names == ("serial",)
    assert t.has_restricted


def test_every_problem_of_a_definition_is_reported_at_once() -> None:
    doc = bearing(
        industry="Q9999",
        attributes=[
            {"name": "Bad Name", "type": "string"},
            {"name": "size", "type": "weird"},
            {"name": "low", "type": "number", "index": 1500},
            {"name": "grade", "type": "enum", "constraints": {"values": []}},
            {"name": "url", "type": "string"},
            {"name": "lot", "type": "string", "constraints": {"pattern": "(", "min": 1}},
        ],
    )
    with pytest.raises(TemplateViolations) as refused:
        Template.from_json(doc, prefix="88.118.8")
    rules = {(v.attribute, v.rule) for v in refused.value.violations}
    assert rules >= {
        ("industry", "industry"),
        ("attributes[0]", "name"),
        ("size", "type"),
        ("low", "index"),
        ("grade", "values"),
        ("url", "name"),
        ("lot", "pattern"),
        ("lot", "constraints"),
    }, rules


def values(**attrs: str) -> list[HandleValue]:
    return [HandleValue(INDEX.get(k, 2999), k, StringData(v)) for k, v in attrs.items()]


def test_a_record_gets_every_violation() -> None:
    compiled = CompiledTemplate(Template.from_json(BEARING, prefix="88.118.8"))
    problems = compiled.check(
        values(model="bad model", diameter="0", made="1999-12-31", grade="P9", maker="nohandle",
               colour="red")
    )  # fmt: skip
    found = {(v.attribute, v.rule) for v in problems}
    assert found == {
        ("model", "pattern"),
        ("diameter", "min"),
        ("made", "min"),
        ("grade", "enum"),
        ("maker", "pattern"),
        ("colour", "unknown"),
        ("serial", "required"),
    }, found
    assert compiled.check(values(model="X1", serial="1", made="2024-02-29")) == []
    assert {v.rule for v in compiled.check(values(model="X1", serial="1", made="2023-02-29"))} == {
        "date"
    }


#: Instances of the bearing schema, right and wrong in every way the keywords allow.
_texts = st.one_of(
    st.sampled_from(
        ["X1", "6204-2RS", "a b", "", "P0", "P9", "88.1/x", "2024-01-31", "2024-13-01"]
    ),
    st.text(max_size=40),
)
_anything = st.one_of(
    _texts, st.integers(-10, 1000), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*INDEX, "other"]), _anything, max_size=8))
def test_the_compiled_predicate_agrees_with_jsonschema(instance: dict[str, Any]) -> None:
    assert COMPILED.accepts(instance) == COMPILED.validator.is_valid(instance)


COMPILED = CompiledTemplate(Template.from_json(BEARING, prefix="88.118.8"))


_attribute_values = st.lists(
    st.tuples(
        st.sampled_from([*INDEX, "other"]),
        st.sampled_from([*INDEX.values(), 2999, 3000]),
        st.one_of(_texts, st.integers(-10, 1000).map(str), st.just("1e400")),
    ),
    max_size=9,
)


@settings(max_examples=400, deadline=None)
@given(_attribute_values)
def test_the_value_by_value_check_agrees_with_the_full_one(
    given_values: list[tuple[str, int, str]],
) -> None:
    """A record in index order (as stored) passes the quick check exactly when the full
    check finds nothing; out of order, it passes only if the full check finds nothing."""
    given = [HandleValue(1, "URL", StringData("http://f.cn/x"))] + [
        HandleValue(index, name, StringData(text)) for name, index, text in given_values
    ]
    fine = COMPILED._violations(given) == []
    assert COMPILED._valid(sorted(given, key=lambda v: v.index)) == fine
    assert not COMPILED._valid(given) or fine
    assert (COMPILED.check(given) == []) == fine


def test_the_normal_form_hides_replaces_and_sorts() -> None:
    from iinode.identifiers import AdminData, Permissions

    stray_grant = HandleValue(1002, "HS_ADMIN", COMPILED.reader_grant.data)
    assert isinstance(stray_grant.data, AdminData)
    given_values = [
        HandleValue(INDEX["cost"], "cost", StringData("12.5")),
        HandleValue(1001, "II_TEMPLATE", StringData("88.118.8/template/bearing/1")),
        HandleValue(1, "URL", StringData("http://f.cn/x")),
        stray_grant,
        HandleValue(INDEX["model"], "model", StringData("X1")),
    ]
    for values in (given_values, sorted(given_values, key=lambda v: v.index)):
        stored = COMPILED.normal_form(values)
        assert [v.index for v in stored] == [1, 1001, 1002, INDEX["model"], INDEX["cost"]]
        assert stored[1].data == COMPILED.link_data
        assert stored[2] == COMPILED.reader_grant
        assert stored[4].permissions == Permissions.ADMIN_READ | (
            given_values[0].permissions & ~Permissions.PUBLIC_READ
        )
        assert stored[3] is values[[v.index for v in values].index(INDEX["model"])]
