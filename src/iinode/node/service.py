"""The handle service: what a node answers and what it lets clients write.

Both front ends (REST and the native protocol) call this one object.  It owns
the routing rule of the hierarchy:

* a handle whose prefix lies in this node's prefix, and not below a prefix it
  has delegated, is answered from the local store;
* a handle below a delegated prefix ``D`` gets a PREFIX_REFERRAL carrying the
  HS_SITE values of the delegation record ``0.NA/D`` (which this node holds and
  answers for itself);
* anything else gets a SERVICE_REFERRAL to the parent node, or HANDLE_NOT_FOUND
  at the top of the tree.

Writes are accepted only for locally answered handles, after authorisation.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from iinode.codes import ResponseCode
from iinode.errors import (
    HandleAlreadyExists,
    HandleNotFound,
    ServerBusy,
    ServerNotResponsible,
    ValueAlreadyExists,
    ValueInvalid,
    ValuesNotFound,
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
    SecKeyData,
    SiteData,
    VListData,
    check_record,
    decode_record,
    encode_record,
    site_for,
)
from iinode.identifiers.wire import WireWriter
from iinode.node.auth import Authorizer, hash_secret, is_hashed
from iinode.node.changes import ChangeCounter
from iinode.node.settings import NodeSettings
from iinode.storage import HandlePage, HandleStore

#: Permissions given to the creator when a new handle arrives without HS_ADMIN.
DEFAULT_ADMIN_PERMISSIONS = AdminPermission.from_bits("011111110011")
SITE_TYPES = ("HS_SITE", "HS_SITE.PREFIX", "HS_SERV", "HS_SERV.PREFIX")


@dataclass(frozen=True, slots=True)
class Answer:
    """What the node says about a handle: its values or where to ask instead."""

    code: ResponseCode
    handle: HandleName
    values: Record
    delegated_prefix: Prefix | None = None

    @property
    def is_referral(self) -> bool:
        return self.code in (ResponseCode.SERVICE_REFERRAL, ResponseCode.PREFIX_REFERRAL)

    def sites(self) -> list[SiteData]:
        return [v.data for v in self.values if isinstance(v.data, SiteData)]


class _Conflict(Exception):
    """The record changed between read and write; the write is retried."""


class HandleService:
    def __init__(
        self,
        settings: NodeSettings,
        store: HandleStore,
        clock: Callable[[], float] = time.time,
        changes: ChangeCounter | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._clock = clock
        #: Bumped after every committed write; answer caches key on its value.
        self.changes = changes if changes is not None else ChangeCounter()
        self.owned = settings.owned_prefix
        admins = (
            frozenset({IndexedHandle.parse(settings.admin_identity)})
            if settings.admin_identity
            else frozenset()
        )
        self.auth = Authorizer(self.lookup, admins)

    # -- reading -----------------------------------------------------------------
    async def lookup(self, handle: HandleName) -> Record | None:
        raw = await self.store.get(str(handle))
        return None if raw is None else decode_record(raw)

    async def route(self, handle: HandleName) -> Answer | None:
        """``None`` if this node answers ``handle`` itself, else the referral."""
        owned = self.owned
        authority = handle.authority
        if owned is None or not authority.is_within(owned):
            return self._upward(handle)
        # Prefixes strictly below the owned one, shallowest first, down to the authority.
        below = [p for p in reversed(authority.ancestors()) if p.depth > owned.depth]
        for delegated in below:
            if handle.is_na_handle and delegated == authority:
                return None  # the delegation record itself lives here
            record = await self.lookup(delegated.na_handle)
            if record is not None and any(v.type.upper() in SITE_TYPES for v in record):
                values = tuple(
                    v for v in record if v.type.upper() in SITE_TYPES and v.publicly_readable
                )
                return Answer(ResponseCode.PREFIX_REFERRAL, handle, values, delegated)
        return None

    def _upward(self, handle: HandleName) -> Answer:
        parent = self.settings.parent_url
        if not parent:
            raise HandleNotFound(
                f"prefix {handle.authority} is not served in this network", handle=str(handle)
            )
        site = site_from_url(parent, self.settings.parent_handle_port)
        value = HandleValue(1, "HS_SITE", site, timestamp=int(self._clock()))
        return Answer(ResponseCode.SERVICE_REFERRAL, handle, (value,))

    async def answer(
        self,
        handle: HandleName,
        *,
        identity: IndexedHandle | None = None,
        types: Sequence[str] = (),
        indexes: Sequence[int] = (),
    ) -> Answer:
        """Values of a locally answered handle, or a referral.  Raises HandleNotFound."""
        referral = await self.route(handle)
        if referral is not None:
            return referral
        record = await self.lookup(handle)
        if record is None:
            raise HandleNotFound(f"handle {handle} not found", handle=str(handle))
        can_read_hidden = identity is not None and await self.auth.allowed(
            identity, _admins(record), AdminPermission.READ_VALUE
        )
        wanted_types = {t.upper() for t in types}
        wanted_indexes = set(indexes)
        values = tuple(
            v
            for v in record
            if (v.publicly_readable or (can_read_hidden and v.permissions & Permissions.ADMIN_READ))
            and (not wanted_types or v.type.upper() in wanted_types)
            and (not wanted_indexes or v.index in wanted_indexes)
        )
        return Answer(ResponseCode.SUCCESS, handle, values)

    async def list_handles(
        self, prefix: Prefix, identity: IndexedHandle, *, page: int, page_size: int
    ) -> HandlePage:
        await self._require_local(prefix.handle("x"))
        na = await self.lookup(prefix.na_handle)
        await self.auth.require(
            identity, _admins(na or ()), AdminPermission.LIST_HANDLES, f"list {prefix}"
        )
        return await self.store.list_handles(prefix.text, page=page, page_size=page_size)

    # -- writing -----------------------------------------------------------------
    async def _require_local(self, handle: HandleName) -> None:
        owned = self.owned
        if owned is None or not handle.authority.is_within(owned):
            served = f"this node serves {owned}" if owned else "this node owns no prefix"
            raise ServerNotResponsible(
                f"prefix {handle.authority} is not served here ({served})", handle=str(handle)
            )
        referral = await self.route(handle)
        if referral is not None:
            raise ServerNotResponsible(
                f"prefix {referral.delegated_prefix} is delegated to another node",
                handle=str(handle),
            )

    async def _write(
        self, handle: HandleName, plan: Callable[[Record | None], Awaitable[Record | None]]
    ) -> Record | None:
        await self._require_local(handle)
        key = str(handle)
        for _ in range(8):
            old_raw = await self.store.get(key)
            new = await plan(None if old_raw is None else decode_record(old_raw))
            new_raw = None if new is None else encode_record(new)

            def mutation(
                current: bytes | None,
                old_raw: bytes | None = old_raw,
                new_raw: bytes | None = new_raw,
            ) -> bytes | None:
                if current != old_raw:
                    raise _Conflict
                return new_raw

            try:
                await self.store.modify(key, mutation)
            except _Conflict:
                continue
            self.changes.bump()
            return new
        raise ServerBusy(f"handle {handle} is being changed concurrently; try again", handle=key)

    def _prepare(self, values: Iterable[HandleValue]) -> list[HandleValue]:
        """Stamp values with the server time and hash plain-text secrets."""
        now = int(self._clock())
        out = []
        for v in values:
            if isinstance(v.data, SecKeyData) and not is_hashed(v.data.raw):
                v = replace(v, data=SecKeyData(hash_secret(v.data.raw.decode("utf-8", "replace"))))
            out.append(replace(v, timestamp=now))
        return out

    async def _creation_admins(self, handle: HandleName) -> tuple[Record, AdminPermission]:
        """Whose HS_ADMIN governs creating ``handle``, and which bit it needs."""
        if handle.is_na_handle and handle.authority != self.owned:
            parent = handle.authority.parent
            assert parent is not None  # a delegated prefix has a parent
            return _admins(await self.lookup(parent.na_handle) or ()), AdminPermission.ADD_NA
        na = handle.prefix.na_handle if not handle.is_na_handle else handle
        return _admins(await self.lookup(na) or ()), AdminPermission.ADD_HANDLE

    async def create(
        self,
        handle: HandleName,
        values: Sequence[HandleValue],
        identity: IndexedHandle,
        *,
        overwrite: bool = True,
    ) -> bool:
        """Create ``handle`` or replace its whole record; True if it was created."""
        new_values = self._prepare(check_record(values))
        created = False

        async def plan(old: Record | None) -> Record:
            nonlocal created
            record = list(new_values)
            if old is None:
                admins, bit = await self._creation_admins(handle)
                await self.auth.require(identity, admins, bit, f"create {handle}")
                if not any(isinstance(v.data, AdminData) for v in record):
                    record.append(self._default_admin(record, identity))
                created = True
                return check_record(record)
            if not overwrite:
                raise HandleAlreadyExists(f"handle {handle} already exists", handle=str(handle))
            await self._check_diff(handle, identity, old, record)
            created = False
            return check_record(record)

        await self._write(handle, plan)
        return created

    def _default_admin(self, record: Sequence[HandleValue], identity: IndexedHandle) -> HandleValue:
        used = {v.index for v in record}
        index = next(i for i in range(100, 2**31) if i not in used)
        return HandleValue(
            index,
            "HS_ADMIN",
            AdminData(DEFAULT_ADMIN_PERMISSIONS, identity),
            timestamp=int(self._clock()),
        )

    async def _check_diff(
        self, handle: HandleName, identity: IndexedHandle, old: Record, new: Sequence[HandleValue]
    ) -> None:
        admins = _admins(old)
        old_by_index = {v.index: v for v in old}
        new_by_index = {v.index: v for v in new}
        for index, value in new_by_index.items():
            before = old_by_index.get(index)
            is_admin = isinstance(value.data, AdminData) or (
                before is not None and isinstance(before.data, AdminData)
            )
            if before is None:
                bit = AdminPermission.ADD_ADMIN if is_admin else AdminPermission.ADD_VALUE
            elif _same(before, value):
                continue
            else:
                bit = AdminPermission.MODIFY_ADMIN if is_admin else AdminPermission.MODIFY_VALUE
            await self.auth.require(identity, admins, bit, f"change index {index} of {handle}")
        for index, value in old_by_index.items():
            if index not in new_by_index:
                is_admin = isinstance(value.data, AdminData)
                bit = AdminPermission.REMOVE_ADMIN if is_admin else AdminPermission.REMOVE_VALUE
                await self.auth.require(identity, admins, bit, f"remove index {index} of {handle}")

    async def put_values(
        self,
        handle: HandleName,
        values: Sequence[HandleValue],
        identity: IndexedHandle,
        *,
        existing: bool | None = None,
    ) -> None:
        """Add or replace the given values of an existing handle, keeping the others.

        ``existing=False``: every index must be new (native ADD_VALUE); ``True``: every
        index must be present (MODIFY_VALUE).  Checked against the very record the write
        replaces (the optimistic retry re-checks), so concurrent writers cannot both pass.
        """
        incoming = self._prepare(check_record(values))

        async def plan(old: Record | None) -> Record:
            if old is None:
                raise HandleNotFound(f"handle {handle} not found", handle=str(handle))
            if existing is not None:
                _check_indexes(handle, old, incoming, existing=existing)
            merged = {v.index: v for v in old}
            merged.update({v.index: v for v in incoming})
            record = check_record(merged.values())
            await self._check_diff(handle, identity, old, record)
            return record

        await self._write(handle, plan)

    async def remove_values(
        self, handle: HandleName, indexes: Sequence[int], identity: IndexedHandle
    ) -> None:
        async def plan(old: Record | None) -> Record:
            if old is None:
                raise HandleNotFound(f"handle {handle} not found", handle=str(handle))
            present = {v.index for v in old}
            missing = sorted(set(indexes) - present)
            if missing:
                raise ValuesNotFound(
                    f"handle {handle} has no value at index {missing}", handle=str(handle)
                )
            record = tuple(v for v in old if v.index not in set(indexes))
            await self._check_diff(handle, identity, old, record)
            return record

        await self._write(handle, plan)

    async def delete(self, handle: HandleName, identity: IndexedHandle) -> None:
        async def plan(old: Record | None) -> None:
            if old is None:
                raise HandleNotFound(f"handle {handle} not found", handle=str(handle))
            delegation = handle.is_na_handle and handle.authority != self.owned
            bit = AdminPermission.DELETE_NA if delegation else AdminPermission.DELETE_HANDLE
            admins = _admins(old)
            if delegation:
                parent = handle.authority.parent
                assert parent is not None
                admins += _admins(await self.lookup(parent.na_handle) or ())
            await self.auth.require(identity, admins, bit, f"delete {handle}")
            return None

        await self._write(handle, plan)

    def mint(self, stem: str) -> HandleName:
        """A new unique handle: ``stem`` (``prefix/`` or ``prefix/part``) plus a UUID."""
        prefix, _, head = stem.partition("/")
        return HandleName(prefix, f"{head}{uuid.uuid4()}")

    # -- node set-up -------------------------------------------------------------
    def _own_site(self, owned: Prefix) -> SiteData:
        """The HS_SITE describing where this node is served."""
        return site_for(
            self.settings.public_host,
            http_port=self.settings.http_port,
            handle_port=self.settings.handle_port,
            description=self.settings.name or f"{self.settings.role.value} node for {owned}",
        )

    async def initialise(self, secret: str) -> HandleName:
        """Create this node's prefix record ``0.NA/<prefix>`` with its admin identity."""
        owned = self.owned
        if owned is None:
            raise ServerNotResponsible("a recursive node owns no prefix")
        na = owned.na_handle
        now = int(self._clock())
        site = self._own_site(owned)
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
                    SecKeyData(hash_secret(secret)),
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


