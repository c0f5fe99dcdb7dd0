"""HS_SECKEY secrets at rest: sealed with a node key kept outside the handle store.

Handle.Net's secret-key authentication (``node.seckey_answers``) needs the
secret itself on the server: every answer type is a function of the secret, the
nonce and the request digest.  So the store holds each secret encrypted
(AES-256-GCM) with the node key, a 32-octet random key in ``<data dir>/node.key``
(mode 0600, created by ``iinode init`` through ``HandleService.initialise``, or
by the first write of a secret).  The database file alone reveals no secret;
the key file alone reveals nothing either.

A sealed secret is the HS_SECKEY data::

    IINODE-AES-256-GCM$<key id>$<base64 of nonce (12 octets) || ciphertext || tag>

``key id`` is the first 8 hex digits of SHA-256 over the key, so a secret sealed
with another node's key (a restored database without its key file) is reported
as such instead of as a wrong secret.  The associated data names the scheme.

Several worker processes may start at once: the key file is written under a
temporary name and published with a hard link, so exactly one of them creates it
and the others read the same key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import stat
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from iinode.errors import ConfigurationError, ValueInvalid

#: File name of the node key inside the node's data directory.
NODE_KEY_FILE = "node.key"
KEY_BYTES = 32
_NONCE_BYTES = 12
_SCHEME = b"IINODE-AES-256-GCM"
_PREFIX = _SCHEME + b"$"
_AAD = b"iinode HS_SECKEY v1"


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class SecretBox:
    """Seals and opens HS_SECKEY secrets with one node key."""

    __slots__ = ("_aead", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigurationError(f"a node key is {KEY_BYTES} octets, not {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    @staticmethod
    def is_sealed(raw: bytes) -> bool:
        """Whether ``raw`` claims to be a sealed secret (it may still not open)."""
        return raw.startswith(_PREFIX)

    def seal(self, secret: bytes, aad: bytes = _AAD) -> bytes:
        """``secret`` sealed; ``aad`` names what it is (default: an HS_SECKEY), and
        ``open`` must be given the same."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret, aad)
        return b"$".join([_SCHEME, self.key_id.encode(), base64.b64encode(nonce + sealed)])

    def open(self, raw: bytes, aad: bytes = _AAD) -> bytes:
        """The secret in ``raw``; raises ``ValueInvalid`` if it does not open with this key."""
        parts = raw.split(b"$")
        if len(parts) != 3 or parts[0] != _SCHEME:
            raise ValueInvalid("HS_SECKEY data is not a sealed secret")
        if parts[1] != self.key_id.encode():
            raise ValueInvalid(
                f"HS_SECKEY sealed with node key {parts[1].decode(errors='replace')}, "
                f"not with this node's key {self.key_id}"
            )
        try:
            blob = base64.b64decode(parts[2], validate=True)
            return self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except (binascii.Error, InvalidTag, ValueError):
            raise ValueInvalid("sealed HS_SECKEY data does not open with the node key") from None


def _read_key(path: Path) -> bytes:
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            "the node key must be mode 0600"
        )
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"{path} does not hold a {KEY_BYTES}-octet node key")
    return key


def sync_dir(path: Path) -> None:
    """fsync the directory ``path``: a link, rename or new file in it survives a power loss."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_key(data_dir: Path) -> bytes:
    """The node key of ``data_dir``, created (mode 0600) if there is none yet.

    Creating it (``iinode init``, or the first secret written) also makes the data
    directory private (0700): it holds the session and challenge tables too.
    """
    path = data_dir / NODE_KEY_FILE
    if path.exists():
        return _read_key(path)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    temporary = data_dir / f".{NODE_KEY_FILE}.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(os.urandom(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # one creator wins; the others read its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    sync_dir(data_dir)  # else the key could vanish on power loss while sealed secrets stay
    return _read_key(path)


class NodeSecrets:
    """The node's ``SecretBox``, its key read (or created) on first use.

    ``data_dir`` ``None`` keeps a key in memory only (a node without a data
    directory: tests, a memory store): its secrets do not survive it.
    """

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self._box: SecretBox | None = None
        self._lock = threading.Lock()

    @property
    def box(self) -> SecretBox:
        box = self._box
        if box is None:
            with self._lock:
                if self._box is None:
                    key = (
                        os.urandom(KEY_BYTES)
                        if self.data_dir is None
                        else load_or_create_key(self.data_dir)
                    )
                    self._box = SecretBox(key)
                box = self._box
        return box

    def ensure(self) -> None:
        """Create the key file now if there is none (``iinode init``)."""
        _ = self.box

    def seal(self, secret: bytes) -> bytes:
        return self.box.seal(secret)

    def open(self, raw: bytes) -> bytes:
        return self.box.open(raw)


__all__ = ["NODE_KEY_FILE", "NodeSecrets", "SecretBox", "key_id", "load_or_create_key"]
