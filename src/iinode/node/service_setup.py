"""Setting a node up: its own HS_SITE and its prefix record ``0.NA/<prefix>``.

Part of ``HandleService`` (``node.service``), kept apart from reading and writing
handles: ``NodeSetup`` is a base class whose methods use the service's settings,
store, node key and change counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from iinode.errors import ServerNotResponsible
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    Prefix,
    Record,
    SecKeyData,
    SiteData,
    VListData,
    check_record,
    encode_record,
    site_for,
)
from iinode.node.changes import ChangeCounter
from iinode.node.secret_box import NodeSecrets
from iinode.node.server_keys import load_server_key
from iinode.node.settings import NodeSettings
from iinode.storage import HandleStore


class NodeSetup:
    """The set-up methods of ``HandleService``."""

    settings: NodeSettings
    store: HandleStore
    owned: Prefix | None
    secrets: NodeSecrets
    changes: ChangeCounter

    # Given by HandleService (declared here for the methods below).
    now: Callable[[], int]
    lookup: Callable[[HandleName], Awaitable[Record | None]]

    def _own_site(self, owned: Prefix) -> SiteData:
        """The HS_SITE describing where this node is served, with its server key
        (created here on the first start of a node that has none: ``node.server_keys``)."""
        return site_for(
            self.settings.public_host,
            http_port=self.settings.http_port,
            handle_port=self.settings.handle_port,
            description=self.settings.name or f"{self.settings.role.value} node for {owned}",
            public_key=load_server_key(self.settings.data_dir).public_bytes,
        )

    async def initialise(self, secret: str) -> HandleName:
        """Create this node's prefix record ``0.NA/<prefix>`` with its admin identity."""
        owned = self.owned
        if owned is None:
            raise ServerNotResponsible("a recursive node owns no prefix")
        na = owned.na_handle
        now = self.now()
        site = self._own_site(owned)
        self.secrets.ensure()  # the node key is created with the node
        sealed = await asyncio.to_thread(self.secrets.seal, secret.encode("utf-8"))
        record = check_record(
            [
                HandleValue(1, "HS_SITE", site, timestamp=now),
                HandleValue(
                    100,
                    "HS_ADMIN",
                    AdminData(AdminPermission.all(), IndexedHandle(200, na)),
                    timestamp=now,
                ),
                HandleValue(200, "HS_VLIST", VListData((IndexedHandle(300, na),)), timestamp=now),
                HandleValue(
                    300,
                    "HS_SECKEY",
                    SecKeyData(sealed),
                    timestamp=now,
                    permissions=Permissions.ADMIN_READ | Permissions.ADMIN_WRITE,
                ),
            ]
        )
        await self.store.modify(str(na), lambda _old: encode_record(record))
        self.changes.bump()
        return na

    async def refresh_site(self) -> None:
        """Keep the HS_SITE of ``0.NA/<prefix>`` in step with the configured ports."""
        owned = self.owned
        if owned is None:
            return
        record = await self.lookup(owned.na_handle)
        if record is None:
            return
        site = self._own_site(owned)
        new = tuple(
            replace(v, data=site) if v.index == 1 and v.type == "HS_SITE" else v for v in record
        )
        if new != record:
            raw = encode_record(new)
            await self.store.modify(str(owned.na_handle), lambda _old: raw)
            self.changes.bump()


__all__ = ["NodeSetup"]