def _check_indexes(
    handle: HandleName, old: Record, incoming: Sequence[HandleValue], *, existing: bool
) -> None:
    present = {v.index for v in old}
    asked = {v.index for v in incoming}
    if not existing and present & asked:
        clash = sorted(present & asked)
        raise ValueAlreadyExists(f"{handle} already has values at {clash}", handle=str(handle))
    if existing and not asked <= present:
        missing = sorted(asked - present)
        raise ValuesNotFound(f"{handle} has no values at {missing}", handle=str(handle))


def _admins(record: Iterable[HandleValue]) -> Record:
    return tuple(v for v in record if isinstance(v.data, AdminData))


def _same(a: HandleValue, b: HandleValue) -> bool:
    return replace(a, timestamp=0) == replace(b, timestamp=0)


def site_from_url(url: str, handle_port: int | None = None) -> SiteData:
    """A one-server HS_SITE for a node's HTTP base URL ``http://HOST:PORT``
    (and its native Handle port on the same host, if given)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueInvalid(f"{url!r} is not an http(s)://HOST:PORT URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = socket.gethostbyname(host)
        except OSError:
            raise ValueInvalid(f"cannot resolve the host of {url!r}") from None
    return site_for(host, http_port=port, handle_port=handle_port)


class BulkRegistrar:
    """The trusted local path for loading many identifiers at once (``bulk-load``).

    Ownership and syntax are checked per row; authorisation is the operator's
    access to the data directory.  Each new handle gets an HS_ADMIN naming the
    prefix's administrators (``200:0.NA/<prefix>``) unless it has one.
    """

    def __init__(self, service: HandleService, *, overwrite: bool = False) -> None:
        owned = service.owned
        if owned is None:
            raise ServerNotResponsible("a recursive node owns no prefix to load into")
        self.service = service
        self.owned = owned
        self.overwrite = overwrite
        self._now = int(service._clock())
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
        for v in values:
            if v.index == 100 or isinstance(v.data, AdminData):
                add_admin = False
                break
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
