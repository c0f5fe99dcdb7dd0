"""HS_PUBKEY values: the RFC 3651 key encoding, and challenge answers signed with a key.

``encode_public_key`` and ``decode_public_key`` convert RSA and DSA public keys to
and from HS_PUBKEY data (key type, two reserved octets, the key's numbers);
``pubkey_answer`` signs ``nonce || request digest`` (RSA PKCS#1 v1.5 or DSA,
SHA-256) and ``verify_pubkey_answer`` checks such an answer, also one signed with
SHA-1 as older Handle.Net clients do.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iinode.errors import AuthenticationFailed, HandleError
from iinode.identifiers.wire import WireReader, WireWriter
from iinode.node import dsa_keys as dsa

#: Names of the public-key encodings of RFC 3651 (HS_PUBKEY data).
RSA_KEY_TYPE = "RSA_PUB_KEY"
DSA_KEY_TYPE = "DSA_PUB_KEY"
SIGNATURE_HASH = "SHA-256"

PublicKey = rsa.RSAPublicKey | dsa.DSAPublicKey
PrivateKey = rsa.RSAPrivateKey | dsa.DSAPrivateKey


def _int_bytes(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")


def encode_public_key(key: PublicKey) -> bytes:
    """HS_PUBKEY data (RFC 3651): key type, 2 reserved octets, then the key's numbers."""
    w = WireWriter()
    if isinstance(key, rsa.RSAPublicKey):
        n = key.public_numbers()
        w.utf8(RSA_KEY_TYPE).u16(0).byte_string(_int_bytes(n.e)).byte_string(_int_bytes(n.n))
    else:
        d = key.public_numbers()
        p = d.parameter_numbers
        w.utf8(DSA_KEY_TYPE).u16(0)
        for part in (p.q, p.p, p.g, d.y):
            w.byte_string(_int_bytes(part))
    return w.getvalue()


def decode_public_key(raw: bytes) -> PublicKey:
    """Read HS_PUBKEY data; raises ``AuthenticationFailed`` if it is not a usable key."""
    try:
        r = WireReader(raw)
        kind = r.utf8("key type")
        r.u16("key flags")
        parts = [int.from_bytes(r.byte_string("key number"), "big") for _ in range(_PARTS[kind])]
        # Handle.Net's ``Util.getBytesFromPublicKey`` sizes an RSA key for four length
        # fields but writes three: its keys end with four zero octets.
        if kind == RSA_KEY_TYPE and r.remaining == 4 and r.raw(4, "padding") != bytes(4):
            raise AuthenticationFailed("octets after the RSA modulus")
        r.expect_end("public key")
        if kind == RSA_KEY_TYPE:
            return rsa.RSAPublicNumbers(parts[0], parts[1]).public_key()
        q, p, g, y = parts
        return dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
    except KeyError:
        raise AuthenticationFailed("unsupported public key type") from None
    except (HandleError, ValueError) as exc:
        raise AuthenticationFailed(f"unusable public key: {exc}") from None


_PARTS = {RSA_KEY_TYPE: 2, DSA_KEY_TYPE: 4}


def pubkey_answer(key: PrivateKey, nonce: bytes, request_digest: bytes) -> bytes:
    """The answer to a challenge with an HS_PUBKEY: hash name, then the signature."""
    data = nonce + request_digest
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(data, hashes.SHA256())
    return WireWriter().utf8(SIGNATURE_HASH).byte_string(signature).getvalue()


def verify_pubkey_answer(
    key: PublicKey, nonce: bytes, request_digest: bytes, answer: bytes
) -> bool:
    try:
        r = WireReader(answer)
        algorithm = r.utf8("signature hash")
        signature = r.byte_string("signature")
        r.expect_end("signature")
    except HandleError:
        return False
    digest = _SIGNATURE_HASHES.get(algorithm.upper().replace("-", ""))
    if digest is None:
        return False
    data = nonce + request_digest
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), digest())
        else:
            key.verify(signature, data, digest())
    except (InvalidSignature, ValueError):
        return False
    return True


#: Hashes of HS_PUBKEY answers: SHA-256, and SHA-1 as Handle.Net clients sign below 2.7
#: (and with DSA below 2.11: ``Util.getDefaultSigId``), named ``SHA1`` or ``SHA-1``.
_SIGNATURE_HASHES: dict[str, type[hashes.SHA256] | type[hashes.SHA1]] = {
    "SHA256": hashes.SHA256,
    "SHA1": hashes.SHA1,
}
