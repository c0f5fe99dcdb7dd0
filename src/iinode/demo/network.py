"""The miniature national network of ``iinode demo``.

One top-level node (prefix 88), two provincial secondary nodes and four
enterprise nodes in the seed's key industries, each a full node with its own
SQLite store and HTTP API on a local port, all in one process.  Delegations
and registrations go through the REST API exactly as separate machines would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from iinode.api.app import build_resolver, create_app
from iinode.client import NodeClient
from iinode.errors import ConfigurationError
from iinode.identifiers import HandleName, HandleValue, Prefix, StringData, UrlData
from iinode.node.service import BulkRegistrar, HandleService, site_from_url
from iinode.node.settings import NodeSettings, Role
from iinode.resolution import HttpResolver
from iinode.storage import SQLiteStore

SECRET = "demo-secret"


@dataclass(frozen=True)
class NodeSpec:
    role: Role
    prefix: str
    name: str
    parent: str | None = None
    industry: str = ""


NETWORK = (
    NodeSpec(Role.TOP, "88", "National top-level node"),
    NodeSpec(Role.SECONDARY, "88.118", "Jiangsu provincial node", "88"),
    NodeSpec(Role.SECONDARY, "88.120", "Guangdong provincial node", "88"),
    NodeSpec(Role.ENTERPRISE, "88.118.8", "Changzhou Auto Works", "88.118", "automobiles"),
    NodeSpec(Role.ENTERPRISE, "88.118.9", "Nanjing Petrochemical", "88.118", "petrochemicals"),
    NodeSpec(Role.ENTERPRISE, "88.120.3", "Foshan Home Appliances", "88.120", "home appliances"),
    NodeSpec(Role.ENTERPRISE, "88.120.5", "Guangzhou Pharma", "88.120", "medicine"),
)

EQUIPMENT = {
    "automobiles": ["PRESS-01", "WELD-ROBOT-02", "PAINT-LINE-03"],
    "petrochemicals": ["CRACKER-01", "PUMP-07", "COMPRESSOR-02"],
    "home appliances": ["INJECTION-01", "ASSEMBLY-04", "TESTBENCH-02"],
    "medicine": ["REACTOR-01", "TABLET-PRESS-02", "BLISTER-03"],
}


@dataclass
class RunningNode:
    spec: NodeSpec
    settings: NodeSettings
    service: HandleService
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return self.settings.http_url


def _check_ports(base: int, count: int) -> None:
    for port in range(base, base + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise ConfigurationError(
                    f"port {port} is in use; pick another range with --base-port"
                ) from None


async def _start(spec: NodeSpec, port: int, data: Path, urls: dict[str, str]) -> RunningNode:
    settings = NodeSettings(
        role=spec.role,
        data_dir=data / spec.prefix,
        prefix=spec.prefix,
        http_port=port,
        parent_url=urls.get(spec.parent or ""),
        name=spec.name,
    )
    store = SQLiteStore(settings.data_dir / "handles.sqlite3", synchronous="NORMAL")
    service = HandleService(settings, store)
    await service.initialise(SECRET)
    app = create_app(service, build_resolver(settings))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise ConfigurationError(f"node {spec.prefix} did not start on port {port}")
        await asyncio.sleep(0.02)
    return RunningNode(spec, settings, service, server, task)


async def run_demo(
    console: Console,
    *,
    base_port: int = 8100,
    duration: float | None = None,
    data_dir: Path | None = None,
    products: int = 2000,
) -> None:
    _check_ports(base_port, len(NETWORK))
    with contextlib.ExitStack() as stack:
        data = data_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="iinode-demo-"))
        )
        nodes: dict[str, RunningNode] = {}
        urls: dict[str, str] = {}
        try:
            for n, spec in enumerate(NETWORK):
                node = await _start(spec, base_port + n, data, urls)
                nodes[spec.prefix], urls[spec.prefix] = node, node.url
                console.print(
                    f"started {spec.role.value:<10} {spec.prefix:<9} {node.url}  {spec.name}"
                )
            await _delegate(nodes, console)
            await _register(nodes, console, products)
            await _resolve_examples(nodes, console)
            _print_howto(nodes, console)
            if duration is None:
                console.print("serving; press Ctrl-C to stop")
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(duration)
        finally:
            for node in nodes.values():
                node.server.should_exit = True
            for node in nodes.values():
                with contextlib.suppress(Exception):
                    await node.task
                await node.service.store.close()


async def _delegate(nodes: dict[str, RunningNode], console: Console) -> None:
    for node in nodes.values():
        parent = node.spec.parent
        if parent is None:
            continue
        values = [HandleValue(1, "HS_SITE", site_from_url(node.url))]
        async with NodeClient(nodes[parent].url, identity=f"300:0.NA/{parent}", secret=SECRET) as c:
            await c.put(Prefix(node.spec.prefix).na_handle, values)
        console.print(f"delegated {node.spec.prefix:<9} by {parent}")


async def _register(nodes: dict[str, RunningNode], console: Console, products: int) -> None:
    enterprises = [n for n in nodes.values() if n.spec.role is Role.ENTERPRISE]
    for node in enterprises:
        prefix = node.spec.prefix
        async with NodeClient(node.url, identity=f"300:0.NA/{prefix}", secret=SECRET) as c:
            for tag in EQUIPMENT[node.spec.industry]:
                values = [
                    HandleValue(1, "URL", UrlData(f"{node.url}/equipment/{tag}")),
                    HandleValue(2, "EQUIPMENT_KIND", StringData(tag.rsplit("-", 1)[0].lower())),
                    HandleValue(3, "INDUSTRY", StringData(node.spec.industry)),
                ]
                await c.put(HandleName(prefix, tag), values)
    with Progress(console=console) as progress:
        task = progress.add_task(
            "bulk-registering product identifiers", total=products * len(enterprises)
        )
        for node in enterprises:
            registrar = BulkRegistrar(node.service)
            prefix = node.spec.prefix
            rows = [
                registrar.encode(
                    HandleName(prefix, f"P{n:08d}"),
                    [HandleValue(1, "URL", UrlData(f"{node.url}/products/P{n:08d}"))],
                )
                for n in range(products)
            ]
            await registrar.write(rows)
            progress.advance(task, len(rows))


async def _resolve_examples(nodes: dict[str, RunningNode], console: Console) -> None:
    top = nodes["88"]
    resolver = HttpResolver([site_from_url(top.url)])
    try:
        for handle in ("88.118.8/PRESS-01", "88.120.5/REACTOR-01"):
            started = time.perf_counter()
            resolved = await resolver.resolve(HandleName.parse(handle))
            ms = (time.perf_counter() - started) * 1000
            path = " -> ".join(f"{h.server} ({h.code.to_text()})" for h in resolved.chain)
            url = next((v.data.to_json()["value"] for v in resolved.values if v.type == "URL"), "")
            console.print(f"resolved {handle} in {ms:.1f} ms: {url}")
            console.print(f"  path: {path}", highlight=False)
    finally:
        await resolver.aclose()


def _print_howto(nodes: dict[str, RunningNode], console: Console) -> None:
    top = nodes["88"].url
    table = Table("node", "role", "prefix", "URL", title="the network")
    for node in nodes.values():
        table.add_row(node.spec.name, node.spec.role.value, node.spec.prefix, node.url)
    console.print(table)
    console.print("try:")
    console.print(f"  iinode resolve 88.118.8/PRESS-01 --node {top}")
    console.print(f"  curl -L {top}/api/handles/88.120.3/INJECTION-01")
    console.print(f"  curl {nodes['88.118.8'].url}/api/handles/88.118.8/P00000042")
    console.print(f"  admin identity of each node: 300:0.NA/<prefix>, secret {SECRET!r}")
