"""The Diffie-Hellman groups a SESSION_SETUP may use (``native_dh``): published safe primes.

A Handle.Net client picks the group, and a server that computed in whatever group it
is sent would agree a session key in a composite or otherwise weak modulus, and spend
a full exponentiation on any number it is given.  Only these groups are accepted, all
with generator 2: the 1024-bit group a stock client sends (its Java runtime's default
for ``KeyPairGenerator("DH").initialize(1024)``, seen in captured traffic), the MODP
groups of RFC 3526 and the FFDHE groups of RFC 7919 up to 4096 bits.  Each ``p`` is a
safe prime ((p - 1) / 2 is prime too).

The RFCs define every one of these primes by the same formula (RFC 2409 s6.2,
RFC 3526 s2-s5, RFC 7919 appendix A): for ``N`` bits, a constant ``c`` (pi for
MODP, e for FFDHE) and the published offset ``k``,

    p = 2^N - 2^(N-64) - 1 + 2^64 * (floor(2^(N-130) * c) + k)

so the groups are one table of ``(N, c, k)`` (``GROUPS``) and one function
(``group_prime``).  ``tests/native/test_dh_group_table.py`` pins each result.
"""

from __future__ import annotations

from typing import Literal

GENERATOR = 2

#: Name -> (bits, the constant the middle bits come from, the RFC's offset ``k``).
GROUPS: dict[str, tuple[int, Literal["pi", "e"], int]] = {
    "MODP_1024": (1024, "pi", 129_093),  # RFC 2409 group 2: what a stock client sends
    "MODP_1536": (1536, "pi", 741_804),  # RFC 3526 group 5
    "MODP_2048": (2048, "pi", 124_476),  # RFC 3526 group 14
    "MODP_3072": (3072, "pi", 1_690_314),  # RFC 3526 group 15
    "MODP_4096": (4096, "pi", 240_904),  # RFC 3526 group 16
    "FFDHE_2048": (2048, "e", 560_316),  # RFC 7919 ffdhe2048
    "FFDHE_3072": (3072, "e", 2_625_351),  # RFC 7919 ffdhe3072
    "FFDHE_4096": (4096, "e", 5_736_041),  # RFC 7919 ffdhe4096
}

#: Extra bits carried through the series below, so the truncated result is exact.
_GUARD = 64


def group_prime(bits: int, constant: Literal["pi", "e"], offset: int) -> int:
    """The prime of the RFC formula above for ``bits``, ``constant`` and ``offset``.

    ``floor(2^(bits-130) * constant)`` is summed in integers with ``_GUARD`` extra
    bits: e as the series of 1/n!, pi by Machin's formula 16 atan(1/5) - 4 atan(1/239)
    with atan(1/x) = sum (-1)^n / ((2n + 1) x^(2n + 1)).
    """
    scale = bits - 130 + _GUARD
    fixed = 0
    if constant == "e":
        term, n = 1 << scale, 0
        while term:
            fixed += term
            n += 1
            term //= n
    else:
        for weight, x in ((16, 5), (-4, 239)):
            power, n = (1 << scale) // x, 0  # 2^scale / x^(2n + 1)
            while power:
                fixed += (-1) ** n * weight * (power // (2 * n + 1))
                power //= x * x
                n += 1
    middle = (fixed >> _GUARD) + offset
    return (1 << bits) - (1 << (bits - 64)) - 1 + (middle << 64)


#: Each group's prime, by name.
PRIMES: dict[str, int] = {name: group_prime(*spec) for name, spec in GROUPS.items()}

MODP_1024 = PRIMES["MODP_1024"]
MODP_1536 = PRIMES["MODP_1536"]
MODP_2048 = PRIMES["MODP_2048"]
MODP_3072 = PRIMES["MODP_3072"]
MODP_4096 = PRIMES["MODP_4096"]
FFDHE_2048 = PRIMES["FFDHE_2048"]
FFDHE_3072 = PRIMES["FFDHE_3072"]
FFDHE_4096 = PRIMES["FFDHE_4096"]

#: Accepted moduli (generator ``GENERATOR``), by value.
SAFE_PRIME_GROUPS = frozenset(PRIMES.values())

__all__ = [
    "FFDHE_2048",
    "FFDHE_3072",
    "FFDHE_4096",
    "GENERATOR",
    "GROUPS",
    "MODP_1024",
    "MODP_1536",
    "MODP_2048",
    "MODP_3072",
    "MODP_4096",
    "PRIMES",
    "SAFE_PRIME_GROUPS",
    "group_prime",
]
