"""Authentication of child nodes for the reporting API.

The router takes any ``Authenticator``: an async callable from the HTTP Basic
username and password (and, as ``peer``, the client's address, for limits on
failed attempts) to the prefix those credentials prove, or ``None``.  The
identifier node plugs in its Handle-based check (``300:0.NA/<prefix>`` against
the prefix's HS_SECKEY); ``MemoryAuthenticator`` is the in-memory one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Awaitable
from typing import Protocol
from urllib.parse import quote, unquote

from iinode.identifiers import Prefix


class Authenticator(Protocol):
    """May raise ``ReportRefused`` (401) when ``peer`` is out of attempts."""

    def __call__(
        self, username: str, password: str, /, *, peer: str | None = None
    ) -> Awaitable[Prefix | None]: ...


class AdminCheck(Protocol):
    """``True`` for a node administrator, ``False`` for anyone else, ``None`` if the
    credentials do not authenticate; may raise ``ReportRefused`` like an ``Authenticator``."""

    def __call__(
        self, username: str, password: str, /, *, peer: str | None = None
    ) -> Awaitable[bool | None]: ...


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic`` header, else ``None``.

    RFC 7617 forbids ``:`` in the user-id, so a Handle identity such as
    ``300:0.NA/88.118.8`` travels percent-encoded (``300%3A0.NA%2F88.118.8``),
    as the Handle.Net REST API does; it is decoded here.
    """
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon:
        return None
    return unquote(user), password


def basic_username(identity: str) -> str:
    """The user-id to send for ``identity`` (percent-encoded, see ``parse_basic``)."""
    return quote(identity, safe="")


def handle_identity(prefix: Prefix, index: int = 300) -> str:
    """The Handle-style identity of a prefix's administrator: ``300:0.NA/<prefix>``."""
    return f"{index}:{prefix.na_handle}"


class MemoryAuthenticator:
    """Identities and secrets held in memory (secrets kept as SHA-256 digests)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[bytes, Prefix]] = {}

    def add(self, prefix: Prefix, secret: str, identity: str | None = None) -> str:
        user = identity or handle_identity(prefix)
        self._entries[user] = (hashlib.sha256(secret.encode()).digest(), prefix)
        return user

    async def __call__(
        self, username: str, password: str, /, *, peer: str | None = None
    ) -> Prefix | None:
        entry = self._entries.get(username)
        digest = hashlib.sha256(password.encode()).digest()
        if entry is None:
            hmac.compare_digest(digest, digest)
            return None
        return entry[1] if hmac.compare_digest(entry[0], digest) else None
