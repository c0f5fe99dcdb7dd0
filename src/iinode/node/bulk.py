"""The trusted local path for loading many identifiers at once (``bulk-load``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from iinode.errors import ServerNotResponsible
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    SecKeyData,
    StringData,
    check_record,
)
from iinode.identifiers.wire import WireWriter
from iinode.node.verifier import protect_seckey
from iinode.storage.search import TEMPLATE_LINK_INDEX, BulkTerms, values_terms

if TYPE_CHECKING:
    from iinode.node.service import HandleService

#: Data classes that are text: neither an HS_ADMIN nor a secret key.
_TEXT_DATA = frozenset({StringData, *StringData.__subclasses__()})
#: Permissions given to the creator when a new handle arrives without HS_ADMIN.
DEFAULT_ADMIN_PERMISSIONS = AdminPermission.from_bits("011111110011")


class BulkRegistrar:
    """Encodes rows for ``HandleStore.bulk_put`` and writes them in batches.

    Ownership and syntax are checked per row, and a row with a template link against
    its template (``load_templates`` first); authorisation is the operator's
    access to the data directory.  Each new handle gets an HS_ADMIN naming the
    prefix's administrators (``200:0.NA/<prefix>``) unless it has one.  An
    HS_SECKEY is stored as on every other path: sealed with the node key, never public.
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
        #: Prefixes found not to be delegated away (``refuse_delegated``).
        self._undelegated: set[str] = set()
        #: Search terms of the rows encoded and not yet written, by handle.
        self._terms: BulkTerms = {}
        #: The batch ``write_behind`` started and nobody has waited for yet.
        self._pending: asyncio.Future[tuple[int, int]] | None = None

    def encode(self, handle: HandleName, values: Sequence[HandleValue]) -> tuple[str, str, bytes]:
        prefix = handle.prefix_text
        if prefix not in self._inside:
            if handle.is_na_handle or not handle.authority.is_within(self.owned):
                raise ServerNotResponsible(f"{handle} is outside this node's prefix {self.owned}")
            if len(self._inside) < 4096:
                self._inside.add(prefix)
        if len(values) > 1:
            values = check_record(values)
        for v in values:
            if v.index == TEMPLATE_LINK_INDEX:  # registered against a template: checked
                values = self.service.templates.check_sync(handle, values)
                break
        has_admin = secret = False
        for v in values:
            data = v.data
            if type(data) in _TEXT_DATA:  # the common case, spared two ABC checks
                continue
            if isinstance(data, AdminData):
                has_admin = True
            elif isinstance(data, SecKeyData):
                secret = True
        if secret:
            secrets = self.service.secrets
            values = [
                protect_seckey(v, secrets) if isinstance(v.data, SecKeyData) else v for v in values
            ]
        admin_wire = b""
        admin_index = 100
        if not has_admin:
            taken = {v.index for v in values}
            while admin_index in taken:  # index 100 holds something else: the next free one
                admin_index += 1
            admin_wire = (
                self._admin_wire
                if admin_index == 100
                else replace(self._admin, index=admin_index).to_wire()
            )
        w = WireWriter().u32(len(values) + (not has_admin))
        for v in values:
            if admin_wire and v.index > admin_index:
                w.raw(admin_wire)
                admin_wire = b""
            v.write(w, self._now)
        if admin_wire:
            w.raw(admin_wire)
        name = str(handle)
        self._terms[name] = values_terms(values)  # handed to the store with the row
        return name, handle.prefix_text, w.getvalue()

    async def load_templates(self) -> None:
        """Load the templates of the node's prefix, so rows linking to them are checked
        (a row linking to a template not loaded is refused)."""
        await self.service.templates.preload_prefix(self.owned.text)

    async def refuse_delegated(self, handle: HandleName) -> None:
        """Raise ``ServerNotResponsible`` if ``handle`` lies under a prefix this node has
        delegated to another node (it holds ``0.NA/<that prefix>`` with an HS_SITE):
        the child answers for it, so a record loaded here would never be served."""
        prefix = handle.prefix_text
        if prefix in self._undelegated or not handle.authority.is_within(self.owned):
            return  # outside the owned prefix: ``encode`` refuses it
        referral = await self.service.route(handle)
        if referral is not None and referral.delegated_prefix is not None:
            delegated = referral.delegated_prefix
            raise ServerNotResponsible(
                f"{handle} is under {delegated}, which this node has delegated to another "
                f"node ({delegated.na_handle}); load it there",
                handle=str(handle),
            )
        if len(self._undelegated) < 4096:
            self._undelegated.add(prefix)

    async def write(self, rows: Sequence[tuple[str, str, bytes]]) -> tuple[int, int]:
        """Write encoded rows in one transaction and wait for it: (written, skipped).
        A row under a delegated prefix refuses the whole batch.  A batch
        ``write_behind`` left in flight is waited for first, its result not reported
        here (``drain`` reports it)."""
        await self.drain()
        terms = self._take_terms(rows)
        await self._refuse_delegated_rows(rows)
        return await self._put(rows, terms)

    async def write_behind(self, rows: Sequence[tuple[str, str, bytes]]) -> tuple[int, int] | None:
        """Start writing ``rows`` (one transaction) and return once the batch started
        before them is committed, with that batch's (written, skipped); None if there
        was none.  So the caller encodes the next batch while the store writes this one
        (at most one batch in flight).  A failed batch raises at the next call (or at
        ``drain``), a row under a delegated prefix at once; either way the rows given
        with that call are not started: every batch before the failed one is
        committed, nothing after it is written."""
        batch = list(rows)
        # Refused before the batch in flight is waited for: its result stays for ``drain``.
        await self._refuse_delegated_rows(batch)
        previous = await self.drain()
        terms = self._take_terms(batch)
        self._pending = asyncio.ensure_future(self._put(batch, terms))
        # One turn of the loop: the task hands the batch to the store (for SQLite, its
        # writer thread) now, not when the caller next awaits after encoding.
        await asyncio.sleep(0)
        return previous

    async def drain(self) -> tuple[int, int] | None:
        """Wait for the batch ``write_behind`` started: its (written, skipped), or None
        if none is in flight.  Call it after the last batch, and before giving up on a
        load, so that the batch in flight is done (committed or failed) first."""
        pending, self._pending = self._pending, None
        return None if pending is None else await pending

    def _take_terms(self, rows: Sequence[tuple[str, str, bytes]]) -> BulkTerms:
        """The search terms of ``rows`` (taken now: a later batch may encode a handle again)."""
        return {r[0]: self._terms.pop(r[0], []) for r in rows}

    async def _refuse_delegated_rows(self, rows: Sequence[tuple[str, str, bytes]]) -> None:
        for handle, prefix, _ in rows:
            if prefix not in self._undelegated:
                await self.refuse_delegated(HandleName.parse(handle))

    async def _put(
        self, rows: Sequence[tuple[str, str, bytes]], terms: BulkTerms
    ) -> tuple[int, int]:
        try:
            result = await self.service.store.bulk_put(rows, overwrite=self.overwrite, terms=terms)
        finally:
            # Also after a failure: part of the rows may have been committed.
            self.service.changes.bump()
        return result.written, result.skipped


__all__ = ["DEFAULT_ADMIN_PERMISSIONS", "BulkRegistrar"]
