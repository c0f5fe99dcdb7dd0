"""``iinode search``: identifiers by template, attribute values, words, URL or OID (REST search)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from iinode.cli.common import Admin, NodeUrl, Secret, console, fail, run
from iinode.cli.template import api


def search(
    node: NodeUrl,
    template: Annotated[str | None, typer.Option(help="registered against this template")] = None,
    attr: Annotated[
        list[str] | None, typer.Option(help="name=value (repeat: all must match)")
    ] = None,
    text: Annotated[
        str | None, typer.Option(help="words, all in values of full-text attributes")
    ] = None,
    url: Annotated[str | None, typer.Option(help="has this URL (reverse lookup)")] = None,
    oid: Annotated[str | None, typer.Option(help="bound to this OID")] = None,
    prefix: Annotated[str | None, typer.Option(help="only under this prefix")] = None,
    limit: Annotated[int, typer.Option(help="handles per page")] = 100,
    all_pages: Annotated[bool, typer.Option("--all", help="follow every page")] = False,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Find identifiers (public values; with --secret a reader of the prefix matches
    restricted ones too)."""
    params: list[tuple[str, Any]] = []
    for key, value in (
        ("template", template),
        ("q", text),
        ("url", url),
        ("oid", oid),
        ("prefix", prefix),
    ):
        if value:
            params.append((key, value))
    for item in attr or []:
        name, sep, value = item.partition("=")
        if not sep:
            fail(f"--attr {item!r} is not name=value")
        params.append((f"attr.{name}", value))
    params.append(("limit", limit))
    after = None
    while True:
        query = params + ([("after", after)] if after else [])
        page = run(api(node, "GET", "/api/search", secret=secret, admin=admin, params=query))
        for handle in page["handles"]:
            console.print(handle, highlight=False)
        after = page["next"]
        if not (all_pages and after):
            return
