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

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from iinode.codes import ResponseCode
from iinode.errors import (
    HandleAlreadyExists,
    HandleNotFound,
    ServerBusy,
    ServerNotResponsible,
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
    check_record,
    decode_record,
    encode_record,
)
from iinode.node.auth import Authorizer
from iinode.node.bulk import DEFAULT_ADMIN_PERMISSIONS, BulkRegistrar
from iinode.node.changes import ChangeCounter
from iinode.node.failure_counts import failure_store_for
from iinode.node.oid import OidAnswer, answer_oid
from iinode.node.record_rules import admins_of, check_indexes, keep_secrets, same_value
from iinode.node.root_records import is_root_handle, root_record
from iinode.node.secret_box import NodeSecrets
from iinode.node.service_setup import NodeSetup
from iinode.node.settings import NodeSettings, Role
from iinode.node.sites import KeyLearner, parent_site, site_from_url
from iinode.node.template_registry import TemplateRegistry
from iinode.node.verifier import protect_seckey
from iinode.storage import HandlePage, HandleStore

#: How HS_SECKEY values are answered, to every reader: without their data.
REDACTED_SECKEY = SecKeyData(b"")
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


#: A check of a planned write: ``(handle, old record or None, new record) -> record``.
RecordHook = Callable[[HandleName, Record | None, Record], Awaitable[Record]]


class _Conflict(Exception):
    """The record changed between read and write; the write is retried."""


