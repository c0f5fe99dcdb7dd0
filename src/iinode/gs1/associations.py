"""Which GS1 Application Identifiers may, must and must not stand together.

The rules are the ``req`` and ``ex`` attributes of the GS1 Barcode Syntax
Dictionary (the machine-readable form of the General Specifications' rules for
invalid pairs and mandatory associations of element strings), checked over every
element of a Digital Link: primary key, key qualifiers and data attributes.

* ``req=01,02`` - the AI needs one of the groups listed; a group is one AI or
  several joined by ``+`` that must all be present (``37``: ``00+02`` or
  ``00+8026``, so a COUNT needs an SSCC and a CONTENT or ITIP CONTENT).
* ``ex=01,03`` - the AI must not appear with any AI listed.
* A pattern such as ``31nn`` or ``392n`` stands for every AI of that length with
  those leading digits; an AI is never excluded by a pattern it matches itself.

The Digital Link syntax adds that a data attribute (query string) is an AI the
dictionary marks as one (``NOT_DATA_ATTRIBUTES`` lists those that are not, such
as serial numbers and key qualifiers), and that an AI that could stand in the
path as a key qualifier belongs there (``syntax.check_elements``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from iinode.gs1.ai import AI_TABLE, DigitalLinkError

# AI (or first-last range)  rules.  Transcribed from the GS1 Barcode Syntax Dictionary.
_RULES = """
01 ex=255,37
02 ex=01,03 req=37
03 ex=01,02,37,235
10 11 13 15 16 20 240 241 req=01,02,03,8006,8026
12 req=8020
17 req=01,02,03,255,8006,8026
21 req=01,03,8006 ex=235
22 235 req=01
242 req=01,02,8006,8026
243 req=01,03
250 req=01+21,03+21,8006+21
251 req=01,03,8006
254 req=414
255 ex=01,02,415,8006,8020,8026
30 req=01,02
37 req=00+02,00+8026
3900-3909 req=255,8020 ex=390n,391n,394n,8111
3910-3919 req=8020 ex=391n
3920-3929 req=01+30,01+31nn,01+32nn,01+35nn,01+36nn ex=392n,393n
3930-3939 req=30,31nn,32nn,35nn,36nn ex=393n
3940-3943 req=255 ex=394n,8111
3950-3955 req=30,31nn,32nn,35nn,36nn ex=392n,393n,395n,8005
403 req=00
415 req=8020
420 ex=421
421 ex=4307
422 req=01,02,03,8006,8026 ex=426
423 424 425 req=01,02,03 ex=426
426 req=01,02,03
427 req=01+422,02+422,03+422
4300 4301 4302 4304-4312 4314-4326 req=00
4303 req=4302
4313 req=4312
4330 req=00 ex=4331
4331 req=00 ex=4330
4332 req=00 ex=4333
4333 req=00 ex=4332
7001 req=01,02,8006,8026
7002 7005 7006 7007 7008 7009 7030-7039 req=01,02
7003 7010 7011 req=01,02,03
7004 req=01+10,03+10
7020 req=01+416,03+416,8006+416
7021 req=01,03,8006
7022 req=01+7021,03+7021,8006+7021
7041 req=00
710-717 req=01
7230-7239 req=01,8004
7240 req=01,8006 ex=03
7241 7242 req=8017,8018
7250 req=8018 ex=7251
7251 req=8018 ex=7250
7252 req=8018
7253 7254 7255 req=8017,8018 ex=7256,7259
7256 req=8017,8018
7257 req=8018
7258 req=8018+7259
7259 req=8018 ex=7256
8001 req=01
8005 req=01,02
8006 ex=01,03,37
8007 req=415
8008 req=01,02,03
8009 req=00,01,03
8011 req=8010
8012 req=01,03,8006
8014 req=01
8017 ex=8018
8018 ex=8017
8019 req=8017,8018
8020 req=415
8026 req=37 ex=02,03,8006
8040 req=01+21
8041 8042 8043 req=01+21+8040
8111 req=255
8200 req=01
"""

#: Measure families ``ddd0``-``ddd5``: the AIs they require; each excludes its own
#: family (a net weight in kg is given once, in one decimal position).
_MEASURES = {
    "01,02": "310 311 312 313 314 315 316 320 321 322 323 324 325 326 327 328 329 "
    "350 351 352 356 357 360 361 364 365 366",
    "00,01": "330 331 332 333 334 335 336 340 341 342 343 344 345 346 347 348 349 "
    "353 354 355 362 363 367 368 369",
    "01": "337",
}

#: AIs the Syntax Dictionary does not allow as Digital Link data attributes.
NOT_DATA_ATTRIBUTES = frozenset(
    {"03", "21", "22", "235", "254", "7040", "7041", "8011", "8014", "8019", "8020"}
    | {"8040", "8041", "8042", "8043", "8200"}
)


@dataclass(frozen=True, slots=True)
class Rules:
    """The association rules of one AI."""

    requires: tuple[tuple[tuple[str, ...], ...], ...] = ()  # each: groups, one must hold
    excludes: tuple[str, ...] = ()  # AIs and patterns

    def describe_requirement(self, groups: tuple[tuple[str, ...], ...]) -> str:
        return " or ".join(" with ".join(g) for g in groups)


def _expand(spec: str) -> list[str]:
    out = []
    for item in spec.split():
        first, _, last = item.partition("-")
        if not last:
            out.append(first)
            continue
        width = len(first)
        out.extend(str(n).rjust(width, "0") for n in range(int(first), int(last) + 1))
    return out


def _build() -> dict[str, Rules]:
    table: dict[str, Rules] = {}
    for line in _RULES.strip().splitlines():
        head, *attrs = re.split(r" (?=req=|ex=)", line)
        requires = tuple(
            tuple(tuple(g.split("+")) for g in a[4:].split(","))
            for a in attrs
            if a.startswith("req=")
        )
        excludes = tuple(x for a in attrs if a.startswith("ex=") for x in a[3:].split(","))
        for ai in _expand(head):
            table[ai] = Rules(requires, excludes)
    for req, stems in _MEASURES.items():
        groups = (tuple((ai,) for ai in req.split(",")),)
        for stem in stems.split():
            for d in range(6):
                table[f"{stem}{d}"] = Rules(groups, (f"{stem}n",))
    return table


#: Association rules by AI (AIs without rules are absent).
RULES: dict[str, Rules] = _build()


def matches(pattern: str, ai: str) -> bool:
    """Whether ``ai`` is ``pattern``: an AI, or digits then ``n`` for any digit."""
    if len(pattern) != len(ai):
        return False
    return all(p == "n" or p == a for p, a in zip(pattern, ai, strict=True))


def check_associations(elements: Mapping[str, str]) -> None:
    """Raise ``DigitalLinkError`` for the first invalid pair or unmet association
    among the AIs of ``elements`` (each AI once), in AI order."""
    problem = _problem(tuple(sorted(elements)))
    if problem is not None:
        raise DigitalLinkError(problem)


@functools.lru_cache(maxsize=4096)
def _problem(present: tuple[str, ...]) -> str | None:
    """What is wrong with a set of AIs (sorted), ``None`` if nothing: the rules look at
    which AIs are there, never at their values, so the verdict is kept per set."""
    for ai in present:
        rules = RULES.get(ai)
        if rules is None:
            continue
        for pattern in rules.excludes:
            other = next((o for o in present if o != ai and matches(pattern, o)), None)
            if other is not None:
                return (
                    f"AI {ai} ({_title(ai)}) and AI {other} ({_title(other)}) "
                    "must not be used together (GS1 invalid pair)"
                )
        for groups in rules.requires:
            if not any(all(_present(g, present) for g in group) for group in groups):
                return (
                    f"AI {ai} ({_title(ai)}) needs {rules.describe_requirement(groups)} "
                    "in the same Digital Link (GS1 mandatory association)"
                )
    return None


def _present(pattern: str, present: tuple[str, ...]) -> bool:
    return any(matches(pattern, ai) for ai in present)


def _title(ai: str) -> str:
    entry = AI_TABLE.get(ai)
    return entry.title if entry is not None else "unknown"


__all__ = ["NOT_DATA_ATTRIBUTES", "RULES", "Rules", "check_associations", "matches"]
