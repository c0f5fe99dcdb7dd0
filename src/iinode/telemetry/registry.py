"""The equipment registry seam and its in-memory implementation.

The registry answers "what is this equipment and which tags does it have".
The node backs it with the identifier store (equipment are identifiers under
the enterprise prefix); tests and the embedded demo use :class:`MemoryRegistry`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from iinode.errors import HandleNotFound, InvalidHandle
from iinode.identifiers import HandleName, IndexedHandle, Prefix
from iinode.telemetry.model import Equipment


@runtime_checkable
class EquipmentRegistry(Protocol):
    """Async access to equipment records, keyed by identifier.

    ``identity`` is who asks for a write; ``None`` is the node itself (a trusted
    local caller).  Backends that check permissions raise ``NotAuthorized``.
    """

    async def get(self, equipment_id: str) -> Equipment | None:
        """The equipment, or ``None`` if the identifier is not registered."""

    async def put(self, equipment: Equipment, identity: IndexedHandle | None = None) -> None:
        """Create or replace an equipment record."""

    async def remove(self, equipment_id: str, identity: IndexedHandle | None = None) -> None:
        """Delete a record; raises ``HandleNotFound`` if absent."""

    async def list(self, prefix: str | None = None) -> list[Equipment]:
        """All equipment, or those under ``prefix`` (and its sub-prefixes), by id."""


@runtime_checkable
class EquipmentReader(Protocol):
    """Reads on behalf of a caller (``identity``; ``None`` is anonymous), for the HTTP API.

    Both raise ``AuthenticationNeeded`` or ``NotAuthorized`` when the caller may
    not see what it asked for.
    """

    async def readable(self, equipment_id: str, identity: IndexedHandle | None) -> Equipment | None:
        """The equipment as the caller may see it; ``None`` if not registered."""

    async def listing(self, prefix: str | None, identity: IndexedHandle | None) -> list[Equipment]:
        """The equipment under ``prefix`` the caller may list and read."""


class MemoryRegistry:
    """An :class:`EquipmentRegistry` held in a dictionary."""

    def __init__(self, equipment: list[Equipment] | None = None) -> None:
        self._items: dict[str, Equipment] = {}
        for item in equipment or ():
            self._items[item.id] = item

    async def get(self, equipment_id: str) -> Equipment | None:
        item = self._items.get(equipment_id)
        if item is None and "/" in equipment_id:
            try:
                item = self._items.get(str(HandleName.parse(equipment_id)))
            except InvalidHandle:
                return None
        return item

    async def put(self, equipment: Equipment, identity: IndexedHandle | None = None) -> None:
        self._items[equipment.id] = equipment

    async def remove(self, equipment_id: str, identity: IndexedHandle | None = None) -> None:
        key = str(HandleName.parse(equipment_id))
        if self._items.pop(key, None) is None:
            raise HandleNotFound(f"equipment {key} is not registered", handle=key)

    async def list(self, prefix: str | None = None) -> list[Equipment]:
        items = sorted(self._items.values(), key=lambda e: e.id)
        if prefix is None:
            return items
        wanted = Prefix(prefix)
        return [e for e in items if Prefix(e.prefix).is_within(wanted)]
