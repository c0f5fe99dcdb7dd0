"""The Diffie-Hellman group table: each prime as the RFCs publish it.

``native_dh_groups`` builds every accepted modulus from the RFCs' formula; these
fingerprints are SHA-256 of the big-endian octets of the primes as printed in
RFC 2409, RFC 3526 and RFC 7919, so any slip in the table or the formula shows.
"""

from __future__ import annotations

import hashlib

import pytest

from iinode.resolution.native_dh_groups import GROUPS, PRIMES, SAFE_PRIME_GROUPS, group_prime

FINGERPRINTS = {
    "MODP_1024": "3f35a3f5f6c4376a744acad409bb22f8d897f949d2311d885adaa890981b67a0",
    "MODP_1536": "64fcc83ec403930bf18393dbc883ccaa1fbb08ac876f77f7aa99748ca945019b",
    "MODP_2048": "d66436f79bbd6b2e38c0ffbd079be904d2641415e2e67140e09448be9a60890e",
    "MODP_3072": "48cf8b092fbce4359d9871abf74f98e25b6163379eaa15cd9087e800c6d1c55c",
    "MODP_4096": "4ee95187682bcb230ad26a95205f6920e84708f6251b3894329b09ec23919e33",
    "FFDHE_2048": "9cd3b7f336872f46c09428d1bbc19877a4d440512cda8d1c1cf0cd6e33698966",
    "FFDHE_3072": "0eaf67db3a839156d5013494a5318a772b5697d270d721f37f092efc69ea5a17",
    "FFDHE_4096": "4648414224ac881b3d0dc59b466f96d06a558278776807797ecf1f66ff397b3e",
}


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_each_prime_is_the_published_one(name: str) -> None:
    prime = PRIMES[name]
    bits = GROUPS[name][0]
    assert prime.bit_length() == bits
    assert hashlib.sha256(prime.to_bytes(bits // 8, "big")).hexdigest() == FINGERPRINTS[name]
    # The formula's frame: the top and bottom 64 bits are all ones.
    assert prime >> (bits - 64) == prime & (2**64 - 1) == 2**64 - 1


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_each_prime_and_its_half_pass_a_fermat_test(name: str) -> None:
    prime = PRIMES[name]
    for number in (prime, (prime - 1) // 2):
        assert pow(3, number - 1, number) == 1


def test_the_accepted_set_is_the_table() -> None:
    assert set(GROUPS) == set(FINGERPRINTS)
    assert frozenset(PRIMES.values()) == SAFE_PRIME_GROUPS
    assert len(SAFE_PRIME_GROUPS) == len(GROUPS)


def test_another_offset_gives_another_number() -> None:
    bits, constant, offset = GROUPS["MODP_2048"]
    assert group_prime(bits, constant, offset + 1) == PRIMES["MODP_2048"] + 2**64
