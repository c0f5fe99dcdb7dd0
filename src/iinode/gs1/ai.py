"""GS1 Application Identifiers as data: formats, check digits, keys and qualifiers.

The table follows the GS1 General Specifications (section 3.2, the AI table):
each AI has one or more components, numeric (``N``) or alphanumeric, of fixed
length (``N6``) or up to a maximum (``X..20``).  Alphanumeric components use
GS1 character set 82 (``X``) or, for a CPID, character set 39 (``Y``).  The
third column lists checks: ``cN``, a GS1 mod-10 check digit at 1-based position N;
``a``, the check character pair of a GMN (mod 1021 over character set 82, General
Specifications 7.9.6); ``g``, a value that starts with a GS1 Company Prefix (at
least its first four characters are digits, the Syntax Dictionary's ``gcppos1``);
``d``, a value that is not all digits (``hasnondigit``).

The component split is the one the GS1 Digital Link compression algorithm
encodes by (a fixed numeric part, then a variable part), so one table serves
validation and compression.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from iinode.errors import ValueInvalid


class DigitalLinkError(ValueInvalid):
    """A GS1 Digital Link URI or GS1 element is not valid (HTTP 400)."""


#: GS1 character set 82 (General Specifications figure 7.11-1).
CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
#: GS1 character set 39 (figure 7.11-2), used by CPID.
CSET39 = frozenset("#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class Component:
    """One part of an AI's value: numeric or alphanumeric, fixed or variable length."""

    numeric: bool
    length: int  # the fixed length, or the maximum when ``variable``
    variable: bool
    charset: frozenset[str] = field(default=CSET82, repr=False)

    def describe(self) -> str:
        kind = "N" if self.numeric else "X"
        return f"{kind}{'..' if self.variable else ''}{self.length}"


@dataclass(frozen=True, slots=True)
class ApplicationIdentifier:
    ai: str
    title: str
    components: tuple[Component, ...]
    check_digit: int | None = None  # 1-based position of a mod-10 check digit
    check_pair: bool = False  # ends in a GMN check character pair
    company_prefix: bool = False  # starts with a GS1 Company Prefix
    non_digit: bool = False  # holds at least one character that is not a digit

    @property
    def fixed_length(self) -> bool:
        return not any(c.variable for c in self.components)

    @property
    def format(self) -> str:
        return "+".join(c.describe() for c in self.components)


