"""Three-level monitoring hierarchies wired in process (``monitoring.hierarchy_support``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from iinode.api.monitoring import metrics_router, monitoring_router
from iinode.api.monitoring_common import MonitoringApp
from iinode.identifiers import Prefix
from iinode.monitoring import MemoryAuthenticator, children_of
from iinode.monitoring.node import MonitoringNode, MonitoringSettings, ParentLink


class CuttableTransport(httpx.AsyncBaseTransport):
    """An in-process link to an ASGI app that can be cut: requests then fail to connect."""

    def __init__(self, app: FastAPI) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.cut = False
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.cut:
            raise httpx.ConnectError("link is cut", request=request)
        return await self._inner.handle_async_request(request)


def app_for(node: MonitoringNode) -> FastAPI:
    app = FastAPI()
    app.include_router(
        monitoring_router(MonitoringApp(node.receiver, node.authenticate, node.board, node.clock))
    )
    app.include_router(metrics_router(node.metrics))
    return app


@dataclass
class Hierarchy:
    national: MonitoringNode
    province: MonitoringNode
    enterprise: MonitoringNode
    province_link: CuttableTransport
    national_link: CuttableTransport
    clients: list[httpx.AsyncClient]

    async def close(self) -> None:
        for node in (self.enterprise, self.province, self.national):
            await node.close()
        for c in self.clients:
            await c.aclose()


NATIONAL = Prefix("88")
PROVINCE = Prefix("88.118")
ENTERPRISE = Prefix("88.118.8")


async def build_hierarchy(
    root: Path, *, clock: Callable[[], float] | None = None, batch_size: int = 500
) -> Hierarchy:
    """national 88 <- province 88.118 <- enterprise 88.118.8, linked by cuttable transports."""
    auth = MemoryAuthenticator()
    prov_user = auth.add(PROVINCE, "province-secret")
    ent_user = auth.add(ENTERPRISE, "enterprise-secret")
    extra = {} if clock is None else {"clock": clock}
    national = MonitoringNode(
        MonitoringSettings(NATIONAL, root / "national"),
        is_child=children_of(PROVINCE),
        authenticate=auth,
        **extra,  # type: ignore[arg-type]
    )
    national_link = CuttableTransport(app_for(national))
    national_client = httpx.AsyncClient(transport=national_link)
    province = MonitoringNode(
        MonitoringSettings(
            PROVINCE,
            root / "province",
            province="JX",
            parent=ParentLink("http://national", prov_user, "province-secret"),
            batch_size=batch_size,
            backoff_initial=0.01,
            backoff_max=0.05,
        ),
        is_child=children_of(ENTERPRISE),
        authenticate=auth,
        client=national_client,
        **extra,  # type: ignore[arg-type]
    )
    province_link = CuttableTransport(app_for(province))
    province_client = httpx.AsyncClient(transport=province_link)
    enterprise = MonitoringNode(
        MonitoringSettings(
            ENTERPRISE,
            root / "enterprise",
            province="JX",
            industry="automobiles",
            parent=ParentLink("http://province", ent_user, "enterprise-secret"),
            batch_size=batch_size,
            backoff_initial=0.01,
            backoff_max=0.05,
        ),
        is_child=children_of(),
        authenticate=auth,
        client=province_client,
        **extra,  # type: ignore[arg-type]
    )
    return Hierarchy(
        national,
        province,
        enterprise,
        province_link,
        national_link,
        [national_client, province_client],
    )
