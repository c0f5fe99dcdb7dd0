"""How full-text search splits text into words (``storage.words``)."""

from __future__ import annotations

import pytest

from iinode.storage.words import MAX_WORD_CHARS, MAX_WORDS, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Deep-groove ball bearing", ["deep", "groove", "ball", "bearing"]),
        ("6204-2RS, 6204_ZZ", ["6204", "2rs", "zz"]),  # punctuation and _ split; repeats once
        ("STRASSE straße", ["strasse"]),  # case-folded: ß is ss
        ("\uff21\uff22\uff23\uff11\uff12", ["abc12"]),  # full-width letters and digits (NFKC)
        ("深沟球轴承", ["深沟", "沟球", "球轴", "轴承"]),  # Han: neighbouring pairs
        ("轴", ["轴"]),  # a lone Han character is a word
        ("型号ABC轴承x", ["型号", "abc", "轴承", "x"]),  # scripts mixed in one run
        ("ベアリング 베어링", ["ベア", "アリ", "リン", "ング", "베어", "어링"]),
        ("— … !!", []),
        ("", []),
    ],
)
def test_words(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_a_query_of_pairs_finds_the_longer_text() -> None:
    assert set(words("球轴承")) <= set(words("深沟球轴承 6204"))


def test_words_are_bounded_in_number_and_length() -> None:
    many = " ".join(f"w{n}" for n in range(MAX_WORDS * 2))
    assert words(many) == [f"w{n}" for n in range(MAX_WORDS)]
    long = "x" * (MAX_WORD_CHARS * 3)
    assert words(long) == ["x" * MAX_WORD_CHARS]
    assert words(long + "y") == words(long)  # cut alike in the index and in a query
