"""What the ``iinode`` sub-commands share: consoles, options, one-line failures."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from iinode.client import NodeClient

console = Console()
err = Console(stderr=True)
T = TypeVar("T")

NodeUrl = Annotated[str, typer.Option("--node", help="URL of the node", envvar="IINODE_NODE_URL")]
Secret = Annotated[
    str | None, typer.Option("--secret", help="admin secret", envvar="IINODE_ADMIN_SECRET")
]
Admin = Annotated[
    str | None, typer.Option("--admin", help="identity, default 300:0.NA/<the node's prefix>")
]


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run library code; its errors reach ``iinode.cli.main.run`` as one line."""
    return asyncio.run(coro)


async def admin_client(node: str, secret: str | None, admin: str | None) -> NodeClient:
    """A client authenticated as ``admin`` or as the node's own administrator."""
    if secret is None:
        fail("give --secret or set IINODE_ADMIN_SECRET")
    identity = admin
    if identity is None:
        async with NodeClient(node) as anonymous:
            prefix = (await anonymous.node_info()).get("prefix")
        if not prefix:
            fail(f"{node} owns no prefix; give --admin")
        identity = f"300:0.NA/{prefix}"
    return NodeClient(node, identity=identity, secret=secret)
