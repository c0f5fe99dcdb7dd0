"""``build_node(settings) -> Node``: the one place a node's parts are put together.

``iinode serve`` (in its own process and in each ``--workers`` process, from
the settings the parent resolved), ``iinode demo`` and the tests all build
their nodes here, then serve ``node_app(node)`` (``iinode.assembly.app``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from iinode.api.delegations import HandleAuthenticator
from iinode.assembly.extensions import TAKEOVER_INTERVAL, NodeExtensions
from iinode.connectivity.service import TelemetryService
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.node import MonitoringNode
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.service import HandleService, site_from_url
from iinode.node.settings import NodeSettings, Role
from iinode.resolution import HttpResolver
from iinode.resolution.native_trust import learn_server_key
from iinode.resolution.shared_cache import close_resolution_cache, resolution_cache_for
from iinode.storage import HandleStore, open_store
from iinode.telemetry.registry_handles import HandleRegistry


def build_resolver(settings: NodeSettings) -> HttpResolver | None:
    """The resolver for handles beyond this node: from the parent, or from this node if it
    is a root; ``None`` for a recursive node without a parent."""
    if not settings.parent_url and settings.role is not Role.RECURSIVE:
        roots = [site_from_url(settings.http_url)]
    elif settings.parent_url:
        roots = [site_from_url(settings.parent_url)]
    else:
        return None
    cache = resolution_cache_for(settings)
    return HttpResolver(roots, cache=cache, max_referrals=settings.max_referrals)


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One running node's parts; ``aclose`` stops and closes all of them (the store too)."""

    settings: NodeSettings
    service: HandleService
    #: Resolves handles beyond this node (``None``: this node answers from its own data).
    resolver: HttpResolver | None
    metrics: NodeMetrics
    #: Who may report to this node (its children) and administer it.
    auth: HandleAuthenticator
    extensions: NodeExtensions

    @property
    def store(self) -> HandleStore:
        return self.service.store

    @property
    def monitoring(self) -> MonitoringNode | None:
        return self.extensions.monitoring

    @property
    def registry(self) -> HandleRegistry | None:
        return self.extensions.registry

    @property
    def telemetry(self) -> TelemetryService | None:
        return self.extensions.telemetry

    async def aclose(self) -> None:
        try:
            await self.extensions.aclose()
        finally:
            if self.resolver is not None:
                await self.resolver.aclose()
                await close_resolution_cache(self.resolver.cache)
            await self.service.auth.aclose()
            await self.service.store.close()
            self.service.changes.close()

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def build_node(
    settings: NodeSettings,
    *,
    store: HandleStore | None = None,
    changes: ChangeCounter | None = None,
    admin_secret: str | None = None,
    resolve: bool = True,
    client: httpx.AsyncClient | None = None,
    takeover_interval: float = TAKEOVER_INTERVAL,
) -> Node:
    """Open ``settings``' node and start what it runs; the node owns everything it opened.

    ``store`` defaults to ``settings.store_url`` and ``changes`` to the change counter
    file the native workers share (``<data-dir>/changes``).  With ``admin_secret`` the
    node's prefix record is created (a new node); otherwise its HS_SITE is brought in
    step with the settings.  ``resolve=False`` leaves the node without a resolver for
    handles beyond it; ``client`` is the monitoring's HTTP client to the parent.
    """
    if changes is None:
        changes = ChangeCounter(Path(settings.data_dir) / COUNTER_FILE)
    resolver: HttpResolver | None = None
    try:
        if store is None:
            store = await open_store(settings.store_url, base_dir=settings.data_dir)
        # The parent's server key is learned over the native protocol (resolution/).
        service = HandleService(settings, store, changes=changes, learn_key=learn_server_key)
        if admin_secret is not None:
            await service.initialise(admin_secret)
        else:
            await service.refresh_site()
        resolver = build_resolver(settings) if resolve else None
        metrics = NodeMetrics()
        auth = HandleAuthenticator(service)
        extensions = NodeExtensions(
            settings, service, metrics, auth, client=client, takeover_interval=takeover_interval
        )
        node = Node(settings, service, resolver, metrics, auth, extensions)
    except BaseException:
        if resolver is not None:
            await resolver.aclose()
            await close_resolution_cache(resolver.cache)
        if store is not None:
            await store.close()
        changes.close()
        raise
    try:
        await extensions.start()
    except BaseException:
        await node.aclose()
        raise
    return node


__all__ = ["Node", "build_node", "build_resolver"]
