import pytest

from iinode.errors import InvalidHandle
from iinode.identifiers import HandleName, IndexedHandle, Prefix


@pytest.mark.parametrize(
    ("text", "prefix", "suffix"),
    [
        ("88.118.8/JXDY2106023", "88.118.8", "JXDY2106023"),
        ("88.abc.8/Mixed-Case", "88.ABC.8", "Mixed-Case"),
        ("0.na/88.118.8", "0.NA", "88.118.8"),
        ("0.NA/88.abc", "0.NA", "88.ABC"),
        ("88/a/b/c", "88", "a/b/c"),
        ("88.1/零件-01", "88.1", "零件-01"),
    ],
)
def test_parse_normalises_prefix_not_suffix(text: str, prefix: str, suffix: str) -> None:
    name = HandleName.parse(text)
    assert (name.prefix_text, name.suffix) == (prefix, suffix)
    assert HandleName.parse(str(name)) == name


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("88.118.8", "no '/'"),
        ("/abc", "prefix is empty"),
        ("88.118.8/", "empty suffix"),
        ("88..8/x", "empty segment"),
        ("88.1 8/x", "may only contain"),
        ("88.1/a\x00b", "control character"),
        ("0.NA/88/1", "must not contain '/'"),
        ("88/" + "x" * 2000, "longer than"),
    ],
)
def test_invalid_handles_say_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidHandle, match=reason):
        HandleName.parse(text)


def test_prefix_hierarchy() -> None:
    p = Prefix("88.118.8")
    assert [a.text for a in p.ancestors()] == ["88.118.8", "88.118", "88"]
    assert p.parent == Prefix("88.118")
    assert Prefix("88").parent is None
    assert p.is_within(Prefix("88.118"))
    assert not Prefix("88.1180").is_within(Prefix("88.118"))
    assert str(p.na_handle) == "0.NA/88.118.8"
    assert HandleName.parse("0.NA/88.118.8").authority == p
    assert HandleName.parse("88.118.8/X").authority == p


def test_indexed_handle() -> None:
    ref = IndexedHandle.parse("300:0.NA/88.118.8")
    assert ref.index == 300
    assert str(ref.handle) == "0.NA/88.118.8"
    for bad in ("0.NA/88", "x:0.NA/88", "0:0.NA/88"):
        with pytest.raises(InvalidHandle):
            IndexedHandle.parse(bad)
