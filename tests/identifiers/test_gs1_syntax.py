"""GS1 Digital Link URI syntax: AI table, check digits, path grammar (SHALL: validate, 400)."""

from __future__ import annotations

import pytest

from iinode.gs1 import (
    AI_TABLE,
    PRIMARY_KEYS,
    DigitalLink,
    DigitalLinkError,
    check_digit,
    parse_path,
)
from iinode.gs1.ai import validate

# Keys with valid check digits, from GS1 examples.
VALID = [
    "/01/09506000134352",
    "/01/09506000134352/10/ABC123",
    "/01/09506000134352/22/AJY3095721P49/10/ABC123/21/72292641703",
    "/01/05412345000013/235/8TFV883a904GH%263",
    "/00/998440410914660971",
    "/253/3060077601309",
    "/253/3060077601309SERIAL7",
    "/255/5678409730535",
    "/401/0541234537290A41%26GHpp33",
    "/402/21173492661712079",
    "/414/5060917510004",
    "/414/5060917510004/254/RP56J920471",
    "/417/5060917510004/7040/5KFX",
    "/8003/04965031954585",
    "/8004/0541234537290A41%26GHpp33/7040/7BVR",
    "/8006/054123450000130201/10/ABC123",
    "/8010/0541234537290A41%23GH33/8011/6639047221",
    "/8017/817019610850151481/8019/4003812",
    "/8018/411369833821910265",
]


@pytest.mark.parametrize("path", VALID)
def test_valid_paths_parse_and_round_trip(path: str) -> None:
    link = parse_path(path)
    assert link.path == path
    assert parse_path(link.path) == link


def test_check_digit_is_gs1_mod10() -> None:
    assert check_digit("0950600013435") == 2
    assert check_digit("99844041091466097") == 1
    assert check_digit("506091751000") == 4


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/01/09506000134353", "check digit 3 is wrong"),
        ("/00/998440410914660972", "check digit"),
        ("/414/5060917510005", "check digit"),
        ("/8006/054123450000140201", "check digit"),
        ("/8003/04965031954586", "check digit"),
        ("/01/0950600013", "too short"),
        ("/01/095060001343520", "too long"),
        ("/01/0950600013435X", "digits"),
        ("/01/09506000134352/10/ABCDEFGHIJKLMNOPQRSTU", "at most 20"),
        ("/01/09506000134352/10/AB%20C", "character set 82"),
        ("/8010/0541234537290a41", "character set 39"),
        ("/01/09506000134352/21/X/10/ABC", "out of order"),
        ("/01/09506000134352/10/A/10/B", "out of order or repeated"),
        ("/01/09506000134352/8011/5", "not a key qualifier of primary key 01"),
        ("/414/5060917510004/10/ABC", "not a key qualifier of primary key 414"),
        ("/10/ABC", "not a GS1 primary key"),
        ("/9876/123", "unknown GS1 Application Identifier"),
        ("/01/09506000134352/10", "AI/value pairs"),
        ("/gtin/09506000134352", "not a GS1 Application Identifier"),
        ("/", "no GS1 primary key"),
    ],
)
def test_invalid_paths_say_why(path: str, reason: str) -> None:
    with pytest.raises(DigitalLinkError, match=reason):
        parse_path(path)


def test_query_attributes_are_validated_and_keys_refused() -> None:
    link = parse_path("/01/09506000134352", [("17", "290331"), ("3103", "000189"), ("foo", "x")])
    assert link.attributes == (("17", "290331"), ("3103", "000189"))
    assert link.uri("https://r.example") == (
        "https://r.example/01/09506000134352?17=290331&3103=000189"
    )
    with pytest.raises(DigitalLinkError, match="too short"):
        parse_path("/01/09506000134352", [("17", "2903")])
    with pytest.raises(DigitalLinkError, match="belongs in the path"):
        parse_path("/01/09506000134352", [("10", "ABC")])
    with pytest.raises(DigitalLinkError, match="unknown"):
        parse_path("/01/09506000134352", [("9876", "1")])


def test_short_gtins_are_padded_and_trailing_slash_tolerated() -> None:
    assert parse_path("/01/9506000134352/").path == "/01/09506000134352"
    gtin8 = "9501101" + str(check_digit("9501101"))
    assert parse_path(f"/01/{gtin8}").path == f"/01/000000{gtin8}"
    with pytest.raises(DigitalLinkError):
        parse_path("/01/95060001343")  # 11 digits is no GTIN


def test_values_are_percent_decoded_and_reencoded() -> None:
    link = parse_path("/01/09506000134352/10/A%2FB")
    assert link.qualifiers == (("10", "A/B"),)
    assert link.path == "/01/09506000134352/10/A%2FB"


def test_levels_walk_up_to_the_primary_key() -> None:
    link = parse_path("/01/09506000134352/22/V1/10/L1/21/S1")
    assert [lvl.path for lvl in link.levels()] == [
        "/01/09506000134352/22/V1/10/L1/21/S1",
        "/01/09506000134352/22/V1/10/L1",
        "/01/09506000134352/22/V1",
        "/01/09506000134352",
    ]


def test_table_is_data_and_covers_every_key_and_qualifier() -> None:
    for key, slots in PRIMARY_KEYS.items():
        assert key in AI_TABLE
        for slot in slots:
            assert all(ai in AI_TABLE for ai in slot)
    assert AI_TABLE["8003"].format == "N14+X..16"
    assert AI_TABLE["3103"].format == "N6"
    validate("3103", "000189")
    with pytest.raises(DigitalLinkError):
        DigitalLink(("01", "09506000134353"))


def test_public_names_and_stdlib_only() -> None:
    import subprocess
    import sys

    import iinode.gs1 as gs1

    assert all(hasattr(gs1, name) for name in gs1.__all__)
    assert {"DigitalLink", "Link", "parse_path", "compress", "decompress_path"} <= set(gs1.__all__)
    code = (
        "import sys, iinode.gs1; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'httpx', 'orjson') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
