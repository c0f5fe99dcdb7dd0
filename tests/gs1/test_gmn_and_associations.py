"""GS1 syntax rules beyond a single element: the GMN check character pair (General
Specifications 7.9.6) and the invalid pairs and mandatory associations of AIs (the
GS1 Barcode Syntax Dictionary's ``ex`` and ``req``) as they apply to Digital Link URIs.

Golden vectors: the General Specifications' GMN example and the check-pair vectors of
the GS1 Syntax Dictionary's linter tests; the Digital Link URIs of the GS1 Digital
Link standard and of GS1's syntax engine tests, with the verdict those give.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from iinode.gs1 import DigitalLink, DigitalLinkError, check_digit, parse_path
from iinode.gs1.ai import AI_TABLE, PRIMARY_KEYS, check_pair, validate
from iinode.gs1.associations import NOT_DATA_ATTRIBUTES, RULES, check_associations, matches
from iinode.gs1.compression import compress, decompress_path

# -- the GMN check character pair ------------------------------------------------------
GOOD_PAIRS = [
    "1987654Ad4X4bL5ttr2310c2K",  # General Specifications 7.9.6 worked example
    "12345678901234567890123NT",
    "12345_ABCDEFGHIJKLMCP",
    "12345_NOPQRSTUVWXYZDN",
    "12345_abcdefghijklmN3",
    "12345_nopqrstuvwxyzP2",
    "12345_!\"%&'()*+,-./LC",
    "12345_0123456789:;<=>?62",
    "7907665Bm8v2AB",
    "97850l6KZm0yCD",
    "225803106GSpEF",
    "149512464PM+GH",
    "00000!HV",
    "99999zzzzzzzzzzzzzzzzzzT2",
    "22",  # nothing before the pair: sum 0, characters 0 and 0
]


@pytest.mark.parametrize("value", GOOD_PAIRS)
def test_check_pair_golden_vectors(value: str) -> None:
    assert check_pair(value[:-2]) == value[-2:]


@pytest.mark.parametrize("value", ["1987654Ad4X4bL5ttr2310cXK", "1987654Ad4X4bL5ttr2310c2X", "33"])
def test_wrong_pairs_differ(value: str) -> None:
    assert check_pair(value[:-2]) != value[-2:]


def test_every_single_change_of_a_gmn_is_caught() -> None:
    gmn = "1987654Ad4X4bL5ttr2310c2K"
    for i in range(len(gmn) - 2):
        for c in "0aZ_!":
            changed = gmn[:i] + c + gmn[i + 1 :]
            if changed != gmn:
                assert check_pair(changed[:-2]) != "2K", changed


def test_gmn_in_a_digital_link() -> None:
    link = parse_path("/8013/1987654Ad4X4bL5ttr2310c2K")
    assert link.primary == ("8013", "1987654Ad4X4bL5ttr2310c2K")
    with pytest.raises(DigitalLinkError, match=r"check character pair '2X' is wrong.*'2K'"):
        parse_path("/8013/1987654Ad4X4bL5ttr2310c2X")
    with pytest.raises(DigitalLinkError, match="GS1 Company Prefix"):
        parse_path("/8013/ABCD654Ad4X4bL5ttr2310c2K")
    with pytest.raises(DigitalLinkError, match="at most 25"):
        parse_path("/8013/1987654Ad4X4bL5ttr2310c22K")
    # The pair is over character set 82: a character outside it is named first.
    with pytest.raises(DigitalLinkError, match="character set 82"):
        parse_path("/8013/1987654Ad4X4bL5ttr%20310c2K")


def test_mudi_needs_a_non_digit() -> None:
    validate("8014", "1987654Ad4X4bL5ttr2310c2K")
    digits = "1000000000029"
    assert check_pair(digits) == "52"  # an all-digit value with a correct pair
    with pytest.raises(DigitalLinkError, match="must not be all digits"):
        validate("8014", digits + "52")


def test_company_prefix_starts_keys_of_letters_and_digits() -> None:
    validate("8004", "0541234537290A41&GHpp33")
    for ai in ("401", "8004", "8010", "8013", "7023"):
        with pytest.raises(DigitalLinkError, match="GS1 Company Prefix"):
            validate(ai, "95A1" + "22")


# -- invalid pairs and mandatory associations -------------------------------------------
def split(uri: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(uri)
    return parts.path, parse_qsl(parts.query)


VALID = [
    # GS1 Digital Link standard examples
    "/01/09520123456788/10/ABC1/21/12345?17=180426",
    "/01/09520123456788?3103=000195&3922=0299&17=201225",
    "/00/952012345678912345?02=09520123456788&37=25&10=ABC123",
    "/414/9520123456788/254/32a%2Fb",
    # a second key as a data attribute; an alternate qualifier frees 10 for the query
    "/8004/9520614141234567?01=09520123456788",
    "/01/09520123456788/235/XYZ?10=ABC123",
    "/253/9526064000028000001?01=12312312312326&99=000001&10=DEF&95=INT",
    # the measure families: one per family, several families together
    "/01/09520123456788?3103=000195&3922=0299&3303=000200",
    "/01/09520123456788/21/S1?250=SEC1",
    "/415/5412345000013/8020/REF123",
    "/00/952012345678912345?02=09520123456788&37=25&403=ROUTE1&4300=ACME",
    "/8017/817019610850151481/8019/4003812?7241=01",
    "/8013/1987654Ad4X4bL5ttr2310c2K",
]

INVALID = [
    ("/01/09520123456788?10=ABC123", "AI 10 is a key qualifier of 01 here; it belongs in the path"),
    ("/01/09520123456788/10/ABC1?22=V1", "AI 22 is a key qualifier of 01 here"),
    ("/01/09520123456788/10/A?99=X&01=09520123456788", "AI 01 appears twice"),
    ("/01/09520123456788/10/A?99=X&10=A", "AI 10 appears twice"),
    ("/01/09520123456788/235/T?21=S", "AI 21 (SERIAL) is not permitted as a GS1 Digital Link data"),
    ("/01/09520123456788?8200=https://example.com", "AI 8200 (PRODUCT URL) is not permitted"),
    ("/01/09520123456788/22/V/235/T", "key qualifiers 22, 235 cannot be combined after 01"),
    ("/01/09520123456788/21/S/22/V", "out of order"),
    ("/00/952012345678912345?02=09520123456788", "AI 02 (CONTENT) needs 37"),
    ("/00/952012345678912345?37=25", "AI 37 (COUNT) needs 00 with 02 or 00 with 8026"),
    ("/01/09520123456788?02=09520123456788&37=5", "AI 01 (GTIN) and AI 37 (COUNT) must not"),
    ("/01/09520123456788?255=5412345000013", "AI 01 (GTIN) and AI 255"),
    ("/8006/095201234567880102/22/V1", "AI 22 (CPV) needs 01"),
    ("/01/09520123456788?3922=0299", "AI 3922 (AMOUNT) needs 01 with 30 or 01 with 31nn"),
    ("/01/09520123456788?3103=000195&3102=001950", "AI 3102 (MEASURE) and AI 3103"),
    ("/01/09520123456788?250=SEC1", "AI 250 (SECONDARY SERIAL) needs 01 with 21"),
    ("/415/5412345000013", "AI 415 (PAY TO) needs 8020"),
    ("/414/9520123456788?4300=ACME", "AI 4300 (SHIP TO COMP) needs 00"),
    ("/00/952012345678912345?7241=01", "AI 7241 (AIDC MEDIA TYPE) needs 8017 or 8018"),
    ("/8017/817019610850151481?8018=411369833821910265", "AI 8017 (GSRN - PROVIDER) and AI 8018"),
]


@pytest.mark.parametrize("uri", VALID)
def test_valid_links(uri: str) -> None:
    path, query = split(uri)
    link = parse_path(path, query)
    assert parse_path(link.path, link.attributes) == link


@pytest.mark.parametrize(("uri", "reason"), INVALID)
def test_invalid_links_say_why(uri: str, reason: str) -> None:
    path, query = split(uri)
    with pytest.raises(DigitalLinkError) as caught:
        parse_path(path, query)
    assert reason in caught.value.message


def test_ancestors_of_a_valid_link_need_not_be_complete() -> None:
    """Inheritance walks up to keys that alone would miss an association (a PAY TO GLN
    needs its REF No.); the levels are lookups, not URIs a client sent."""
    link = parse_path("/415/5412345000013/8020/REF123")
    assert [lvl.path for lvl in link.levels()] == [
        "/415/5412345000013/8020/REF123",
        "/415/5412345000013",
    ]


def test_compressed_links_obey_the_same_rules() -> None:
    ok = parse_path("/01/09520123456788/235/XYZ", [("10", "ABC123")])
    assert decompress_path("/" + compress(ok))[0] == ok
    # A link built without the association check (as a level is) compresses, but a
    # client sending it compressed gets the same refusal as uncompressed.
    incomplete = DigitalLink(("00", "952012345678912345"), (), (("02", "09520123456788"),))
    with pytest.raises(DigitalLinkError, match=r"AI 02 .* needs 37"):
        decompress_path("/" + compress(incomplete))


def test_patterns_and_self() -> None:
    assert matches("31nn", "3103")
    assert matches("392n", "3925")
    assert not matches("392n", "39250")
    assert not matches("01", "010")
    check_associations({"01": "09520123456788", "3103": "000195"})  # 310n does not exclude 3103
    with pytest.raises(DigitalLinkError, match="3940"):
        check_associations({"255": "5412345000013", "3940": "0010", "3941": "0020"})


def test_rules_name_only_known_ais() -> None:
    for ai, rules in RULES.items():
        assert ai in AI_TABLE, ai
        patterns = [p for groups in rules.requires for g in groups for p in g]
        for pattern in (*patterns, *rules.excludes):
            assert any(matches(pattern, known) for known in AI_TABLE), (ai, pattern)
    assert set(AI_TABLE) >= NOT_DATA_ATTRIBUTES
    for key, alternatives in PRIMARY_KEYS.items():
        for alt in alternatives:
            assert len(set(alt)) == len(alt)
            assert key not in alt


def test_golden_check_digits_of_the_vectors() -> None:
    assert check_digit("541234500001") == 3
    assert check_digit("952012345678") == 8