# AI  format  checks (``-``: none)  title.  Ranges ``310n`` expand n = 0..5 (0..9 for 39xx).
_TABLE = """
00 N18 c18 SSCC
01 N14 c14 GTIN
02 N14 c14 CONTENT
03 N14 c14 MTO GTIN
10 X..20 - BATCH/LOT
11 N6 - PROD DATE
12 N6 - DUE DATE
13 N6 - PACK DATE
15 N6 - BEST BEFORE
16 N6 - SELL BY
17 N6 - USE BY OR EXPIRY
20 N2 - VARIANT
21 X..20 - SERIAL
22 X..20 - CPV
235 X..28 - TPX
240 X..30 - ADDITIONAL ID
241 X..30 - CUST. PART No.
242 N..6 - MTO VARIANT
243 X..20 - PCN
250 X..30 - SECONDARY SERIAL
251 X..30 - REF. TO SOURCE
253 N13+X..17 c13 GDTI
254 X..20 - GLN EXTENSION COMPONENT
255 N13+N..12 c13 GCN
30 N..8 - VAR. COUNT
37 N..8 - COUNT
400 X..30 - ORDER NUMBER
401 X..30 g GINC
402 N17 c17 GSIN
403 X..30 - ROUTE
410 N13 c13 SHIP TO LOC
411 N13 c13 BILL TO
412 N13 c13 PURCHASE FROM
413 N13 c13 SHIP FOR LOC
414 N13 c13 LOC No.
415 N13 c13 PAY TO
416 N13 c13 PROD/SERV LOC
417 N13 c13 PARTY
420 X..20 - SHIP TO POST
421 N3+X..9 - SHIP TO POST
422 N3 - ORIGIN
423 N3+N..12 - COUNTRY - INITIAL PROCESS
424 N3 - COUNTRY - PROCESS
425 N3+N..12 - COUNTRY - DISASSEMBLY
426 N3 - COUNTRY - FULL PROCESS
427 X..3 - ORIGIN SUBDIVISION
4300 X..35 - SHIP TO COMP
4301 X..35 - SHIP TO NAME
4302 X..70 - SHIP TO ADD1
4303 X..70 - SHIP TO ADD2
4304 X..70 - SHIP TO SUB
4305 X..70 - SHIP TO LOC
4306 X..70 - SHIP TO REG
4307 X2 - SHIP TO COUNTRY
4308 X..30 - SHIP TO PHONE
4309 N20 - SHIP TO GEO
4310 X..35 - RTN TO COMP
4311 X..35 - RTN TO NAME
4312 X..70 - RTN TO ADD1
4313 X..70 - RTN TO ADD2
4314 X..70 - RTN TO SUB
4315 X..70 - RTN TO LOC
4316 X..70 - RTN TO REG
4317 X2 - RTN TO COUNTRY
4318 X..20 - RTN TO POST
4319 X..30 - RTN TO PHONE
4320 X..35 - SRV DESCRIPTION
4321 N1 - DANGEROUS GOODS
4322 N1 - AUTH LEAVE
4323 N1 - SIG REQUIRED
4324 N10 - NBEF DEL DT
4325 N10 - NAFT DEL DT
4326 N6 - REL DATE
4330 N6+X..1 - MAX TEMP F.
4331 N6+X..1 - MAX TEMP C.
4332 N6+X..1 - MIN TEMP F.
4333 N6+X..1 - MIN TEMP C.
7001 N13 - NSN
7002 X..30 - MEAT CUT
7003 N10 - EXPIRY TIME
7004 N..4 - ACTIVE POTENCY
7005 X..12 - CATCH AREA
7006 N6 - FIRST FREEZE DATE
7007 N6+N..6 - HARVEST DATE
7008 X..3 - AQUATIC SPECIES
7009 X..10 - FISHING GEAR TYPE
7010 X..2 - PROD METHOD
7011 N6+N..4 - TEST BY DATE
7020 X..20 - REFURB LOT
7021 X..20 - FUNC STAT
7022 X..20 - REV STAT
7023 X..30 g GIAI - ASSEMBLY
7040 N1+X3 - UIC+EXT
7041 X..4 - UFRGT UNIT TYPE
710 X..20 - NHRN PZN
711 X..20 - NHRN CIP
712 X..20 - NHRN CN
713 X..20 - NHRN DRN
714 X..20 - NHRN AIM
715 X..20 - NHRN NDC
716 X..20 - NHRN AIC
717 X..20 - NHRN SRN
7240 X..20 - PROTOCOL
7241 N2 - AIDC MEDIA TYPE
7242 X..25 - VCN
7250 N8 - DOB
7251 N12 - DOB TIME
7252 N1 - BIO SEX
7253 X..40 - FAMILY NAME
7254 X..40 - GIVEN NAME
7255 X..10 - SUFFIX
7256 X..90 - FULL NAME
7257 X..70 - PERSON ADDR
7258 X3 - BIRTH SEQUENCE
7259 X..40 - BABY
8001 N14 - DIMENSIONS
8002 X..20 - CMT No.
8003 N14+X..16 c14 GRAI
8004 X..30 g GIAI
8005 N6 - PRICE PER UNIT
8006 N18 c14 ITIP
8007 X..34 - IBAN
8008 N8+N..4 - PROD TIME
8009 X..50 - OPTSEN
8010 Y..30 g CPID
8011 N..12 - CPID SERIAL
8012 X..20 - VERSION
8013 X..25 a,g GMN
8014 X..25 a,g,d MUDI
8017 N18 c18 GSRN - PROVIDER
8018 N18 c18 GSRN - RECIPIENT
8019 N..10 - SRIN
8020 X..25 - REF No.
8026 N18 c14 ITIP CONTENT
8040 N15 - IMEI
8041 N15 - IMEI2
8042 N32 - ESIM
8043 N18+N..2 - PSIM
8110 X..70 - COUPON
8111 N4 - POINTS
8112 X..70 - COUPON
8200 X..70 - PRODUCT URL
90 X..30 - INTERNAL
"""

