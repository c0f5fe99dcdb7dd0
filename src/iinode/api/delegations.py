"""A node's children, as its delegation records ``0.NA/<child>`` describe them.

The parent holds one record per delegated prefix: an HS_SITE (where the child
is) and, for a child that reports upward, its HS_SECKEY at index 300.
:class:`HandleAuthenticator` checks monitoring credentials against those
records; :func:`delegated_children` lists the children (for ``/monitoring/nodes``,
which shows children that never reported too).
"""

from __future__ import annotations

from iinode.errors import HandleError
from iinode.identifiers import HandleName, IndexedHandle, Prefix, SiteData, decode_record
from iinode.node.auth import Credentials
from iinode.node.service import HandleService

_NA = "0.NA"
_PAGE = 1000


class HandleAuthenticator:
    """Checks ``index:0.NA/<prefix>`` identities against this node's handle records.

    An identity proves the prefix ``P`` of its ``0.NA/P`` handle when its secret
    matches the HS_SECKEY at that index.  ``P`` is a child when this node holds
    a delegation for it (``0.NA/P`` with an HS_SITE) and ``P`` sits directly
    below the node's own prefix.
    """

    def __init__(self, service: HandleService) -> None:
        self.service = service
        self._children: set[Prefix] = set()

    async def _identity(self, username: str, password: str) -> IndexedHandle | None:
        try:
            identity = IndexedHandle.parse(username)
            if not identity.handle.is_na_handle:
                return None
            return await self.service.auth.authenticate(Credentials(identity, password))
        except HandleError:
            return None

    async def __call__(self, username: str, password: str) -> Prefix | None:
        identity = await self._identity(username, password)
        if identity is None:
            return None
        prefix = identity.handle.authority
        owned = self.service.owned
        if owned is not None and prefix.parent == owned:
            record = await self.service.lookup(prefix.na_handle) or ()
            if any(isinstance(v.data, SiteData) for v in record):
                self._children.add(prefix)
            else:
                self._children.discard(prefix)
        return prefix

    def is_child(self, prefix: Prefix) -> bool:
        return prefix in self._children

    async def is_admin(self, username: str, password: str) -> bool | None:
        identity = await self._identity(username, password)
        if identity is None:
            return None
        return self.service.auth.is_node_admin(identity)


async def delegated_children(service: HandleService) -> list[str]:
    """Prefixes delegated directly below this node's own (``0.NA/P`` with an HS_SITE), sorted.

    Reads the store's listing of ``0.NA`` handles page by page, each page's
    records in one batch.
    """
    owned = service.owned
    if owned is None:
        return []
    store = service.store
    out: list[str] = []
    page = 0
    while True:
        listing = await store.list_handles(_NA, page=page, page_size=_PAGE)
        candidates: list[tuple[str, Prefix]] = []
        for text in listing.handles:
            try:
                prefix = HandleName.parse(text).authority
            except HandleError:
                continue
            if prefix.parent == owned:
                candidates.append((text, prefix))
        records = await store.get_many([text for text, _ in candidates])
        for text, prefix in candidates:
            raw = records.get(text)
            if raw is None:
                continue
            try:
                values = decode_record(raw)
            except HandleError:
                continue
            if any(isinstance(v.data, SiteData) for v in values):
                out.append(prefix.text)
        page += 1
        if not listing.handles or page * _PAGE >= listing.total:
            break
    return sorted(out)


__all__ = ["HandleAuthenticator", "delegated_children"]
