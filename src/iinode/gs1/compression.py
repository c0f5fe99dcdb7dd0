"""Compressed GS1 Digital Link URIs (GS1 Digital Link: Compression).

A compressed path is one segment of the URI-safe base-64 alphabet carrying a bit
string.  The bit string is a sequence of elements; each starts with the AI's
digits as hexadecimal nibbles (the first two name how many digits the AI has,
:data:`AI_LENGTHS`), or with an optimisation code naming a fixed sequence of AIs
(:data:`OPTIMISATIONS`), or with the nibble ``F`` for a non-GS1 ``key=value``.
Values follow their AI table components: a fixed numeric part as a binary number
of ``ceil(n·log2 10)`` bits; a variable numeric part after a length field of
``ceil(log2 max)`` bits; an alphanumeric part after a 3-bit encoding (digits,
lower hex, upper hex, base-64 alphabet, 7-bit ASCII) and, if variable, a length.

A partially compressed path keeps the primary key uncompressed and compresses
the rest: ``/01/05412345000013/EEarwSM``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from iinode.gs1.ai import AI_TABLE, Component, DigitalLinkError
from iinode.gs1.syntax import DigitalLink, from_elements

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_HEX = "0123456789ABCDEF"
SAFE64 = re.compile(r"^[A-Za-z0-9_-]+$")
_LOWER_HEX = re.compile(r"^[0-9a-f]+$")
_UPPER_HEX = re.compile(r"^[0-9A-F]+$")

#: Number of digits of an AI, by its first two digits (table P of the standard).
AI_LENGTHS: dict[str, int] = {
    "00": 2, "01": 2, "02": 2, "10": 2, "11": 2, "12": 2, "13": 2, "15": 2, "16": 2, "17": 2,
    "20": 2, "21": 2, "22": 2, "23": 3, "24": 3, "25": 3, "30": 2, "31": 4, "32": 4, "33": 4,
    "34": 4, "35": 4, "36": 4, "37": 2, "39": 4, "40": 3, "41": 3, "42": 3, "43": 4, "70": 4,
    "71": 3, "72": 4, "80": 4, "81": 4, "82": 4, "90": 2, "91": 2, "92": 2, "93": 2, "94": 2,
    "95": 2, "96": 2, "97": 2, "98": 2, "99": 2,
}  # fmt: skip

#: Two-nibble codes standing for a sequence of AIs (table Opt of the standard).
OPTIMISATIONS: dict[str, tuple[str, ...]] = {
    "0A": ("01", "22"), "0B": ("01", "10"), "0C": ("01", "21"), "0D": ("01", "17"),
    "0E": ("01", "7003"), "0F": ("01", "30"), "1A": ("01", "10", "21", "17"),
    "1B": ("01", "15"), "1C": ("01", "11"), "1D": ("01", "16"), "1E": ("01", "91"),
    "1F": ("01", "10", "15"),
    **{f"2{h}": ("01", f"310{i}") for i, h in enumerate("ABCDEF")},
    **{f"3{h}": ("01", f"320{i}") for i, h in enumerate("ABCDEF")},
    "9A": ("8010", "8011"), "9B": ("8017", "8019"), "9C": ("8018", "8019"), "9D": ("414", "254"),
    **{f"A{i}": ("01", f"392{i}") for i in range(10)},
    **{f"C{i}": ("255", f"390{i}") for i in range(10)},
    **{f"C{h}": ("255", f"394{i}") for i, h in enumerate("ABCD")},
}  # fmt: skip


def value_bits(digits: int) -> int:
    """Bits of a binary number holding ``digits`` decimal digits."""
    return math.ceil(digits * math.log2(10) + 0.01)


def length_bits(maximum: int) -> int:
    """Bits of a length field counting up to ``maximum``."""
    return math.ceil(math.log2(maximum) + 0.01)


# -- bits to text ----------------------------------------------------------------------
def to_base64(bits: str) -> str:
    bits += "0" * (-len(bits) % 6)
    return "".join(ALPHABET[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6))


def from_base64(text: str) -> str:
    try:
        return "".join(format(_INDEX[c], "06b") for c in text)
    except KeyError:
        raise DigitalLinkError("a compressed Digital Link uses only A-Z a-z 0-9 - _") from None


class _Reader:
    def __init__(self, bits: str) -> None:
        self.bits = bits
        self.pos = 0

    def take(self, n: int) -> str:
        if self.pos + n > len(self.bits):
            raise DigitalLinkError("the compressed Digital Link ends inside a value")
        out = self.bits[self.pos : self.pos + n]
        self.pos += n
        return out

    def number(self, n: int) -> int:
        return int(self.take(n), 2) if n else 0

    def nibble(self) -> str:
        return _HEX[self.number(4)]

    @property
    def left(self) -> int:
        return len(self.bits) - self.pos


# -- encoding of values --------------------------------------------------------------
def _encoding(text: str) -> int:
    if text.isascii() and text.isdigit():
        return 0
    if _UPPER_HEX.match(text):
        return 2
    if _LOWER_HEX.match(text):
        return 1
    if SAFE64.match(text):
        return 3
    return 4


def _encode_text(text: str, length_field: str) -> str:
    enc = _encoding(text)
    head = format(enc, "03b") + length_field
    if enc == 0:
        return head + format(int(text), f"0{value_bits(len(text))}b")
    if enc in (1, 2):
        return head + "".join(format(int(c, 16), "04b") for c in text)
    if enc == 3:
        return head + "".join(format(_INDEX[c], "06b") for c in text)
    if any(ord(c) > 127 for c in text):
        raise DigitalLinkError(f"{text!r} cannot be compressed: not ASCII")
    return head + "".join(format(ord(c), "07b") for c in text)


def _decode_text(r: _Reader, enc: int, count: int) -> str:
    if enc == 0:
        return str(r.number(value_bits(count))).rjust(count, "0") if count else ""
    if enc in (1, 2):
        text = "".join(r.nibble() for _ in range(count))
        return text.lower() if enc == 1 else text
    if enc == 3:
        return "".join(ALPHABET[r.number(6)] for _ in range(count))
    if enc == 4:
        return "".join(chr(r.number(7)) for _ in range(count))
    raise DigitalLinkError(f"unknown value encoding {enc} in a compressed Digital Link")


def _encode_value(ai: str, value: str) -> str:
    out = []
    rest = value
    for comp in AI_TABLE[ai].components:
        if comp.variable:
            part, rest = rest, ""
        else:
            part, rest = rest[: comp.length], rest[comp.length :]
        out.append(_encode_component(comp, part))
    return "".join(out)


def _encode_component(comp: Component, part: str) -> str:
    if comp.numeric:
        if not comp.variable:
            return format(int(part), f"0{value_bits(comp.length)}b")
        size = format(len(part), f"0{length_bits(comp.length)}b")
        return size + format(int(part or "0"), f"0{value_bits(len(part))}b")
    size = format(len(part), f"0{length_bits(comp.length)}b") if comp.variable else ""
    return _encode_text(part, size)


def _decode_value(r: _Reader, ai: str) -> str:
    entry = AI_TABLE.get(ai)
    if entry is None:
        raise DigitalLinkError(f"the compressed Digital Link holds unknown AI {ai}")
    out = []
    for comp in entry.components:
        if comp.numeric:
            count = r.number(length_bits(comp.length)) if comp.variable else comp.length
            digits = r.number(value_bits(count))
            out.append(str(digits).rjust(count, "0") if count else "")
        else:
            enc = r.number(3)
            count = r.number(length_bits(comp.length)) if comp.variable else comp.length
            out.append(_decode_text(r, enc, count))
    return "".join(out)


# -- whole paths -----------------------------------------------------------------------
def decompress_elements(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """AI values and non-GS1 ``key=value`` pairs of one compressed segment."""
    r = _Reader(from_base64(text))
    elements: dict[str, str] = {}
    other: dict[str, str] = {}
    while r.left > 8:
        h1, h2 = r.nibble(), r.nibble()
        head = h1 + h2
        if head.isdigit():
            size = AI_LENGTHS.get(head)
            if size is None:
                raise DigitalLinkError(f"AIs starting {head} are not defined (reserved range)")
            ai = head + "".join(r.nibble() for _ in range(size - 2))
            if not ai.isdigit():
                raise DigitalLinkError(f"AI {ai} of a compressed Digital Link is not all digits")
            sequence: tuple[str, ...] = (ai,)
        elif head in OPTIMISATIONS:
            sequence = OPTIMISATIONS[head]
        elif h1 == "F":
            r.pos -= 4
            key_length = r.number(7)
            key = "".join(ALPHABET[r.number(6)] for _ in range(key_length))
            enc = r.number(3)
            other[key] = _decode_text(r, enc, r.number(7))
            continue
        else:
            raise DigitalLinkError(f"no optimisation is defined for code {head}")
        for ai in sequence:
            if ai in elements:
                raise DigitalLinkError(f"AI {ai} appears twice in the compressed Digital Link")
            elements[ai] = _decode_value(r, ai)
    if not elements:
        raise DigitalLinkError("the compressed Digital Link holds no GS1 element")
    return elements, other


def decompress_path(raw_path: str) -> tuple[DigitalLink, dict[str, str]]:
    """A compressed (``/{c}``) or partially compressed (``/{ai}/{key}/{c}``) path."""
    parts = raw_path.strip("/").split("/")
    if len(parts) == 1:
        elements, other = decompress_elements(parts[0])
    elif len(parts) == 3 and parts[0].isdigit():
        elements, other = decompress_elements(parts[2])
        if parts[0] in elements:
            raise DigitalLinkError(f"AI {parts[0]} is both in the path and compressed")
        elements = {parts[0]: parts[1], **elements}
    else:
        raise DigitalLinkError("not a compressed GS1 Digital Link path")
    return from_elements(elements), other


def compress(link: DigitalLink, *, optimise: bool = False, other: Mapping[str, str] = {}) -> str:
    """The compressed path segment of ``link`` (AIs in sorted order, as published examples).

    With ``optimise`` the optimisation codes replace AI sequences they cover.
    """
    elements = link.elements()
    keys = sorted(elements)
    bits = []
    if optimise:
        for code, sequence in sorted(OPTIMISATIONS.items(), key=lambda kv: -len(kv[1])):
            if all(ai in keys for ai in sequence):
                bits.append(format(int(code, 16), "08b"))
                bits.extend(_encode_value(ai, elements[ai]) for ai in sequence)
                keys = [k for k in keys if k not in sequence]
    for ai in keys:
        bits.append("".join(format(int(d), "04b") for d in ai))
        bits.append(_encode_value(ai, elements[ai]))
    for key, value in other.items():
        if not SAFE64.match(key) or len(key) > 127 or len(value) > 127:
            raise DigitalLinkError(f"non-GS1 pair {key!r} cannot be compressed")
        bits.append(
            "1111" + format(len(key), "07b") + "".join(format(_INDEX[c], "06b") for c in key)
        )
        bits.append(_encode_text(value, format(len(value), "07b")))
    return to_base64("".join(bits))


def looks_compressed(segment: str) -> bool:
    """Cheap test before trying: long enough and only the base-64 alphabet."""
    return len(segment) >= 10 and SAFE64.match(segment) is not None
