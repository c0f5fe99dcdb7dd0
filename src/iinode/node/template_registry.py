"""Templates at work: the write check, the lifecycle, derivation, reader grants.

:class:`TemplateRegistry` hooks into :class:`~iinode.node.service.HandleService`
(``record_hooks``), so every write path (REST, native, the templates API) goes
through the same rules, after authorisation and before anything is stored:

* a template record (a definition at index 1) must parse, be named after its
  handle, and change status only draft -> published -> withdrawn; a published or
  withdrawn definition changes nothing but its status;
* an identifier with a template link (index 1001) must name a local template
  that is published, or withdrawn when the identifier already had that link (a
  withdrawn template keeps validating its records, and takes no new ones); its
  attribute values are checked against the template (every violation at once,
  unique values under the prefix included) and then stored in normal form:
  the link as JSON, restricted attributes without PUBLIC_READ, and the readers
  grant at index 1002.

Compiled validators are kept per template version and definition bytes
(:data:`CACHE_SIZE` of them), so a record's check compiles nothing.
``check_sync`` is the same check for the bulk path, with the templates loaded
beforehand (``preload``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from iinode.errors import InvalidHandle, ValueInvalid
from iinode.identifiers import (
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    Record,
    StringData,
    VListData,
)
from iinode.node.template_check import CompiledTemplate
from iinode.node.templates import (
    DEFINITION_INDEX,
    DEFINITION_TYPE,
    READERS_INDEX,
    TRANSITIONS,
    Status,
    Template,
    TemplateViolations,
    Violation,
    definition_of,
)
from iinode.storage.search import (
    TEMPLATE_LINK_INDEX,
    TEMPLATE_LINK_TYPE,
    SearchQuery,
    link_target,
)

if TYPE_CHECKING:
    from iinode.node.service import HandleService

#: Compiled template versions kept.
CACHE_SIZE = 256
#: Fetches a record held elsewhere (through the node's resolver): handle -> values.
RemoteFetch = Callable[[HandleName], Awaitable[Sequence[HandleValue]]]


class TemplateRegistry:
    def __init__(self, service: HandleService, *, fetch_remote: RemoteFetch | None = None) -> None:
        self.service = service
        self.fetch_remote = fetch_remote
        self._compiled: OrderedDict[bytes, CompiledTemplate] = OrderedDict()
        #: Templates loaded for ``check_sync`` (bulk), by handle text.
        self._preloaded: dict[str, CompiledTemplate | None] = {}
        service.record_hooks.append(self.check_write)

    # -- compiled templates ------------------------------------------------------------
    def compiled(self, raw: bytes) -> CompiledTemplate:
        """The compiled form of a definition; compiled once per distinct definition."""
        hit = self._compiled.get(raw)
        if hit is not None:
            self._compiled.move_to_end(raw)
            return hit
        compiled = CompiledTemplate(Template.from_definition(raw))
        self._compiled[raw] = compiled
        if len(self._compiled) > CACHE_SIZE:
            self._compiled.popitem(last=False)
        return compiled

    async def load(self, handle: HandleName) -> CompiledTemplate | None:
        """The local template ``handle``, compiled; ``None`` if there is none."""
        record = await self.service.lookup(handle)
        raw = definition_of(record or ())
        return None if raw is None else self.compiled(raw)

    async def fetch(self, handle: HandleName) -> Template:
        """A template from this node or, through the resolver, from the node holding it."""
        owned = self.service.owned
        if owned is not None and handle.authority.is_within(owned):
            record = await self.service.lookup(handle)
        elif self.fetch_remote is not None:
            record = tuple(await self.fetch_remote(handle))
        else:
            record = None
        raw = definition_of(record or ())
        if raw is None:
            raise ValueInvalid(f"{handle} is not a template", handle=str(handle))
        return Template.from_definition(raw)

    # -- the write check ---------------------------------------------------------------
    async def check_write(self, handle: HandleName, old: Record | None, new: Record) -> Record:
        raw = definition_of(new)
        if raw is not None:
            return self._check_definition(handle, old, new, raw)
        link = _link(new)
        if link is None:
            return new
        target, compiled = await self._linked(link)
        values, problems = self._check_values(handle, old, new, target, compiled)
        if compiled is not None:
            problems += await self._unique_conflicts(handle, compiled, values)
        if problems:
            raise TemplateViolations(problems, handle=str(handle))
        return values

    async def _linked(self, link: HandleValue) -> tuple[str, CompiledTemplate | None]:
        found = link_target(link.data_bytes)
        if found is None:
            return "", None
        try:
            name = HandleName.parse(found[0])
        except InvalidHandle:
            return found[0], None
        return str(name), await self.load(name)

    def _check_values(
        self,
        handle: HandleName,
        old: Record | None,
        new: Record,
        target: str,
        compiled: CompiledTemplate | None,
    ) -> tuple[Record, list[Violation]]:
        if compiled is None:
            shown = target or None
            return new, [Violation("template", shown, "template", "no such template here")]
        status = compiled.template.status
        if status is Status.DRAFT:
            return new, [
                Violation("template", target, "status", "a draft template takes no registrations")
            ]
        if status is Status.WITHDRAWN:
            before = _link(old or ())
            was = None if before is None else link_target(before.data_bytes)
            if was is None or was[0] != target:
                return new, [
                    Violation(
                        "template", target, "status", "a withdrawn template takes no new records"
                    )
                ]
        problems = compiled.check(new)
        return self.normal_form(new, compiled), problems

    def normal_form(self, values: Sequence[HandleValue], compiled: CompiledTemplate) -> Record:
        """The record as stored: canonical link, restricted attributes hidden, readers grant."""
        return compiled.normal_form(values)

    async def _unique_conflicts(
        self, handle: HandleName, compiled: CompiledTemplate, values: Record
    ) -> list[Violation]:
        problems = []
        unique = set(compiled.template.unique_names)
        for v in values:
            if v.type in unique and v.index >= 2000:
                text = v.data_bytes.decode("utf-8", "replace")
                query = SearchQuery(
                    ((f"attr:{v.type}", text),),
                    prefix=handle.prefix_text,
                    limit=2,
                    public_only=False,
                )
                holders = [h for h in await self.service.store.search(query) if h != str(handle)]
                if holders:
                    problems.append(
                        Violation(v.type, text, "unique", f"already held by {holders[0]}")
                    )
        return problems

    def _check_definition(
        self, handle: HandleName, old: Record | None, new: Record, raw: bytes
    ) -> Record:
        template = Template.from_definition(raw, default_prefix=handle.prefix_text)
        if template.handle != handle:
            raise ValueInvalid(
                f"a template record is named <prefix>/template/<name>/<version>: "
                f"{template.handle}, not {handle}",
                handle=str(handle),
            )
        before_raw = definition_of(old or ())
        if before_raw is not None:
            before = Template.from_definition(before_raw)
            if (before.status, template.status) not in TRANSITIONS and (
                before.status != template.status
            ):
                raise ValueInvalid(
                    f"template {handle} cannot go from {before.status} to {template.status}",
                    handle=str(handle),
                )
            if before.status is not Status.DRAFT and replace(
                before, status=template.status
            ) != replace(template, status=template.status):
                raise ValueInvalid(
                    f"template {handle} is {before.status}: only its status may change",
                    handle=str(handle),
                )
        elif template.status is Status.WITHDRAWN:
            # A new template starts as a draft or is published at once, never withdrawn.
            raise ValueInvalid("a new template cannot be withdrawn", handle=str(handle))
        canonical = StringData(template.definition_bytes().decode("utf-8"))
        return tuple(
            replace(v, data=canonical)
            if v.index == DEFINITION_INDEX and v.type == DEFINITION_TYPE
            else v
            for v in new
        )

    # -- the bulk path -----------------------------------------------------------------
    async def preload(self, handles: Sequence[str]) -> None:
        """Load the named templates for :meth:`check_sync`."""
        for text in handles:
            if text not in self._preloaded:
                try:
                    self._preloaded[text] = await self.load(HandleName.parse(text))
                except InvalidHandle:
                    self._preloaded[text] = None

    async def preload_prefix(self, prefix: str) -> None:
        """Load every template under ``prefix`` for :meth:`check_sync`."""
        after: str | None = None
        while True:
            names = await self.list_templates(prefix, after=after, limit=500)
            await self.preload(names)
            if len(names) < 500:
                return
            after = names[-1]

    def link_of(self, values: Sequence[HandleValue]) -> str | None:
        """The template handle a row links to (``None`` without a link)."""
        link = _link(values)
        found = None if link is None else link_target(link.data_bytes)
        return None if link is None else (found[0] if found else "")

    def check_sync(self, handle: HandleName, values: Sequence[HandleValue]) -> Record:
        """A new record's check on the bulk path (templates ``preload``-ed; uniqueness is
        left to the store, which refuses a batch repeating a unique value)."""
        target = self.link_of(values)
        if target is None:
            return tuple(values)
        compiled = self._preloaded.get(target)
        checked, problems = self._check_values(handle, None, tuple(values), target, compiled)
        if problems:
            raise TemplateViolations(problems, handle=str(handle))
        return checked

    # -- lifecycle ---------------------------------------------------------------------
    async def define(self, template: Template, identity: IndexedHandle) -> HandleName:
        """Create a template record (draft or published) under its prefix."""
        handle = template.handle
        if await self.service.lookup(handle) is not None:
            raise ValueInvalid(f"template {handle} already exists", handle=str(handle))
        values = [
            HandleValue(
                DEFINITION_INDEX,
                DEFINITION_TYPE,
                StringData(template.definition_bytes().decode("utf-8")),
            ),
            HandleValue(READERS_INDEX, "HS_VLIST", VListData(())),
        ]
        await self.service.create(handle, values, identity, overwrite=False)
        return handle

    async def set_status(
        self, handle: HandleName, status: Status, identity: IndexedHandle
    ) -> Template:
        template = await self._local(handle)
        changed = replace(template, status=status)
        value = HandleValue(
            DEFINITION_INDEX,
            DEFINITION_TYPE,
            StringData(changed.definition_bytes().decode("utf-8")),
        )
        await self.service.put_values(handle, [value], identity, existing=True)
        return changed

    async def derive(
        self,
        source: HandleName,
        prefix: str,
        identity: IndexedHandle,
        *,
        name: str | None = None,
        version: str = "1",
        industry: str | None = None,
        extra: Sequence[dict[str, Any]] = (),
        status: Status = Status.DRAFT,
    ) -> HandleName:
        """A new template under ``prefix`` from a published one (local or, through the
        resolver, another enterprise's), keeping its attributes and their indexes and
        adding ``extra`` ones."""
        base = await self.fetch(source)
        if base.status is not Status.PUBLISHED:
            raise ValueInvalid(
                f"only a published template can be derived from ({source} is {base.status})",
                handle=str(source),
            )
        doc = base.to_json()
        doc.update(
            prefix=prefix,
            name=name or base.name,
            version=version,
            status=status.value,
            derivedFrom=str(source),
            industry=industry or base.industry,
        )
        doc["attributes"] = [*doc["attributes"], *extra]
        return await self.define(Template.from_json(doc), identity)

    async def set_readers(
        self, handle: HandleName, members: Sequence[IndexedHandle], identity: IndexedHandle
    ) -> None:
        """Replace the template's readers group (who reads restricted attributes of every
        identifier registered against it)."""
        await self._local(handle)
        group = HandleValue(READERS_INDEX, "HS_VLIST", VListData(tuple(members)))
        await self.service.put_values(handle, [group], identity)

    async def readers(self, handle: HandleName) -> tuple[IndexedHandle, ...]:
        record = await self.service.lookup(handle) or ()
        for v in record:
            if v.index == READERS_INDEX and isinstance(v.data, VListData):
                return v.data.refs
        return ()

    async def _local(self, handle: HandleName) -> Template:
        record = await self.service.lookup(handle)
        raw = definition_of(record or ())
        if raw is None:
            raise ValueInvalid(f"{handle} is not a template on this node", handle=str(handle))
        return Template.from_definition(raw)

    async def list_templates(
        self, prefix: str, *, after: str | None = None, limit: int = 100
    ) -> list[str]:
        """Template handles under ``prefix`` (keyset by handle)."""
        start = f"{prefix}/template/"
        names = await self.service.store.list_after(prefix, max(after or "", start), limit=limit)
        return [n for n in names if n.startswith(start)]


_INDEX = attrgetter("index")
_PUBLIC = Permissions.PUBLIC_READ


def _link(values: Sequence[HandleValue]) -> HandleValue | None:
    return next(
        (v for v in values if v.index == TEMPLATE_LINK_INDEX and v.type == TEMPLATE_LINK_TYPE),
        None,
    )


__all__ = ["CACHE_SIZE", "RemoteFetch", "TemplateRegistry"]
