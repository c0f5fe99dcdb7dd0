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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from iinode.errors import HandleError, HandleNotFound, InvalidHandle, ValueInvalid
from iinode.identifiers import (
    AdminData,
    HandleName,
    HandleValue,
    IndexedHandle,
    Prefix,
    Record,
    StringData,
    UrlData,
    decode_record,
)
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
    as the node's own administrator.
    """

    def __init__(self, service: HandleService, *, base_url: str | None = None) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/") if base_url else None
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
        who = self._identity(identity)
        existing = await self.service.lookup(name)
        url = f"{self.base_url}/telemetry/equipment/{name}" if self.base_url else None
        if existing is None:
            values = equipment_values(equipment, url=url)
            created = await self.service.create(name, values, who, overwrite=False)
            if created:
                return
            existing = await self.service.lookup(name) or ()
        values = equipment_values(equipment, existing=existing)
        await self.service.put_values(name, values, who)

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

    async def list(self, prefix: str | None = None) -> list[Equipment]:
        """Equipment directly under ``prefix`` (default: the node's own), sorted by id.

        Pages through the store's listing and reads each page's records in one
        batched ``get_many``; a prefix delegated to another node holds none here.
        """
        owned = self.service.owned
        if owned is None:
            return []
        wanted = owned if prefix is None else Prefix(prefix)
        if not wanted.is_within(owned) or await self.service.route(wanted.handle("x")) is not None:
            return []
        store = self.service.store
        out: list[Equipment] = []
        page = 0
        while True:
            listing = await store.list_handles(wanted.text, page=page, page_size=_PAGE)
            records = await store.get_many(listing.handles)
            for text in listing.handles:
                raw = records.get(text)
                if raw is not None:
                    item = self._equipment(text, raw)
                    if item is not None:
                        out.append(item)
            page += 1
            if not listing.handles or page * _PAGE >= listing.total:
                break
        return sorted(out, key=lambda e: e.id)

    @staticmethod
    def _equipment(handle: str, raw: bytes) -> Equipment | None:
        try:
            return equipment_from_record(handle, decode_record(raw))
        except HandleError as exc:
            log.warning("equipment record %s is unusable: %s", handle, exc.message)
            return None
