"""``iinode prefix delegate``, ``register`` and ``resolve``: identifiers at nodes.

They talk to running nodes: over HTTP (``iinode.client``) to write, and over HTTP
or the native Handle protocol to resolve through the hierarchy.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from iinode.cli.common import Secret, console, err, fail
from iinode.errors import HandleError, IinodeError
from iinode.identifiers import (
    HandleName,
    HandleValue,
    Permissions,
    Prefix,
    SecKeyData,
    SiteData,
    StringData,
    UrlData,
    data_class_for,
)

prefix_app = typer.Typer(no_args_is_help=True, help="Prefix delegation.")


@prefix_app.command("delegate")
def delegate(
    child: Annotated[str, typer.Argument(help="the prefix to delegate, e.g. 88.118.8")],
    to: Annotated[str, typer.Option("--to", help="URL of the node that will own it")],
    node: Annotated[str, typer.Option("--node", help="URL of the delegating (parent) node")],
    secret: Secret = None,
    admin: Annotated[
        str | None, typer.Option(help="identity, default 300:0.NA/<parent prefix>")
    ] = None,
    child_secret: Annotated[
        str | None,
        typer.Option(
            "--child-secret",
            help="the child's secret (HS_SECKEY at index 300, sealed by the parent's node key): "
            "it authenticates the child's monitoring reports; give the child the same as its "
            "report_secret",
            envvar="IINODE_CHILD_SECRET",
        ),
    ] = None,
    handle_port: Annotated[
        int | None,
        typer.Option(
            "--handle-port",
            help="the child's native Handle port (default: its /api/node handlePort, if it "
            "answers); the delegation then lists TCP and UDP interfaces next to HTTP",
        ),
    ] = None,
    province: Annotated[
        str, typer.Option(help="the child's province as this parent records it (IINODE_NODE)")
    ] = "",
    industry: Annotated[
        str, typer.Option(help="the child's industry as this parent records it (IINODE_NODE)")
    ] = "",
) -> None:
    """Delegate CHILD to the node at --to, by writing 0.NA/CHILD at the parent."""
    from iinode.client import NodeClient
    from iinode.node.service import site_from_url

    prefix = Prefix(child)
    if prefix.parent is None:
        fail("a root prefix cannot be delegated")
    identity = admin or f"300:0.NA/{prefix.parent}"
    if secret is None:
        fail("give --secret or set IINODE_ADMIN_SECRET")
    if child_secret is not None and not child_secret:
        fail("--child-secret must not be empty")
    if handle_port is not None and not 0 < handle_port < 65536:
        fail(f"--handle-port {handle_port} is not a port (1-65535)")
    site_from_url(to)  # a malformed --to fails here, before anything is asked or written
    note = ""
    if handle_port is None:
        handle_port, note = asyncio.run(_child_handle_port(to, prefix))
    from iinode.cli.keys import child_key, fingerprint

    key, key_note = asyncio.run(child_key(to, prefix))
    site = site_from_url(to, handle_port, key)
    values = [HandleValue(1, "HS_SITE", site)]
    if province or industry:  # monitoring labels the child by these, not by its own word
        from iinode.api.delegations import node_value

        try:
            values.append(node_value(province, industry))
        except ValueError as exc:
            fail(str(exc))
    if child_secret:
        # Plain text here; the node stores every HS_SECKEY sealed with its node key.
        hidden = Permissions.ADMIN_READ | Permissions.ADMIN_WRITE
        values.append(
            HandleValue(300, "HS_SECKEY", SecKeyData(child_secret.encode()), permissions=hidden)
        )

    async def run() -> None:
        async with NodeClient(node, identity=identity, secret=secret) as client:
            try:
                await client.put(prefix.na_handle, values)
            except HandleError:
                assert prefix.parent is not None
                await _refuse_unserved(node, prefix.parent, f"delegate {prefix}")
                raise

    asyncio.run(run())
    console.print(f"delegated {prefix} to {to} (record {prefix.na_handle} at {node})")
    if handle_port is not None:
        host = site.servers[0].address
        console.print(f"native Handle protocol (UDP+TCP) at {host}:{handle_port}")
    elif note:
        console.print(f"HTTP only: {note}", highlight=False)
    if key:
        console.print(f"the child's server key (SHA-256 {fingerprint(key)}) is in the record")
    else:
        console.print(f"no server key in the record: {key_note}", highlight=False)
    if child_secret:
        console.print(
            f"the child authenticates as 300:{prefix.na_handle}; set its report_secret to match"
        )


async def _refuse_unserved(url: str, prefix: Prefix, action: str) -> None:
    """After a refusal: fail naming the cause if the node at ``url`` does not serve
    ``prefix`` (its identity is unknown there, so the refusal says authentication)."""
    from iinode.client import NodeClient

    try:
        async with NodeClient(url, timeout=5.0) as client:
            owned = (await client.node_info()).get("prefix")
    except IinodeError:
        return  # not an iinode node, or gone: the refusal itself is the best answer
    if not owned:
        fail(escape(f"{url} serves no prefix (a recursive node): {action} at the node that "
                    f"owns {prefix}"))  # fmt: skip
    if not prefix.is_within(Prefix(str(owned))):
        fail(escape(f"{url} does not serve {prefix} (it serves {owned}): {action} at the "
                    f"node that owns {prefix}"))  # fmt: skip


async def _child_handle_port(url: str, prefix: Prefix) -> tuple[int | None, str]:
    """The native port the child at ``url`` announces in ``/api/node`` (or why there is none)."""
    from iinode.client import NodeClient

    try:
        async with NodeClient(url, timeout=3.0) as client:
            info = await client.node_info()
    except IinodeError as exc:
        return None, f"{url} did not say its handle port ({exc}); give --handle-port"
    owned = info.get("prefix")
    if owned is not None and str(owned).upper() != str(prefix).upper():
        err.print(f"[yellow]warning:[/yellow] {url} owns {owned}, not {prefix}", highlight=False)
    port = info.get("handlePort")
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return port, ""
    return None, f"{url} serves no native Handle protocol (no handlePort in /api/node)"


def register(
    handle: Annotated[str, typer.Argument(help="prefix/suffix")],
    node: Annotated[str, typer.Option("--node", help="URL of the node that owns the prefix")],
    url: Annotated[str | None, typer.Option(help="URL value (index 1)")] = None,
    value: Annotated[
        list[str] | None, typer.Option("--value", help="TYPE=TEXT, repeatable")
    ] = None,
    secret: Secret = None,
    admin: Annotated[str | None, typer.Option(help="identity, default 300:0.NA/<prefix>")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing handle")] = False,
) -> None:
    """Register an identifier at its node."""
    from iinode.client import NodeClient

    name = HandleName.parse(handle)
    values: list[HandleValue] = []
    if url:
        values.append(HandleValue(1, "URL", UrlData(url)))
    for item in value or []:
        vtype, eq, text = item.partition("=")
        if not eq or not vtype:
            fail(f"--value {item!r} must be TYPE=TEXT")
        cls = data_class_for(vtype) or StringData
        values.append(HandleValue(len(values) + 1, vtype, cls.from_json(text)))
    if secret is None:
        fail("give --secret or set IINODE_ADMIN_SECRET")

    async def run() -> None:
        async with NodeClient(
            node, identity=admin or f"300:0.NA/{name.prefix}", secret=secret
        ) as c:
            try:
                await c.put(name, values, overwrite=overwrite)
            except HandleError:
                await _refuse_unserved(node, name.authority, f"register {name}")
                raise

    asyncio.run(run())
    console.print(f"registered {name} at {node}")


def resolve(
    handle: Annotated[str, typer.Argument(help="prefix/suffix")],
    node: Annotated[
        str,
        typer.Option(
            "--node", help="URL to start from (a top-level node)", envvar="IINODE_ROOT_URL"
        ),
    ] = "http://127.0.0.1:8000",
    native: Annotated[
        bool,
        typer.Option(
            "--native",
            help="use the native Handle protocol (UDP, then TCP), from the handle port "
            "the --node announces in its /api/node",
        ),
    ] = False,
    server: Annotated[
        str | None,
        typer.Option("--server", help="with --native: the HOST:PORT to start from instead"),
    ] = None,
) -> None:
    """Resolve an identifier through the hierarchy and show the chain of nodes walked."""
    from iinode.identifiers import site_for
    from iinode.node.service import site_from_url
    from iinode.resolution import resolve_sync
    from iinode.resolution.native_client import resolve_native_sync

    name = HandleName.parse(handle)
    if server is not None and not native:
        fail("--server is the native protocol's starting point: add --native")
    if native:
        if server is None:
            server = asyncio.run(_native_server_of(node))
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            fail(f"--server {server!r} must be HOST:PORT")
        root = site_from_url(f"http://{host}:1", int(port)) if not _is_ip(host) else None
        roots = [root or site_for(host, handle_port=int(port))]
        resolved = resolve_native_sync(name, roots)
    else:
        resolved = resolve_sync(name, [site_from_url(node)])
    console.print(f"[bold]{name}[/bold]  (step. handle asked  @ server that answered  code)")
    for n, hop in enumerate(resolved.chain, start=1):
        console.print(
            f"  {n}. {hop.asked:<22} @ {hop.server:<24} {hop.code.to_text():<18} {hop.detail}",
            highlight=False,
        )
    table = Table("index", "type", "data", "ttl")
    for v in resolved.values:
        data = v.data.to_json()["value"]
        table.add_row(str(v.index), v.type, _cell(data), str(v.ttl))
    console.print(table)


async def _native_server_of(url: str) -> str:
    """``HOST:PORT`` of the native Handle protocol the node at ``url`` serves."""
    from urllib.parse import urlsplit

    from iinode.client import NodeClient

    try:
        async with NodeClient(url, timeout=5.0) as client:
            info = await client.node_info()
    except IinodeError as exc:
        fail(f"{url} did not say its handle port ({exc}); give --server HOST:PORT")
    port = info.get("handlePort")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        fail(f"{url} serves no native Handle protocol (no handlePort in its /api/node)")
    host = urlsplit(url).hostname or "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _cell(data: object) -> str:
    if isinstance(data, SiteData):
        return ",".join(data.http_urls())
    return str(data)
