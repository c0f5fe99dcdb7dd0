"""Message credentials as Handle.Net computes them: server signatures and session MACs.

RFC 3652 s2.2.4 says a credential signs the message header and body; the
reference implementation (``AbstractMessage.signMessage``/``verifyMessage``)
signs, from protocol 2.6 on, a few envelope fields first::

    signed octets  MajorVersion 1 | MinorVersion 1
                   [SuggestedMajor 1 | SuggestedMinor 1]      from 2.8
                   SessionId 4 | RequestId 4 | SessionCounter 4   from 2.7
                   header and body octets

(2.6 clients wrote the three integers over each other; that layout is kept
here too.)  The credential section itself is::

    Version 0 | Reserved 0 | Options 0
    Signer: empty handle | SessionCounter 4      (the index carries the counter)
    Type: "HS_SIGNED" (server key) or "HS_MAC" (session key)
    SignedInfo: hash name ("SHA-256" from 2.7, "SHA1" before; "HMAC-SHA256"
                for a session MAC from 2.7) | signature octets

An RSA signature is PKCS#1 v1.5 (Java ``SHA256withRSA``); a DSA one is the DER
sequence (``SHA1withDSA``).  A session MAC is HMAC over the same octets with
the session key (``Util.doMac``); the older ``SHA1``/``MD5`` names mean
``hash(key | octets | key)``.

Nothing here does I/O; the keys come from ``iinode.node.server_keys``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iinode.errors import AuthenticationFailed
from iinode.node.public_keys import PrivateKey, PublicKey, decode_public_key
from iinode.proto import Credential, CredentialType, Message

#: The hash names of ``Common.HASH_ALG_*`` a signature may name.
SHA256_NAME = "SHA-256"
SHA1_NAME = "SHA1"
HMAC_SHA256_NAME = "HMAC-SHA256"
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA-256": hashes.SHA256(),
    "SHA256": hashes.SHA256(),
    "SHA1": hashes.SHA1(),
    "SHA-1": hashes.SHA1(),
}
_INTS = struct.Struct(">III")


def _at_least(version: tuple[int, int], major: int, minor: int) -> bool:
    return version >= (major, minor)


def suggested_version(message: Message) -> tuple[int, int]:
    """The suggested protocol version the envelope carries (Handle.Net keeps it in the
    MessageFlag field: the low two bits of its first octet, then its second octet);
    the message's own version when none is given."""
    stated: tuple[int, int] | None = getattr(message, "suggested_version", None)
    if stated is not None:
        return stated
    flags = int(message.envelope_flags)
    major = (flags >> 8) & 0x03
    if major == 0:
        return message.version
    return (major, flags & 0xFF)


def signed_octets(message: Message, session_counter: int = 0) -> bytes:
    """What a credential of ``message`` signs (see the module docstring)."""
    body = message.signed_data()
    version = message.version
    if not _at_least(version, 2, 6):
        return body
    head = bytes(version)
    if _at_least(version, 2, 8):
        head += bytes(suggested_version(message))
    ints = _INTS.pack(message.session_id, message.request_id, session_counter)
    if not _at_least(version, 2, 7):
        # 2.6 wrote each integer at the same offset after the session id's first half.
        ints = ints[:2] + session_counter.to_bytes(4, "big") + bytes(6)
    return head + ints + body


def signature_hash_name(version: tuple[int, int], key: PrivateKey | PublicKey) -> str:
    """The hash a server signs a response of ``version`` with (``supportsSha256Signature``)."""
    if _at_least(version, 2, 11):
        return SHA256_NAME
    if not isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return SHA1_NAME
    return SHA256_NAME if _at_least(version, 2, 7) else SHA1_NAME


def sign_message(message: Message, key: PrivateKey, session_counter: int = 0) -> Message:
    """``message`` with an HS_SIGNED credential made with ``key``."""
    name = signature_hash_name(message.version, key)
    algorithm = _HASHES[name]
    data = signed_octets(message, session_counter)
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), algorithm)
    else:
        signature = key.sign(data, algorithm)
    credential = Credential("", session_counter, CredentialType.SIGNED, name, signature)
    return replace(message, credential=credential)


def verify_signature(message: Message, public_key: bytes | PublicKey) -> bool:
    """True if ``message`` carries an HS_SIGNED credential valid for ``public_key``
    (a key object or its HS_PUBKEY encoding, as a site's server record has it)."""
    cred = message.credential
    if cred is None or cred.type not in (CredentialType.SIGNED, "HS_DSAPUBKEY"):
        return False
    algorithm = _HASHES.get(cred.digest_algorithm.upper())
    if algorithm is None:
        return False
    try:
        key = decode_public_key(public_key) if isinstance(public_key, bytes) else public_key
    except AuthenticationFailed:
        return False
    data = signed_octets(message, cred.signer_index)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cred.signed_data, data, padding.PKCS1v15(), algorithm)
        else:
            key.verify(cred.signed_data, data, algorithm)
    except (InvalidSignature, ValueError):
        return False
    return True


def _keyed_digest(name: str, key: bytes, data: bytes) -> bytes | None:
    normal = "".join(ch for ch in name.upper() if ch.isalnum())
    if normal == "HMACSHA256":
        return hmac.new(key, data, hashlib.sha256).digest()
    if normal == "HMACSHA1":
        return hmac.new(key, data, hashlib.sha1).digest()
    plain = {"SHA256": "sha256", "SHA1": "sha1", "MD5": "md5"}.get(normal)
    if plain is None:
        return None
    return hashlib.new(plain, key + data + key).digest()


def mac_message(message: Message, key: bytes, session_counter: int) -> Message:
    """``message`` with an HS_MAC credential made with the session ``key`` (protocol 2.7+)."""
    data = signed_octets(message, session_counter)
    mac = hmac.new(key, data, hashlib.sha256).digest()
    credential = Credential("", session_counter, CredentialType.MAC, HMAC_SHA256_NAME, mac)
    return replace(message, credential=credential)


def verify_mac(message: Message, key: bytes) -> bool:
    """True if ``message`` carries a Handle.Net-style HS_MAC valid for session ``key``.

    Only the layout of protocol 2.7 and later is accepted: before it the MAC
    covered header and body only (not the session counter that guards against
    replay; 2.5 and 2.6 computed a flawed one), so a captured request could be
    sent again under a new counter.
    """
    cred = message.credential
    if cred is None or cred.type != CredentialType.MAC:
        return False
    if not _at_least(message.version, 2, 7):
        return False
    data = signed_octets(message, cred.signer_index)
    expected = _keyed_digest(cred.digest_algorithm, key, data)
    return expected is not None and hmac.compare_digest(expected, cred.signed_data)


def is_reference_mac(message: Message) -> bool:
    """An HS_MAC in Handle.Net's layout (empty signer; the index is the session counter)."""
    cred = message.credential
    return cred is not None and cred.type == CredentialType.MAC and not cred.signer_handle


__all__ = [
    "is_reference_mac",
    "mac_message",
    "sign_message",
    "signature_hash_name",
    "signed_octets",
    "suggested_version",
    "verify_mac",
    "verify_signature",
]