class HandleService(NodeSetup):
    def __init__(
        self,
        settings: NodeSettings,
        store: HandleStore,
        clock: Callable[[], float] = time.time,
        changes: ChangeCounter | None = None,
        *,
        learn_key: KeyLearner | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        #: Asks a parent's native server for its key (``native_trust.learn_server_key``,
        #: passed in by whoever builds the node, so node/ imports nothing from resolution/).
        self._learn_key = learn_key
        self._clock = clock
        #: Bumped after every committed write; answer caches key on its value.
        self.changes = changes if changes is not None else ChangeCounter()
        self.owned = settings.owned_prefix
        admins = (
            frozenset({IndexedHandle.parse(settings.admin_identity)})
            if settings.admin_identity
            else frozenset()
        )
        #: Seals HS_SECKEY secrets at rest with the node key (``<data dir>/node.key``).
        self.secrets = NodeSecrets(settings.data_dir)
        #: Failed logins are counted once for all of the node's processes (node.failure_counts).
        self.auth = Authorizer(
            self.lookup, admins, secrets=self.secrets, failures=failure_store_for(settings)
        )
        self._parent_site: tuple[SiteData, float] | None = None
        #: Checks a planned record (after authorisation) may refuse or adjust before it is
        #: written: ``(handle, old, new) -> record to write`` (metadata templates).
        self.record_hooks: list[RecordHook] = []
        #: Metadata templates; their check is the first record hook (``node.template_registry``).
        self.templates = TemplateRegistry(self)

    def now(self) -> int:
        """The server time stamped on values (whole seconds)."""
        return int(self._clock())

    # -- reading -----------------------------------------------------------------
    async def lookup(self, handle: HandleName) -> Record | None:
        raw = await self.store.get(str(handle))
        return None if raw is None else decode_record(raw)

    async def route(self, handle: HandleName) -> Answer | None:
        """``None`` if this node answers ``handle`` itself, else the referral."""
        owned = self.owned
        authority = handle.authority
        if owned is None or not authority.is_within(owned):
            return await self._upward(handle)
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

    async def _upward(self, handle: HandleName) -> Answer:
        parent = self.settings.parent_url
        if not parent:
            raise HandleNotFound(
                f"prefix {handle.authority} is not served in this network", handle=str(handle)
            )
        value = HandleValue(1, "HS_SITE", await self.parent_site(), timestamp=self.now())
        return Answer(ResponseCode.SERVICE_REFERRAL, handle, (value,))

    async def parent_site(self) -> SiteData:
        """The parent's HS_SITE with its server key (``node.sites.parent_site``); its host
        name is resolved in a worker thread, then reused for ``PARENT_SITE_TTL`` seconds
        (never a DNS query on the event loop per request)."""
        cached = self._parent_site
        now = self._clock()
        if cached is not None and cached[1] > now:
            return cached[0]
        parent = self.settings.parent_url
        if not parent:
            raise ServerNotResponsible("this node has no parent")
        # A recursive node resolves through its parent rather than refer to it: no key.
        learn = None if self.settings.role is Role.RECURSIVE else self._learn_key
        site, ttl = await parent_site(parent, self.settings.parent_handle_port, learn_key=learn)
        self._parent_site = (site, now + ttl)
        return site

    async def answer(
        self,
        handle: HandleName,
        *,
        identity: IndexedHandle | None = None,
        types: Sequence[str] = (),
        indexes: Sequence[int] = (),
    ) -> Answer:
        """Values of a locally answered handle, or a referral.  Raises HandleNotFound."""
        if self.is_network_root and is_root_handle(handle):
            return self._root_answer(handle, types, indexes)
        referral = await self.route(handle)
        if referral is not None:
            return referral
        record = await self.lookup(handle)
        if record is None:
            raise HandleNotFound(f"handle {handle} not found", handle=str(handle))
        can_read_hidden = identity is not None and await self.auth.allowed(
            identity, admins_of(record), AdminPermission.READ_VALUE
        )
        wanted_types = {t.upper() for t in types}
        wanted_indexes = set(indexes)
        values = tuple(
            replace(v, data=REDACTED_SECKEY) if isinstance(v.data, SecKeyData) else v
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
            identity, admins_of(na or ()), AdminPermission.LIST_HANDLES, f"list {prefix}"
        )
        return await self.store.list_handles(prefix.text, page=page, page_size=page_size)

    async def list_after(
        self, prefix: Prefix, identity: IndexedHandle, after: str | None, *, limit: int
    ) -> list[str]:
        """:meth:`list_handles` by keyset: at most ``limit`` handles sorted after ``after``."""
        await self._require_local(prefix.handle("x"))
        na = await self.lookup(prefix.na_handle)
        await self.auth.require(
            identity, admins_of(na or ()), AdminPermission.LIST_HANDLES, f"list {prefix}"
        )
        return await self.store.list_after(prefix.text, after, limit=limit)

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
            old = None if old_raw is None else decode_record(old_raw)
            new = await plan(old)
            for hook in self.record_hooks:
                new = None if new is None else await hook(handle, old, new)
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

    async def _prepare(self, values: Iterable[HandleValue]) -> list[HandleValue]:
        """Stamp values with the server time; store each HS_SECKEY sealed with the node
        key, never publicly readable (in a worker thread: the first may read the key file).
        An HS_SECKEY without data (as it is read back) is left for ``keep_secrets`` to
        resolve against the old record."""
        now = self.now()
        out = []
        for v in values:
            if isinstance(v.data, SecKeyData) and v.data.raw:
                v = await asyncio.to_thread(protect_seckey, v, self.secrets)
            out.append(replace(v, timestamp=now))
        return out

    async def _creationadmins_of(self, handle: HandleName) -> tuple[Record, AdminPermission]:
        """Whose HS_ADMIN governs creating ``handle``, and which bit it needs."""
        if handle.is_na_handle and handle.authority != self.owned:
            parent = handle.authority.parent
            assert parent is not None  # a delegated prefix has a parent
            return admins_of(await self.lookup(parent.na_handle) or ()), AdminPermission.ADD_NA
        na = handle.prefix.na_handle if not handle.is_na_handle else handle
        return admins_of(await self.lookup(na) or ()), AdminPermission.ADD_HANDLE

    async def create(
        self,
        handle: HandleName,
        values: Sequence[HandleValue],
        identity: IndexedHandle,
        *,
        overwrite: bool = True,
    ) -> bool:
        """Create ``handle`` or replace its whole record; True if it was created."""
        new_values = await self._prepare(check_record(values))
        created = False

        async def plan(old: Record | None) -> Record:
            nonlocal created
            record = keep_secrets(handle, old or (), new_values)
            if old is None:
                admins, bit = await self._creationadmins_of(handle)
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
            timestamp=self.now(),
        )

    async def _check_diff(
        self, handle: HandleName, identity: IndexedHandle, old: Record, new: Sequence[HandleValue]
    ) -> None:
        admins = admins_of(old)
        old_by_index = {v.index: v for v in old}
        new_by_index = {v.index: v for v in new}
        for index, value in new_by_index.items():
            before = old_by_index.get(index)
            is_admin = isinstance(value.data, AdminData) or (
                before is not None and isinstance(before.data, AdminData)
            )
            if before is None:
                bit = AdminPermission.ADD_ADMIN if is_admin else AdminPermission.ADD_VALUE
            elif same_value(before, value):
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
        incoming = await self._prepare(check_record(values))

        async def plan(old: Record | None) -> Record:
            if old is None:
                raise HandleNotFound(f"handle {handle} not found", handle=str(handle))
            if existing is not None:
                check_indexes(handle, old, incoming, existing=existing)
            merged = {v.index: v for v in old}
            merged.update({v.index: v for v in keep_secrets(handle, old, incoming)})
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
            admins = admins_of(old)
            if delegation:
                parent = handle.authority.parent
                assert parent is not None
                admins += admins_of(await self.lookup(parent.na_handle) or ())
            await self.auth.require(identity, admins, bit, f"delete {handle}")
            return None

        await self._write(handle, plan)

    def mint(self, stem: str) -> HandleName:
        """A new unique handle: ``stem`` (``prefix/`` or ``prefix/part``) plus a UUID."""
        prefix, _, head = stem.partition("/")
        return HandleName(prefix, f"{head}{uuid.uuid4()}")

    @property
    def is_network_root(self) -> bool:
        """A top-level node with no parent: the root of its network (``node.root_records``)."""
        return self.settings.role is Role.TOP and not self.settings.parent_url

    def _root_answer(
        self, handle: HandleName, types: Sequence[str], indexes: Sequence[int]
    ) -> Answer:
        assert self.owned is not None  # a top-level node owns its prefix
        site = self._own_site(self.owned)
        public_key = site.servers[0].public_key
        wanted_types, wanted_indexes = {t.upper() for t in types}, set(indexes)
        values = tuple(
            v
            for v in root_record(site, public_key, self.owned, self.now())
            if (not wanted_types or v.type.upper() in wanted_types)
            and (not wanted_indexes or v.index in wanted_indexes)
        )
        return Answer(ResponseCode.SUCCESS, handle, values)

    # -- OID names (``node.oid``) ----------------------------------------------------
    async def answer_oid(
        self,
        name: str,
        *,
        identity: IndexedHandle | None = None,
        types: Sequence[str] = (),
        indexes: Sequence[int] = (),
    ) -> OidAnswer:
        """What an OID name (``oid:1.2.156…``, ``urn:oid:…``; ``is_oid_name``) resolves
        to: an HS_ALIAS to the mapped handle, then its values when answered here.
        Raises InvalidOid (an InvalidHandle) or HandleNotFound."""
        return await answer_oid(self, name, identity=identity, types=types, indexes=indexes)


__all__ = [
    "DEFAULT_ADMIN_PERMISSIONS",
    "SITE_TYPES",
    "Answer",
    "BulkRegistrar",
    "HandleService",
    "site_from_url",
]
