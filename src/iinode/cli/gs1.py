"""``iinode gs1 link add|list|remove``: the links a node's GS1 Digital Link resolver answers with.

The key is given as a Digital Link path or URI (``/01/09506000134352/10/LOT1``
or ``https://id.example/01/09506000134352``); it is checked here (check digit,
qualifier order) before anything is sent.  Writes authenticate as the node's
administrator (``300:0.NA/<prefix>``) unless ``--admin`` names another identity.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from iinode.cli.common import Admin, NodeUrl, Secret, admin_client, console, run
from iinode.client import NodeClient
from iinode.gs1 import Link, parse_path

app = typer.Typer(no_args_is_help=True, help="GS1 Digital Link resolver.")
link_app = typer.Typer(no_args_is_help=True, help="Links of GS1 keys (307 targets, linksets).")
app.add_typer(link_app, name="link")

KeyPath = Annotated[
    str, typer.Argument(help="GS1 key as a Digital Link path or URI, e.g. /01/09506000134352")
]


def key_path(text: str) -> str:
    """The canonical path of a Digital Link given as a path or a URI."""
    path = urlsplit(text).path if "://" in text else text
    link = parse_path("/" + path.strip("/"))
    return link.path


@link_app.command("add")
def add(
    key: KeyPath,
    link_type: Annotated[str, typer.Option("--type", "-t", help="link type, e.g. gs1:pip")],
    href: Annotated[str, typer.Option("--href", help="target URL")],
    title: Annotated[str, typer.Option("--title", help="human-readable title")],
    lang: Annotated[
        list[str] | None, typer.Option("--lang", help="hreflang, repeatable (en, de-CH)")
    ] = None,
    media_type: Annotated[
        str | None, typer.Option("--media-type", help="target media type, e.g. text/html")
    ] = None,
    context: Annotated[list[str] | None, typer.Option("--context", help="repeatable")] = None,
    default: Annotated[bool, typer.Option("--default", help="make it the key's default")] = False,
    keep_query: Annotated[
        bool, typer.Option("--forward-query/--no-forward-query", help="pass query strings on")
    ] = True,
    node: NodeUrl = "http://127.0.0.1:8000",
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Add a link to a GS1 key (the key's first link becomes its default)."""
    path = key_path(key)
    link = Link(
        link_type, href, title, tuple(lang or ()), media_type, tuple(context or ()),
        default=default, forward_query=keep_query,
    )  # fmt: skip
    body = link.to_json()

    async def go() -> Any:
        async with await admin_client(node, secret, admin) as c:
            return await c.call_json("POST", f"/api/gs1/links{path}", json=body)

    stored = run(go())
    index = stored["link"]["index"]
    console.print(f"added {stored['link']['linkType']} at index {index} of {stored['handle']}")


@link_app.command("list")
def list_links(key: KeyPath, node: NodeUrl = "http://127.0.0.1:8000") -> None:
    """Show the links stored for a GS1 key (not those it inherits)."""
    path = key_path(key)

    async def go() -> Any:
        async with NodeClient(node) as c:
            return await c.call_json("GET", f"/api/gs1/links{path}")

    doc = run(go())
    table = Table("index", "type", "default", "lang", "context", "title", "href")
    for link in doc["links"]:
        table.add_row(
            str(link["index"]), link["linkType"], "yes" if link["default"] else "",
            ",".join(link.get("hreflang", [])), ",".join(link.get("context", [])),
            link["title"], link["href"],
        )  # fmt: skip
    console.print(f"{doc['uri']} ({doc['handle']})", highlight=False)
    console.print(table)


@link_app.command("remove")
def remove(
    key: KeyPath,
    index: Annotated[int, typer.Option("--index", help="index of the link (see list)")],
    node: NodeUrl = "http://127.0.0.1:8000",
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Remove a link; if it was the default, the next link becomes the default."""
    path = key_path(key)

    async def go() -> Any:
        async with await admin_client(node, secret, admin) as c:
            return await c.call_json("DELETE", f"/api/gs1/links{path}", params={"index": index})

    done = run(go())
    console.print(f"removed index {done['removed']} of {done['handle']}")
