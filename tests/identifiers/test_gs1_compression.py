"""Compressed GS1 Digital Link URIs: round trips against published examples.

Each pair is an uncompressed URI and its compressed form as the GS1 Digital Link
compression examples give them (AIs in sorted order, no optimisation codes);
the standard's SHALL: a resolver is able to decompress a URI.
"""

from __future__ import annotations

import pytest

from iinode.gs1 import DigitalLinkError, compress, decompress_elements, decompress_path, parse_path
from iinode.gs1.compression import looks_compressed, to_base64

EXAMPLES = [
    ("/00/998440410914660971", "AN2yxDhfaiaw"),
    ("/01/05412345000013", "AQnYUc1gmg"),
    ("/01/05412345000013/10/ABC123", "AQnYUc1gmiCNV4JG"),
    ("/01/05412345000013/10/ABC123/21/72292641703", "AQnYUc1gmiCNV4JGQhcNT6K6c"),
    (
        "/01/05412345000013/22/AJY3095721P49/10/ABC123/21/72292641703",
        "AQnYUc1gmiCNV4JGQhcNT6K6cibQCWN9Pee9tT-PQ",
    ),
    ("/01/05412345000013/235/8TFV883a904GH%263", "AQnYUc1gmkax7ipGrOHDPC5YNI8hMz"),
    ("/253/3060077601309", "JTLIetaiHYA"),
    ("/255/5678409730535", "JVUqG5hJ5wA"),
    ("/401/0541234537290A41%26GHpp33", "QBl2DVoxZM2jVm3ZOWEFoxTR5HDgzZg"),
    ("/402/21173492661712079", "QCJZyW9mC6Z4"),
    ("/414/5060917510004", "QUSaVjC_dA"),
    ("/414/5060917510004/254/RP56J920471", "JUa0T-eifdtOO9UFEmlYwv3Q"),
    ("/417/5060917510004/7040/5KFX", "QXSaVjC_dHBAVlCrg"),
    ("/8003/04965031954585", "gAMJCAXukTMA"),
    ("/8004/0541234537290A41%26GHpp33/7040/7BVR", "cEB2CqjAAkuwatGLJm0as27JywgtGKaPI4cGbM"),
    ("/8006/054123450000130201/10/ABC123/21/72292641703", "EEarwSMhC4an0V08ADBgJH7Zo2BMg"),
    ("/8010/0541234537290A41%23GH33/8011/6639047221", "gBCVYNWjFkzaNWbdk5YQWjFHHkM2cAI0xdvpGo"),
    ("/8017/817019610850151481/8019/4003812", "gBe1ajAd9ATDmAGXPRfk"),
    ("/8018/411369833821910265", "gBhbV6rzBENPk"),
]
PARTIAL = [
    ("/01/05412345000013/10/ABC123", "/01/05412345000013/EEarwSM"),
    ("/414/5060917510004/254/RP56J920471", "/414/5060917510004/JUa0T-eifdtOO9Q"),
    ("/8018/411369833821910265/8019/4003812", "/8018/411369833821910265/gBlz0X5A"),
]


@pytest.mark.parametrize(("path", "compressed"), EXAMPLES)
def test_decompress_published_examples(path: str, compressed: str) -> None:
    link, other = decompress_path(f"/{compressed}")
    assert link.path == path
    assert other == {}


@pytest.mark.parametrize(("path", "compressed"), EXAMPLES)
def test_compress_published_examples(path: str, compressed: str) -> None:
    assert compress(parse_path(path)) == compressed


@pytest.mark.parametrize(("path", "partial"), PARTIAL)
def test_partially_compressed(path: str, partial: str) -> None:
    assert decompress_path(partial)[0].path == path


def test_optimisation_codes_and_foreign_pairs_round_trip() -> None:
    link = parse_path("/01/05412345000013/10/ABC123/21/xyz", [("17", "290331")])
    text = compress(link, optimise=True, other={"arv": "true"})
    assert text != compress(link)  # code 1A stands for 01, 10, 21, 17
    back, other = decompress_path(f"/{text}")
    assert back == link
    assert other == {"arv": "true"}


def test_values_keep_leading_zeros_and_every_encoding() -> None:
    for serial in ("0042", "abcdef", "ABCDEF", "Ab-_9", "A&B+C"):
        link = parse_path(f"/01/05412345000013/21/{serial.replace('&', '%26').replace('+', '%2B')}")
        assert decompress_path("/" + compress(link))[0] == link


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("AQnYUc1g", "ends inside a value"),
        ("sAAAAAAAAA", "no optimisation is defined for code B0"),
        ("JgAAAAAAAA", "AIs starting 26 are not defined"),
        ("AQnYUc1gmg!", "only A-Z"),
    ],
)
def test_broken_compressed_paths(text: str, reason: str) -> None:
    with pytest.raises(DigitalLinkError, match=reason):
        decompress_elements(text)


def test_checks_apply_after_decompression() -> None:
    bad = to_base64("00000001" + format(5412345000014, "047b"))  # AI 01, wrong check digit
    with pytest.raises(DigitalLinkError, match="check digit"):
        decompress_path(f"/{bad}")
    assert not looks_compressed("healthz")
    assert looks_compressed("AQnYUc1gmg")
