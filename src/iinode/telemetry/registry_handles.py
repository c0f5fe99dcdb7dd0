"""The equipment registry backed by the identifier store.

Every machine, line, sensor or controller is an identifier under the
enterprise prefix (``88.118.8/PRESS-01``).  Its record carries two typed
values next to the usual ones, both UTF-8 JSON text:

========================  ==========================================================
``IINODE_EQUIPMENT``      ``{"v": 1, "kind", "model", "vendor", "line", "location",
                          "connection": {"protocol", "address", "options"}}``
``IINODE_TAGS``           ``[{"name", "data_type", "unit", "description"}, ...]``
========================  ==========================================================

New records get them at indexes 2 and 3, a ``URL`` at index 1 (the
equipment's telemetry page, when the node's URL is known) and the default
HS_ADMIN; an existing record keeps its other values.  Reads and writes go
through :class:`~iinode.node.service.HandleService`, so equipment written over
``/api/handles``, ``/telemetry/equipment`` or the CLI is the same thing, and
writes are authorised by HS_ADMIN like any other handle write.

Reads on behalf of someone (:meth:`HandleRegistry.readable`,
:meth:`HandleRegistry.listing`, used by the HTTP API) see what
``/api/handles`` would show them: values with PUBLIC_READ, and values with
ADMIN_READ to an identity that HS_ADMIN gives READ_VALUE.  Equipment whose
``IINODE_EQUIPMENT`` value (which holds connection addresses) is hidden from
the caller is not shown; listing needs LIST_HANDLES on the prefix (or the
node's administrator), as ``GET /api/handles?prefix=`` does.  The ingest
validator uses :meth:`HandleRegistry.get`, the node's own unrestricted view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from iinode.errors import (
    AuthenticationNeeded,
    HandleError,
    HandleNotFound,
    InvalidHandle,
    NotAuthorized,
    ValueInvalid,
)
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    Prefix,
    Record,
    StringData,
    UrlData,
    decode_record,
)
from iinode.node.record_rules import admins_of
from iinode.node.service import HandleService
from iinode.telemetry.model import Connection, Equipment, EquipmentKind, Tag

log = logging.getLogger(__name__)

EQUIPMENT_TYPE = "IINODE_EQUIPMENT"
TAGS_TYPE = "IINODE_TAGS"
EQUIPMENT_TYPES = (EQUIPMENT_TYPE, TAGS_TYPE)
_FORMAT_VERSION = 1
_PAGE = 1000


def attributes_json(equipment: Equipment) -> str:
    """The ``IINODE_EQUIPMENT`` text of an equipment record."""
    body = {
        "v": _FORMAT_VERSION,
        "kind": equipment.kind.value,
        "model": equipment.model,
        "vendor": equipment.vendor,
        "line": equipment.line,
        "location": equipment.location,
        "connection": equipment.connection.to_json(),
    }
    return orjson.dumps(body).decode()


def tags_json(equipment: Equipment) -> str:
    """The ``IINODE_TAGS`` text of an equipment record."""
    return orjson.dumps([t.to_json() for t in equipment.tags]).decode()


def _text(value: HandleValue) -> str:
    data = value.data
    if isinstance(data, StringData):
        return data.text
    raw = data.to_wire()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueInvalid(f"{value.type} at index {value.index} is not UTF-8 text") from None


def _load(value: HandleValue) -> Any:
    try:
        return orjson.loads(_text(value))
    except orjson.JSONDecodeError as exc:
        raise ValueInvalid(f"{value.type} at index {value.index} is not JSON: {exc}") from None


def equipment_from_record(handle: str, record: Sequence[HandleValue]) -> Equipment | None:
    """The equipment a record describes, ``None`` if it has no ``IINODE_EQUIPMENT`` value.

    Raises ``ValueInvalid`` if the values are present but malformed.
    """
    attrs = next((v for v in record if v.type.upper() == EQUIPMENT_TYPE), None)
    if attrs is None:
        return None
    tags_value = next((v for v in record if v.type.upper() == TAGS_TYPE), None)
    body = _load(attrs)
    tags = [] if tags_value is None else _load(tags_value)
    if not isinstance(body, dict):
        raise ValueInvalid(f"{EQUIPMENT_TYPE} of {handle} must be a JSON object", handle=handle)
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise ValueInvalid(f"{TAGS_TYPE} of {handle} must be a JSON list of objects", handle=handle)
    try:
        return Equipment(
            id=handle,
            kind=EquipmentKind(body.get("kind", "machine")),
            model=str(body.get("model", "")),
            vendor=str(body.get("vendor", "")),
            line=None if body.get("line") is None else str(body["line"]),
            location=str(body.get("location", "")),
            connection=Connection.from_json(body.get("connection") or {}),
            tags=tuple(Tag.from_json(t) for t in tags),
        )
    except (ValueError, TypeError) as exc:
        raise ValueInvalid(f"equipment record {handle} is invalid: {exc}", handle=handle) from None


def equipment_values(
    equipment: Equipment, *, url: str | None = None, existing: Record = ()
) -> list[HandleValue]:
    """The values to write for ``equipment``, at the indexes ``existing`` already uses for them."""
    used = {v.index for v in existing}
    by_type = {v.type.upper(): v.index for v in existing if v.type.upper() in EQUIPMENT_TYPES}

    def index_for(vtype: str, preferred: int) -> int:
        if vtype in by_type:
            return by_type[vtype]
        index = preferred
        while index in used:
            index += 1
        used.add(index)
        return index

    out = [
        HandleValue(
            index_for(EQUIPMENT_TYPE, 2), EQUIPMENT_TYPE, StringData(attributes_json(equipment))
        ),
        HandleValue(index_for(TAGS_TYPE, 3), TAGS_TYPE, StringData(tags_json(equipment))),
    ]
    if url is not None and not existing:
        out.insert(0, HandleValue(1, "URL", UrlData(url)))
    return out


class HandleRegistry:
    """An :class:`~iinode.telemetry.registry.EquipmentRegistry` over a node's handles.

    ``base_url`` (the node's HTTP URL) gives new records a ``URL`` value pointing
    at ``/telemetry/equipment/<handle>``.  Writes with ``identity=None`` are made
    as the node's own administrator.  ``check`` refuses equipment before anything
    is written (it raises ``ValueInvalid``; the node passes the connection checks
    of ``iinode.connectivity.endpoints``).
    """

    def __init__(
        self,
        service: HandleService,
        *,
        base_url: str | None = None,
        check: Callable[[Equipment], None] | None = None,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/") if base_url else None
        self.check = check
        #: Told the id of equipment written or removed through this registry; must not raise.
        self.observers: list[Callable[[str], None]] = []
        admin = service.settings.admin_identity
        self._node_identity = None if admin is None else IndexedHandle.parse(admin)

    def _identity(self, identity: IndexedHandle | None) -> IndexedHandle:
        if identity is not None:
            return identity
        if self._node_identity is None:
            raise InvalidHandle("this node owns no prefix; it cannot hold equipment")
        return self._node_identity

    async def _local_record(self, name: HandleName) -> Record | None:
        owned = self.service.owned
        if owned is None or not name.authority.is_within(owned):
            return None
        if await self.service.route(name) is not None:
            return None
        return await self.service.lookup(name)

    async def get(self, equipment_id: str) -> Equipment | None:
        try:
            name = HandleName.parse(equipment_id)
        except InvalidHandle:
            return None
        record = await self._local_record(name)
        if record is None:
            return None
        try:
            return equipment_from_record(str(name), record)
        except ValueInvalid as exc:
            log.warning("equipment record %s is unusable: %s", name, exc.message)
            return None

    async def put(self, equipment: Equipment, identity: IndexedHandle | None = None) -> None:
        name = HandleName.parse(equipment.id)
        if self.check is not None:
            self.check(equipment)
        who = self._identity(identity)
        existing = await self.service.lookup(name)
        url = f"{self.base_url}/telemetry/equipment/{name}" if self.base_url else None
        if existing is None:
            values = equipment_values(equipment, url=url)
            created = await self.service.create(name, values, who, overwrite=False)
            if created:
                self._changed(str(name))
                return
            existing = await self.service.lookup(name) or ()
        values = equipment_values(equipment, existing=existing)
        await self.service.put_values(name, values, who)
        self._changed(str(name))

    def _changed(self, equipment_id: str) -> None:
        for observer in list(self.observers):
            observer(equipment_id)

    async def remove(self, equipment_id: str, identity: IndexedHandle | None = None) -> None:
        name = HandleName.parse(equipment_id)
        who = self._identity(identity)
        record = await self._local_record(name)
        if record is None or equipment_from_record(str(name), record) is None:
            raise HandleNotFound(f"equipment {name} is not registered", handle=str(name))
        ours = [v.index for v in record if v.type.upper() in EQUIPMENT_TYPES]
        rest = [
            v
            for v in record
            if v.index not in ours
            and not isinstance(v.data, AdminData)
            and not (v.type.upper() == "URL" and "/telemetry/equipment/" in _text(v))
        ]
        if rest:
            await self.service.remove_values(name, ours, who)
        else:
            await self.service.delete(name, who)
        self._changed(str(name))

    async def _visible(self, record: Record, identity: IndexedHandle | None) -> Record:
        """The values of ``record`` that ``identity`` may read (the rule of ``/api/handles``)."""
        hidden = identity is not None and await self.service.auth.allowed(
            identity, admins_of(record), AdminPermission.READ_VALUE
        )
        return tuple(
            v
            for v in record
            if v.publicly_readable or (hidden and v.permissions & Permissions.ADMIN_READ)
        )

    async def readable(self, equipment_id: str, identity: IndexedHandle | None) -> Equipment | None:
        """The equipment as ``identity`` (``None``: anonymous) may see it; ``None`` if not
        registered.  Raises ``AuthenticationNeeded`` / ``NotAuthorized`` when its record is
        there but hidden from the caller."""
        try:
            name = HandleName.parse(equipment_id)
        except InvalidHandle:
            return None
        record = await self._local_record(name)
        if record is None or self._equipment_of(str(name), record) is None:
            return None
        item = self._equipment_of(str(name), await self._visible(record, identity))
        if item is not None:
            return item
        if identity is None:
            raise AuthenticationNeeded(
                f"equipment {name} is not publicly readable; give HTTP Basic credentials",
                handle=str(name),
            )
        raise NotAuthorized(f"{identity} may not read equipment {name}", handle=str(name))

    async def listing(self, prefix: str | None, identity: IndexedHandle | None) -> list[Equipment]:
        """:meth:`list` on behalf of ``identity``: needs LIST_HANDLES on the prefix (or the
        node's administrator); equipment whose record is hidden from it is left out."""
        if identity is None:
            raise AuthenticationNeeded("listing equipment needs HTTP Basic credentials")
        owned = self.service.owned
        wanted = owned if prefix is None else Prefix(prefix)
        if wanted is None:
            return []
        na = await self.service.lookup(wanted.na_handle)
        await self.service.auth.require(
            identity, admins_of(na or ()), AdminPermission.LIST_HANDLES, f"list {wanted}"
        )
        return await self._list(wanted.text, identity)

    async def _list(
        self, prefix: str | None, identity: IndexedHandle | None, *, trusted: bool = False
    ) -> list[Equipment]:
        """Equipment directly under ``prefix`` (default: the node's own), sorted by id.

        Pages through the store's keyset listing (``list_after``, no count and no
        offset) and reads each page's records in one batched ``get_many``; a
        prefix delegated to another node holds none here.
        """
        owned = self.service.owned
        if owned is None:
            return []
        wanted = owned if prefix is None else Prefix(prefix)
        if not wanted.is_within(owned) or await self.service.route(wanted.handle("x")) is not None:
            return []
        store = self.service.store
        out: list[Equipment] = []
        after: str | None = None
        while True:
            handles = await store.list_after(wanted.text, after, limit=_PAGE)
            records = await store.get_many(handles)
            for text in handles:
                raw = records.get(text)
                if raw is None:
                    continue
                try:
                    record = decode_record(raw)
                except HandleError as exc:
                    log.warning("equipment record %s is unusable: %s", text, exc.message)
                    continue
                item = self._equipment_of(text, record)
                if item is not None and not trusted:
                    item = self._equipment_of(text, await self._visible(record, identity))
                if item is not None:
                    out.append(item)
            if len(handles) < _PAGE:
                break
            after = handles[-1]
        return sorted(out, key=lambda e: e.id)

    @staticmethod
    def _equipment_of(handle: str, record: Record) -> Equipment | None:
        try:
            return equipment_from_record(handle, record)
        except HandleError as exc:
            log.warning("equipment record %s is unusable: %s", handle, exc.message)
            return None

    async def list(self, prefix: str | None = None) -> list[Equipment]:
        """Every equipment under ``prefix`` (default: the node's own), as the node sees it."""
        return await self._list(prefix, None, trusted=True)