#: Families ``ddd`` + last digit: the stems, the last digits, format and title.
_FAMILIES = """
310 311 312 313 314 315 316 320 321 322 323 324 325 326 327 328 329 330 331 332 333 334 335
336 337 340 341 342 343 344 345 346 347 348 349 350 351 352 353 354 355 356 357 360 361 362
363 364 365 366 367 368 369 : 0-5 N6 MEASURE
390 392 : 0-9 N..15 AMOUNT
391 393 : 0-9 N3+N..15 AMOUNT
394 : 0-3 N4 PRCNT OFF
395 : 0-9 N6 PRICE/UoM
703 : 0-9 N3+X..27 PROCESSOR
723 : 0-9 X..30 CERT
"""


_COMPONENT = re.compile(r"^([NXY])(\.\.)?(\d+)$")


def _components(spec: str) -> tuple[Component, ...]:
    out = []
    for part in spec.split("+"):
        m = _COMPONENT.match(part)
        if m is None:
            raise ValueError(f"bad AI format {spec!r}")
        kind, dots, n = m.groups()
        out.append(Component(kind == "N", int(n), bool(dots), CSET39 if kind == "Y" else CSET82))
    return tuple(out)


def _build() -> dict[str, ApplicationIdentifier]:
    table: dict[str, ApplicationIdentifier] = {}
    for line in _TABLE.strip().splitlines():
        ai, spec, checks, title = line.split(" ", 3)
        flags = set() if checks == "-" else set(checks.split(","))
        position = next((int(f[1:]) for f in flags if f.startswith("c")), None)
        table[ai] = ApplicationIdentifier(
            ai, title, _components(spec), position, "a" in flags, "g" in flags, "d" in flags
        )
    for stems, rule in re.findall(r"([\d\s]+?) : (.+)", _FAMILIES):
        digits, spec, title = rule.split(" ", 2)
        first, last = (int(d) for d in digits.split("-"))
        for stem in stems.split():
            for d in range(first, last + 1):
                ai = f"{stem}{d}"
                table[ai] = ApplicationIdentifier(ai, title, _components(spec))
    for n in range(91, 100):
        table[str(n)] = ApplicationIdentifier(str(n), "INTERNAL", _components("X..90"))
    return table


#: Every AI the resolver knows, by its digits.
AI_TABLE: dict[str, ApplicationIdentifier] = _build()

#: Primary keys of the GS1 Digital Link path grammar and their key qualifiers, as the
#: Syntax Dictionary's ``dlpkey`` attribute gives them: alternative sequences, each a
#: list of optional qualifiers in the order they must appear; a path follows one
#: alternative (``01``: ``/22/../10/../21/..`` or ``/235/..``, never both kinds).
PRIMARY_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "00": (),
    "01": (("22", "10", "21"), ("235",)),
    "253": (),
    "255": (),
    "401": (),
    "402": (),
    "414": (("254",), ("7040",)),
    "415": (("8020",),),
    "417": (("7040",),),
    "8003": (),
    "8004": (("7040",),),
    "8006": (("22", "10", "21"),),
    "8010": (("8011",),),
    "8013": (),
    "8017": (("8019",),),
    "8018": (("8019",),),
}
#: Every AI that may stand in a path after some primary key.
QUALIFIERS = frozenset(ai for alts in PRIMARY_KEYS.values() for alt in alts for ai in alt)


def qualifier_alternative(key: str, qualifiers: Sequence[str]) -> tuple[str, ...] | None:
    """The alternative of ``key`` that ``qualifiers`` follow (in order, each at most
    once), ``None`` when none does."""
    return _alternative(key, tuple(qualifiers))


@functools.lru_cache(maxsize=1024)
def _alternative(key: str, qualifiers: tuple[str, ...]) -> tuple[str, ...] | None:
    for alt in PRIMARY_KEYS.get(key, ()):
        positions = [alt.index(ai) if ai in alt else -1 for ai in qualifiers]
        if all(p >= 0 for p in positions) and positions == sorted(set(positions)):
            return alt
    return None if qualifiers else ()


