"""The trusted local path for loading many identifiers at once (``bulk-load``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from iinode.errors import ServerNotResponsible
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    SecKeyData,
    check_record,
)
from iinode.identifiers.wire import WireWriter
from iinode.node.verifier import protect_seckey

if TYPE_CHECKING:
    from iinode.node.service import HandleService

#: Permissions given to the creator when a new handle arrives without HS_ADMIN.
DEFAULT_ADMIN_PERMISSIONS = AdminPermission.from_bits("011111110011")


class BulkRegistrar:
    """Encodes rows for ``HandleStore.bulk_put`` and writes them in batches.

    Ownership and syntax are checked per row; authorisation is the operator's
    access to the data directory.  Each new handle gets an HS_ADMIN naming the
    prefix's administrators (``200:0.NA/<prefix>``) unless it has one.  An
    HS_SECKEY is stored as on every other path: as a verifier, never public.
    """

    def __init__(self, service: HandleService, *, overwrite: bool = False) -> None:
        owned = service.owned
        if owned is None:
            raise ServerNotResponsible("a recursive node owns no prefix to load into")
        self.service = service
        self.owned = owned
        self.overwrite = overwrite
        self._now = service.now()
        self._admin = HandleValue(
            100,
            "HS_ADMIN",
            AdminData(
                DEFAULT_ADMIN_PERMISSIONS | AdminPermission.LIST_HANDLES,
                IndexedHandle(200, owned.na_handle),
            ),
            timestamp=self._now,
        )
        self._admin_wire = self._admin.to_wire()
        #: Prefixes already found to lie within the owned one.
        self._inside: set[str] = set()

    def encode(self, handle: HandleName, values: Sequence[HandleValue]) -> tuple[str, str, bytes]:
        prefix = handle.prefix_text
        if prefix not in self._inside:
            if handle.is_na_handle or not handle.authority.is_within(self.owned):
                raise ServerNotResponsible(f"{handle} is outside this node's prefix {self.owned}")
            if len(self._inside) < 4096:
                self._inside.add(prefix)
        if len(values) > 1:
            values = check_record(values)
        add_admin = True
        secret = False
        for v in values:
            if v.index == 100 or isinstance(v.data, AdminData):
                add_admin = False
            elif isinstance(v.data, SecKeyData):
                secret = True
        if secret:
            values = [protect_seckey(v) if isinstance(v.data, SecKeyData) else v for v in values]
        w = WireWriter().u32(len(values) + add_admin)
        for v in values:
            if add_admin and v.index > 100:
                w.raw(self._admin_wire)
                add_admin = False
            v.write(w, self._now)
        if add_admin:
            w.raw(self._admin_wire)
        return str(handle), handle.prefix_text, w.getvalue()

    async def write(self, rows: Sequence[tuple[str, str, bytes]]) -> tuple[int, int]:
        try:
            result = await self.service.store.bulk_put(rows, overwrite=self.overwrite)
        finally:
            # Also after a failure: part of the rows may have been committed.
            self.service.changes.bump()
        return result.written, result.skipped


__all__ = ["DEFAULT_ADMIN_PERMISSIONS", "BulkRegistrar"]
