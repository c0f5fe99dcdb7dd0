"""Authentication and authorisation, shared by every front end.

Identities are ``index:handle`` references (``300:0.NA/88.118.8``).  An
identity authenticates with the secret whose salted PBKDF2 hash is stored in
the HS_SECKEY value at that index.  An operation on a handle is allowed when an
HS_ADMIN value of the handle (or, to create one, of the prefix record
``0.NA/<prefix>``) grants the needed bit to the identity, directly or through
an HS_VLIST group, or when the identity is an administrator of the node.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from iinode.errors import AuthenticationFailed, InvalidHandle, NotAuthorized
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    IndexedHandle,
    Record,
    SecKeyData,
    VListData,
)

HASH_SCHEME = b"PBKDF2-HMAC-SHA256"
HASH_ITERATIONS = 50_000
_MAX_GROUP_DEPTH = 4

#: Fetches a record (or None) by handle: the authoriser's only view of the store.
RecordLookup = Callable[[HandleName], Awaitable[Record | None]]


def hash_secret(
    secret: str, *, iterations: int = HASH_ITERATIONS, salt: bytes | None = None
) -> bytes:
    """The stored form of an HS_SECKEY secret: ``PBKDF2-HMAC-SHA256$iter$salt$hash``."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)
    return b"$".join(
        [HASH_SCHEME, str(iterations).encode(), base64.b64encode(salt), base64.b64encode(digest)]
    )


def is_hashed(raw: bytes) -> bool:
    return raw.startswith(HASH_SCHEME + b"$")


def verify_secret(secret: str, stored: bytes) -> bool:
    if not is_hashed(stored):
        return hmac.compare_digest(secret.encode("utf-8"), stored)
    try:
        _, iterations, salt, digest = stored.split(b"$")
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac(
            "sha256", secret.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True, slots=True)
class Credentials:
    identity: IndexedHandle
    secret: str


class Authorizer:
    """Checks identities and HS_ADMIN permissions against records in a store."""

    def __init__(self, lookup: RecordLookup, node_admins: frozenset[IndexedHandle]) -> None:
        self._lookup = lookup
        self._node_admins = node_admins
        self._verified: dict[tuple[str, bytes], bool] = {}

    async def authenticate(self, creds: Credentials) -> IndexedHandle:
        """Return the identity if the secret matches its HS_SECKEY; else raise."""
        record = await self._lookup(creds.identity.handle)
        value = (
            None
            if record is None
            else next((v for v in record if v.index == creds.identity.index), None)
        )
        if value is None or not isinstance(value.data, SecKeyData):
            raise AuthenticationFailed(f"identity {creds.identity} has no HS_SECKEY")
        stored = value.data.raw
        key = (str(creds.identity), hashlib.sha256(creds.secret.encode() + b"\0" + stored).digest())
        ok = self._verified.get(key)
        if ok is None:
            ok = verify_secret(creds.secret, stored)
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = ok
        if not ok:
            raise AuthenticationFailed(f"wrong secret for identity {creds.identity}")
        return creds.identity

    def is_node_admin(self, identity: IndexedHandle) -> bool:
        return identity in self._node_admins

    async def allowed(
        self, identity: IndexedHandle, admins: Record, needed: AdminPermission
    ) -> bool:
        if self.is_node_admin(identity):
            return True
        for value in admins:
            if not isinstance(value.data, AdminData) or needed not in value.data.permissions:
                continue
            if await self._is_member(identity, value.data.admin, _MAX_GROUP_DEPTH):
                return True
        return False

    async def require(
        self, identity: IndexedHandle, admins: Record, needed: AdminPermission, what: str
    ) -> None:
        if not await self.allowed(identity, admins, needed):
            raise NotAuthorized(f"{identity} lacks the {needed.name} permission to {what}")

    async def _is_member(self, identity: IndexedHandle, ref: IndexedHandle, depth: int) -> bool:
        if ref == identity:
            return True
        if depth == 0:
            return False
        try:
            record = await self._lookup(ref.handle)
        except InvalidHandle:
            return False
        if record is None:
            return False
        for value in record:
            if value.index == ref.index and isinstance(value.data, VListData):
                for member in value.data.refs:
                    if await self._is_member(identity, member, depth - 1):
                        return True
        return False