def check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit for ``digits`` (weights 3, 1, 3, ... from the right)."""
    total = 3 * sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2]))
    return (10 - total % 10) % 10


#: The check characters of a GMN pair (General Specifications figure 7.9.6-1).
CSET32 = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_CSET82_VALUE = {c: i for i, c in enumerate(sorted(CSET82))}


def _primes() -> tuple[int, ...]:
    found: list[int] = []
    n = 2
    while len(found) < 100:
        if all(n % p for p in found if p * p <= n):
            found.append(n)
        n += 1
    return tuple(found)


#: Weights of the check character pair: the primes, from the rightmost character.
_PAIR_WEIGHTS = _primes()


def check_pair(text: str) -> str:
    """The two check characters of a GMN whose other characters are ``text``.

    Each character's value is its position in character set 82 (``!`` is 0, ``z``
    81); the values weighted by the primes 2, 3, 5, ... from the right, summed,
    modulo 1021, give a 10-bit number whose high and low five bits pick the two
    characters of ``CSET32``.
    """
    if len(text) > len(_PAIR_WEIGHTS):
        raise DigitalLinkError(f"{len(text)} characters is too long for a check character pair")
    try:
        total = sum(
            _CSET82_VALUE[c] * w for c, w in zip(reversed(text), _PAIR_WEIGHTS, strict=False)
        )
    except KeyError as exc:
        raise DigitalLinkError(f"{exc.args[0]!r} is not in GS1 character set 82") from None
    total %= 1021
    return CSET32[total >> 5] + CSET32[total & 31]


def normalise_gtin(value: str) -> str:
    """GTIN-8, -12 and -13 as the 14 digits of the canonical URI (left-padded with 0)."""
    if value.isascii() and value.isdigit() and len(value) in (8, 12, 13):
        return value.rjust(14, "0")
    return value


def validate(ai: str, value: str) -> None:
    """Raise ``DigitalLinkError`` naming what is wrong with ``value`` for ``ai``."""
    entry = AI_TABLE.get(ai)
    if entry is None:
        raise DigitalLinkError(f"unknown GS1 Application Identifier {ai!r}")
    rest = value
    for i, comp in enumerate(entry.components):
        last = i == len(entry.components) - 1
        if comp.variable:
            if not last:  # a variable part is always the last one
                raise AssertionError(f"AI {ai} table entry")
            part, rest = rest, ""
            if len(part) > comp.length:
                raise DigitalLinkError(
                    f"AI {ai} ({entry.title}) value is {len(value)} characters; "
                    f"format {entry.format} allows at most {_max_length(entry)}"
                )
        else:
            part, rest = rest[: comp.length], rest[comp.length :]
            if len(part) < comp.length:
                raise DigitalLinkError(
                    f"AI {ai} ({entry.title}) value {value!r} is too short "
                    f"for format {entry.format}"
                )
        if comp.numeric:
            if part and not (part.isascii() and part.isdigit()):
                raise DigitalLinkError(
                    f"AI {ai} ({entry.title}) value {value!r} must be digits where format "
                    f"{entry.format} has a numeric part"
                )
        else:
            bad = sorted({c for c in part if c not in comp.charset})
            if bad:
                cset = "39" if comp.charset is CSET39 else "82"
                raise DigitalLinkError(
                    f"AI {ai} ({entry.title}) value {value!r} has characters outside "
                    f"GS1 character set {cset}: {''.join(bad)!r}"
                )
    if rest:
        raise DigitalLinkError(
            f"AI {ai} ({entry.title}) value {value!r} is too long for format {entry.format}"
        )
    if not value:
        raise DigitalLinkError(f"AI {ai} ({entry.title}) has an empty value")
    if entry.company_prefix and not (value[:4].isascii() and value[:4].isdigit()):
        raise DigitalLinkError(
            f"AI {ai} ({entry.title}) {value!r} must start with a GS1 Company Prefix "
            "(at least four digits)"
        )
    if entry.non_digit and value.isdigit():
        raise DigitalLinkError(f"AI {ai} ({entry.title}) {value!r} must not be all digits")
    if entry.check_pair:
        pair, wanted = value[-2:], check_pair(value[:-2])
        if pair != wanted:
            raise DigitalLinkError(
                f"AI {ai} ({entry.title}) {value!r}: check character pair {pair!r} is wrong "
                f"(the characters before it give {wanted!r})"
            )
    if entry.check_digit is not None:
        n = entry.check_digit
        body, given = value[: n - 1], int(value[n - 1])
        expected = check_digit(body)
        if given != expected:
            raise DigitalLinkError(
                f"AI {ai} ({entry.title}) {value!r}: check digit {given} is wrong "
                f"(the digits before it give {expected})"
            )


def _max_length(entry: ApplicationIdentifier) -> int:
    return sum(c.length for c in entry.components)
