"""A node's children, as its delegation records ``0.NA/<child>`` describe them.

The parent holds one record per delegated prefix: an HS_SITE (where the child
is) and, for a child that reports upward, its HS_SECKEY at index 300.
:class:`HandleAuthenticator` checks monitoring credentials against those
records; :func:`delegated_children` lists the children (for ``/monitoring/nodes``,
which shows children that never reported too).

The record may also carry an ``IINODE_NODE`` value, JSON
``{"province": "JX", "industry": "automobiles"}`` (``node_value``, written by
``iinode prefix delegate --province/--industry``): the parent's own statement
of the child's labels, which :func:`child_labels` reads and the monitoring
receiver applies instead of what the child declares.
"""

from __future__ import annotations

import logging
import re

import orjson

from iinode.errors import AuthenticationFailed, HandleError
from iinode.identifiers import (
    HandleName,
    HandleValue,
    IndexedHandle,
    Prefix,
    SecKeyData,
    SiteData,
    StringData,
    decode_record,
)
from iinode.monitoring.errors import ReportUnauthenticated
from iinode.monitoring.receiver import NodeLabels
from iinode.node.auth import Credentials
from iinode.node.service import HandleService

log = logging.getLogger(__name__)

_NA = "0.NA"
_PAGE = 1000
#: Type of the delegation record's value naming the child's province and industry.
NODE_TYPE = "IINODE_NODE"
#: Its usual index in ``0.NA/<child>``.
NODE_INDEX = 2
_LABEL = re.compile(r"[A-Za-z0-9._\-]{0,64}\Z")


def node_value(province: str = "", industry: str = "", index: int = NODE_INDEX) -> HandleValue:
    """The ``IINODE_NODE`` value of a delegation record (``ValueError`` on bad labels)."""
    for name, label in (("province", province), ("industry", industry)):
        if not _LABEL.match(label):
            raise ValueError(f"{name} {label!r} must be 0-64 of [A-Za-z0-9._-]")
    body = orjson.dumps({"province": province, "industry": industry}).decode()
    return HandleValue(index, NODE_TYPE, StringData(body))


def labels_of(values: tuple[HandleValue, ...] | list[HandleValue]) -> NodeLabels | None:
    """The labels an ``IINODE_NODE`` value among ``values`` states (``None`` if none or bad)."""
    value = next((v for v in values if v.type.upper() == NODE_TYPE), None)
    if value is None:
        return None
    data = value.data
    try:
        text = data.text if isinstance(data, StringData) else data.to_wire().decode("utf-8")
        body = orjson.loads(text)
        province, industry = body.get("province", ""), body.get("industry", "")
    except (UnicodeDecodeError, orjson.JSONDecodeError, AttributeError):
        return None
    if not all(isinstance(x, str) and _LABEL.match(x) for x in (province, industry)):
        return None
    return NodeLabels(province, industry)


async def child_labels(service: HandleService, child: Prefix) -> NodeLabels | None:
    """This node's record of a child's province and industry (``0.NA/<child>``), if any."""
    try:
        record = await service.lookup(child.na_handle)
    except HandleError:
        return None
    labels = labels_of(list(record or ()))
    if record and labels is None and any(v.type.upper() == NODE_TYPE for v in record):
        log.warning("%s carries an %s value that does not parse", child.na_handle, NODE_TYPE)
    return labels


class HandleAuthenticator:
    """Checks ``index:0.NA/<prefix>`` identities against this node's handle records.

    An identity proves the prefix ``P`` of its ``0.NA/P`` handle when its secret
    matches the HS_SECKEY at that index.  ``P`` is a child when this node holds
    a delegation for it (``0.NA/P`` with an HS_SITE) and ``P`` sits directly
    below the node's own prefix.

    Failures are charged to the client's address (``peer``) by the node's
    ``Authorizer``, as for the REST API, and told to its failure observers
    (channel ``monitoring``); an address out of attempts is refused with
    ``ReportUnauthenticated`` saying when it may try again.  Credentials of a
    prefix without an HS_SECKEY here (typically a child reporting before its
    delegation is written) are refused at once and not charged: nothing can be
    guessed there, and delegation records are public, so there is no existence
    to hide.  A child started first thus does not lock its host's address out.
    """

    def __init__(self, service: HandleService) -> None:
        self.service = service
        self._children: set[Prefix] = set()

    async def _identity(
        self, username: str, password: str, peer: str | None
    ) -> IndexedHandle | None:
        auth = self.service.auth
        try:
            identity = IndexedHandle.parse(username)
            record = (
                await self.service.lookup(identity.handle) if identity.handle.is_na_handle else None
            )
        except HandleError:
            return None
        if not any(
            v.index == identity.index and isinstance(v.data, SecKeyData) for v in record or ()
        ):
            return None
        limited = await auth.wait_time(identity, peer) > 0
        try:
            return await auth.authenticate(Credentials(identity, password), peer=peer)
        except AuthenticationFailed as exc:
            auth.failed("monitoring", str(identity), peer)
            if limited:
                raise ReportUnauthenticated(exc.message) from None
            return None
        except HandleError:
            return None

    async def __call__(
        self, username: str, password: str, /, *, peer: str | None = None
    ) -> Prefix | None:
        identity = await self._identity(username, password, peer)
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

    async def is_admin(
        self, username: str, password: str, /, *, peer: str | None = None
    ) -> bool | None:
        identity = await self._identity(username, password, peer)
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


__all__ = [
    "NODE_INDEX",
    "NODE_TYPE",
    "HandleAuthenticator",
    "child_labels",
    "delegated_children",
    "labels_of",
    "node_value",
]
