"""The node's server key pair: what its HS_SITE publishes and what signs its answers.

Like a Handle.Net server set up by ``hdl-setup-server`` (``HSG.KEY_ALGORITHM``
``RSA``, ``HSG.KEY_STRENGTH`` 2048), every node holds one RSA 2048 key pair.
The private key lives in ``<data dir>/server_key.pem`` (PKCS#8, mode 0600),
never in the handle store; the public key goes into each server record of the
node's HS_SITE in the HS_PUBKEY encoding (RFC 3651 s3.2.2), so clients can
check responses the node signs (certified requests, RFC 3652 s2.2.4) and set
up Diffie-Hellman sessions with it.

The key is created by ``iinode init`` (through ``HandleService.initialise``)
or on the first start of a node made before keys existed; ``iinode keys
rotate`` replaces it (the previous one is kept as ``server_key.pem.old``).
Several worker processes may start at once: the key file is published with a
hard link, so exactly one of them creates it and the others read it.  A
running server notices a rotation through ``ServerKeyFile.current``.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from iinode.errors import ConfigurationError
from iinode.node.public_keys import encode_public_key
from iinode.node.secret_box import sync_dir

#: File name of the private key inside the node's data directory.
KEY_FILE = "server_key.pem"
#: Where ``rotate_server_key`` keeps the key it replaced.
OLD_KEY_FILE = KEY_FILE + ".old"
#: Key type and size of ``hdl-setup-server`` (``HSG.KEY_ALGORITHM``, ``HSG.KEY_STRENGTH``).
KEY_ALGORITHM = "RSA"
KEY_BITS = 2048
PUBLIC_EXPONENT = 65537


@dataclass(frozen=True, slots=True)
class ServerKey:
    """One key pair; ``public_bytes`` is its HS_PUBKEY encoding."""

    private: rsa.RSAPrivateKey
    public_bytes: bytes = field(default=b"")

    def __post_init__(self) -> None:
        if not self.public_bytes:
            object.__setattr__(self, "public_bytes", encode_public_key(self.private.public_key()))

    @classmethod
    def generate(cls) -> ServerKey:
        return cls(rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS))

    def to_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, pem: bytes, where: str = "server key") -> ServerKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"{where} is not a readable private key: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError(f"{where} is not an RSA key")
        return cls(key)


def key_path(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_FILE


def _write_private(path: Path, key: ServerKey) -> Path:
    """Write ``key`` to a fresh temporary file next to ``path`` (mode 0600, synced)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.to_pem())
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _read(path: Path) -> ServerKey:
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"{path} is readable by others (mode {stat.filemode(info.st_mode)}); "
            f"run: chmod 600 {path}"
        )
    return ServerKey.from_pem(path.read_bytes(), str(path))


def load_server_key(data_dir: Path, *, create: bool = True) -> ServerKey:
    """The node's key pair, created first if there is none yet (and ``create``)."""
    path = key_path(data_dir)
    if path.exists() or not create:
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ServerKey.generate()
    tmp = _write_private(path, key)
    try:
        os.link(tmp, path)  # fails if another process published its key first
    except FileExistsError:
        return _read(path)
    finally:
        tmp.unlink()
        sync_dir(path.parent)
    return key


def rotate_server_key(data_dir: Path) -> ServerKey:
    """Replace the node's key pair with a new one; the old key becomes ``.old``."""
    path = key_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ServerKey.generate()
    tmp = _write_private(path, key)
    if path.exists():
        os.replace(path, path.with_name(OLD_KEY_FILE))
    os.replace(tmp, path)
    sync_dir(path.parent)
    return key


class ServerKeyFile:
    """The key of a running server, reloaded when the file is replaced (a rotation).

    ``current`` looks at the file at most every ``check_interval`` seconds.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        check_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = key_path(data_dir)
        self.check_interval = check_interval
        self._clock = clock
        self._key = load_server_key(data_dir)
        self._stamp = self._file_stamp()
        self._next_check = clock() + check_interval

    def _file_stamp(self) -> tuple[int, int]:
        try:
            info = self.path.stat()
        except OSError:
            return (0, 0)
        return (info.st_ino, info.st_mtime_ns)

    def current(self) -> ServerKey:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            stamp = self._file_stamp()
            if stamp != self._stamp and stamp != (0, 0):
                try:
                    self._key = _read(self.path)
                    self._stamp = stamp
                except (OSError, ConfigurationError):
                    pass  # keep signing with the key we have
        return self._key


__all__ = [
    "KEY_BITS",
    "KEY_FILE",
    "OLD_KEY_FILE",
    "ServerKey",
    "ServerKeyFile",
    "key_path",
    "load_server_key",
    "rotate_server_key",
]
