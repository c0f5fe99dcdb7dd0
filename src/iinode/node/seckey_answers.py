"""Answers to a challenge with an HS_SECKEY, as Handle.Net clients compute them.

The challenge carries a nonce and the request digest; the answer is a keyed
digest of ``message = nonce || request digest`` with the secret ``K`` (the
HS_SECKEY data, octets as stored), written as one type octet then the digest.
The types (Handle.Net ``Common.HASH_CODE_*``, ``Util.doMac``):

==========  ==================  ==============================================
type        name                digest
==========  ==================  ==============================================
(none)      MD5, old format     ``MD5(K || message || K)``, no type octet
1           MD5                 ``MD5(K || message || K)``
2           SHA-1               ``SHA-1(K || message || K)``
3           SHA-256             ``SHA-256(K || message || K)``
0x12        HMAC-SHA1           ``HMAC-SHA1(K, message)``
0x13        HMAC-SHA256         ``HMAC-SHA256(K, message)``
0x22        PBKDF2-HMAC-SHA1    ``salt`` (byte string), iterations (4 octets),
                                key length in bits (4 octets), then the byte
                                string ``HMAC-SHA1(PBKDF2-HMAC-SHA1(K, salt,
                                iterations, length), message)``
==========  ==================  ==============================================

A client picks the type by the lower of the challenge's version and the version
it suggests: below 2.1 the old format, from 2.7 PBKDF2 (16 random octets of
salt, 10,000 iterations, 160 bits), SHA-1 in between
(``SecretKeyAuthenticationInfo.authenticate``).  The server accepts every type
whatever the version; only the old format is told by version (the answer's
suggested version below 2.1).  PBKDF2 hands each password octet to Java's
``PBEKeySpec`` as one character, which encodes it as UTF-8: octets above 0x7F
count twice, exactly as ``_pbkdf2_password`` does.

"Hashed password" mode (``Encoder.encodeSecretKey`` with ``hash=true``): the
client uses the lower-case hex SHA-1 of its password as ``K``; whoever set the
HS_SECKEY stored that same text, so the server needs nothing special
(``hashed_secret`` computes it).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from iinode.errors import HandleError
from iinode.identifiers.wire import WireReader, WireWriter
from iinode.proto import DigestAlgorithm

#: PBKDF2 parameters a Handle.Net client sends (``Util.doPbkdf2HmacSHA1``).
PBKDF2_SALT_BYTES = 16
PBKDF2_ITERATIONS = 10_000
PBKDF2_KEY_BITS = 160
#: The most PBKDF2 iterations and key bits an answer may ask the server to compute (twice
#: what Handle.Net clients send: each answer costs the server one derivation).
MAX_PBKDF2_ITERATIONS = 20_000
MAX_PBKDF2_KEY_BITS = 512
#: The most HMAC-SHA1 block derivations an answer may cost: iterations times the
#: 160-bit blocks of its key (Handle.Net's 10,000 x 1 fits twice over; 20,000 iterations
#: of a 512-bit key, four blocks, do not).
MAX_PBKDF2_WORK = 20_000

#: Every answer type (from 2.1 each answer names its own in its first octet).
ANSWER_TYPES: tuple[DigestAlgorithm, ...] = (
    DigestAlgorithm.MD5_OLD_FORMAT,
    DigestAlgorithm.MD5,
    DigestAlgorithm.SHA1,
    DigestAlgorithm.SHA256,
    DigestAlgorithm.HMAC_SHA1,
    DigestAlgorithm.HMAC_SHA256,
    DigestAlgorithm.PBKDF2_HMAC_SHA1,
)
_ENCLOSED = {
    DigestAlgorithm.MD5_OLD_FORMAT: "md5",
    DigestAlgorithm.MD5: "md5",
    DigestAlgorithm.SHA1: "sha1",
    DigestAlgorithm.SHA256: "sha256",
}
_HMAC = {DigestAlgorithm.HMAC_SHA1: "sha1", DigestAlgorithm.HMAC_SHA256: "sha256"}


def answer_type_for(version: tuple[int, int]) -> DigestAlgorithm:
    """The type a Handle.Net client answers with at ``version`` (the lower of the
    challenge's version and the one it suggests)."""
    if version < (2, 1):
        return DigestAlgorithm.MD5_OLD_FORMAT
    return DigestAlgorithm.PBKDF2_HMAC_SHA1 if version >= (2, 7) else DigestAlgorithm.SHA1


def hashed_secret(password: bytes) -> bytes:
    """``Encoder.encodeSecretKey(password, true)``: lower-case hex SHA-1, as text."""
    return hashlib.sha1(password).hexdigest().encode()


def _pbkdf2_password(secret: bytes) -> bytes:
    return secret.decode("latin-1").encode("utf-8")


def _pbkdf2_mac(secret: bytes, message: bytes, salt: bytes, iterations: int, bits: int) -> bytes:
    derived = hashlib.pbkdf2_hmac("sha1", _pbkdf2_password(secret), salt, iterations, bits // 8)
    return hmac.new(derived, message, hashlib.sha1).digest()


def keyed_digest(kind: DigestAlgorithm, secret: bytes, message: bytes) -> bytes:
    """The digest of every type but PBKDF2 (which needs parameters: ``pbkdf2_body``)."""
    if kind in _ENCLOSED:
        return hashlib.new(_ENCLOSED[kind], secret + message + secret).digest()
    if kind in _HMAC:
        return hmac.new(secret, message, _HMAC[kind]).digest()
    raise ValueError(f"no keyed digest of type {int(kind):#x}")


def pbkdf2_body(
    secret: bytes,
    message: bytes,
    *,
    salt: bytes | None = None,
    iterations: int = PBKDF2_ITERATIONS,
    bits: int = PBKDF2_KEY_BITS,
) -> bytes:
    """A PBKDF2-HMAC-SHA1 answer without its type octet (``Util.doPbkdf2HmacSHA1``)."""
    salt = os.urandom(PBKDF2_SALT_BYTES) if salt is None else salt
    mac = _pbkdf2_mac(secret, message, salt, iterations, bits)
    return WireWriter().byte_string(salt).u32(iterations).u32(bits).byte_string(mac).getvalue()


def seckey_answer(
    secret: bytes,
    nonce: bytes,
    request_digest: bytes,
    kind: DigestAlgorithm,
    *,
    salt: bytes | None = None,
) -> bytes:
    """The signed response a Handle.Net client sends for a challenge, of type ``kind``."""
    message = nonce + request_digest
    if kind == DigestAlgorithm.PBKDF2_HMAC_SHA1:
        return bytes([kind]) + pbkdf2_body(secret, message, salt=salt)
    digest = keyed_digest(kind, secret, message)
    return digest if kind == DigestAlgorithm.MD5_OLD_FORMAT else bytes([kind]) + digest


def _pbkdf2_parameters(body: bytes) -> tuple[bytes, int, int, bytes] | None:
    try:
        r = WireReader(body)
        salt, iterations, bits = r.byte_string("salt"), r.u32("iterations"), r.u32("key bits")
        mac = r.byte_string("mac")
        r.expect_end("PBKDF2 answer")
    except HandleError:
        return None
    if not (0 < iterations <= MAX_PBKDF2_ITERATIONS and 0 < bits <= MAX_PBKDF2_KEY_BITS):
        return None
    if bits % 8 or len(salt) > 1024:
        return None
    if iterations * -(-bits // 160) > MAX_PBKDF2_WORK:
        return None
    return salt, iterations, bits, mac


def answer_type(answer: bytes, *, old_format: bool) -> DigestAlgorithm | None:
    """The type an answer names (``None``: none this node knows)."""
    if old_format:
        return DigestAlgorithm.MD5_OLD_FORMAT
    if not answer or answer[0] not in {int(k) for k in ANSWER_TYPES[1:]}:
        return None
    return DigestAlgorithm(answer[0])


def check_answer(
    secret: bytes, nonce: bytes, request_digest: bytes, answer: bytes, *, old_format: bool
) -> bool:
    """Whether ``answer`` was made with ``secret`` for this nonce and request digest.

    ``old_format``: the answer is a bare MD5 digest (the peer's version is below 2.1).
    Compared in constant time; PBKDF2 costs what its parameters ask, within bounds.
    """
    kind = answer_type(answer, old_format=old_format)
    if kind is None:
        return False
    message = nonce + request_digest
    if kind == DigestAlgorithm.MD5_OLD_FORMAT:
        return hmac.compare_digest(keyed_digest(kind, secret, message), answer)
    body = answer[1:]
    if kind == DigestAlgorithm.PBKDF2_HMAC_SHA1:
        parameters = _pbkdf2_parameters(body)
        if parameters is None:
            return False
        salt, iterations, bits, mac = parameters
        return hmac.compare_digest(_pbkdf2_mac(secret, message, salt, iterations, bits), mac)
    return hmac.compare_digest(keyed_digest(kind, secret, message), body)


__all__ = [
    "ANSWER_TYPES",
    "PBKDF2_ITERATIONS",
    "PBKDF2_KEY_BITS",
    "PBKDF2_SALT_BYTES",
    "answer_type",
    "answer_type_for",
    "check_answer",
    "hashed_secret",
    "keyed_digest",
    "pbkdf2_body",
    "seckey_answer",
]
