"""``iinode template …``: define, publish, withdraw and derive metadata templates,
set their readers, and register identifiers against them (over the node's REST API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.table import Table

from iinode.cli.common import Admin, NodeUrl, Secret, console, err, fail, run

app = typer.Typer(no_args_is_help=True, help="Industry metadata templates.")

Handle = Annotated[str, typer.Argument(help="the template, <prefix>/template/<name>/<version>")]


async def api(
    node: str,
    method: str,
    path: str,
    *,
    secret: str | None = None,
    admin: str | None = None,
    body: Any = None,
    params: Any = None,
) -> Any:
    """One call to the node; a refusal prints its message and every violation, then exits."""
    try:
        async with httpx.AsyncClient(base_url=node, timeout=30.0) as client:
            auth = None
            if secret is not None:
                identity = admin
                if identity is None:
                    prefix = (await client.get("/api/node")).json().get("prefix")
                    if not prefix:
                        fail(f"{node} owns no prefix; give --admin")
                    identity = f"300:0.NA/{prefix}"
                auth = httpx.BasicAuth(quote(identity, safe="/"), secret)
            response = await client.request(method, path, json=body, params=params, auth=auth)
    except httpx.HTTPError as exc:
        fail(f"{node} did not answer: {exc}")
    try:
        answer = response.json()
    except ValueError:
        fail(f"HTTP {response.status_code} from {path} without JSON")
    if response.status_code >= 400:
        for v in answer.get("violations", []) if isinstance(answer, dict) else []:
            err.print(
                f"  {v.get('attribute')}: {v.get('rule')}: {v.get('message')}", highlight=False
            )
        message = answer.get("message") if isinstance(answer, dict) else None
        fail(str(message or f"HTTP {response.status_code}"))
    return answer


def _path(handle: str) -> str:
    prefix, _, rest = handle.partition("/")
    parts = rest.split("/")
    if len(parts) != 3 or parts[0] != "template":
        fail(f"{handle!r} is not <prefix>/template/<name>/<version>")
    return f"/api/templates/{quote(prefix, safe='')}/{quote(parts[1], safe='')}/" + quote(
        parts[2], safe=""
    )


@app.command("define")
def define(
    file: Annotated[Path, typer.Argument(help="the definition (JSON)", exists=True)],
    node: NodeUrl,
    publish: Annotated[bool, typer.Option("--publish", help="publish at once")] = False,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Define a template from a JSON file (a draft unless --publish)."""
    try:
        doc = json.loads(file.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"{file.name} is not JSON: {exc}")
    if publish and isinstance(doc, dict):
        doc["status"] = "published"
    answer = run(api(node, "POST", "/api/templates", secret=secret, admin=admin, body=doc))
    console.print(f"defined {answer['handle']} ({answer['template']['status']})")


@app.command("list")
def list_(
    node: NodeUrl,
    prefix: Annotated[str | None, typer.Option(help="default: the node's prefix")] = None,
) -> None:
    """Template handles under a prefix."""
    params = {"prefix": prefix} if prefix else {}
    after: str | None = None
    while True:
        page = run(api(node, "GET", "/api/templates", params={**params, "after": after or ""}))
        for name in page["templates"]:
            console.print(name, highlight=False)
        after = page["next"]
        if not after or len(page["templates"]) < 100:
            return


@app.command("show")
def show(handle: Handle, node: NodeUrl) -> None:
    """A template's definition and attributes."""
    t = run(api(node, "GET", _path(handle)))
    industry = t["industry"]
    console.print(
        f"{t['handle']}  status {t['status']}  industry {industry['code']} "
        f"({industry['section']}/{industry['division']}/{industry['group']}/{industry['class']})"
        + (f"  derived from {t['derivedFrom']}" if t.get("derivedFrom") else ""),
        highlight=False,
    )
    table = Table(
        "index", "attribute", "type", "required", "unique", "full-text", "access", "constraints"
    )
    for a in t["attributes"]:
        table.add_row(
            str(a["index"]), a["name"], a["type"], str(a["required"]), str(a["unique"]),
            str(a.get("fulltext", False)), a["access"],
            json.dumps(a.get("constraints", {}), ensure_ascii=False),
        )  # fmt: skip
    console.print(table)
    if t.get("readers"):
        console.print("readers: " + ", ".join(t["readers"]), highlight=False)


@app.command("publish")
def publish(handle: Handle, node: NodeUrl, secret: Secret = None, admin: Admin = None) -> None:
    """Publish a draft: it then takes registrations and can be derived from."""
    answer = run(api(node, "POST", _path(handle) + "/publish", secret=secret, admin=admin))
    console.print(f"{answer['handle']} {answer['status']}")


@app.command("withdraw")
def withdraw(handle: Handle, node: NodeUrl, secret: Secret = None, admin: Admin = None) -> None:
    """Withdraw a template: its records still validate on update; no new ones."""
    answer = run(api(node, "POST", _path(handle) + "/withdraw", secret=secret, admin=admin))
    console.print(f"{answer['handle']} {answer['status']}")


@app.command("derive")
def derive(
    source: Annotated[str, typer.Argument(help="a published template, here or elsewhere")],
    node: NodeUrl,
    name: Annotated[str | None, typer.Option(help="default: the source's name")] = None,
    version: Annotated[str, typer.Option(help="the new template's version")] = "1",
    industry: Annotated[str | None, typer.Option(help="GB/T 4754 class, e.g. C3451")] = None,
    extra: Annotated[
        Path | None, typer.Option(help="JSON file: a list of further attributes", exists=True)
    ] = None,
    publish: Annotated[bool, typer.Option("--publish", help="publish at once")] = False,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Derive a template of this node's prefix from another (enterprise's) published one."""
    body: dict[str, Any] = {"from": source, "version": version}
    if name:
        body["name"] = name
    if industry:
        body["industry"] = industry
    if extra is not None:
        body["attributes"] = json.loads(extra.read_text("utf-8"))
    if publish:
        body["status"] = "published"
    answer = run(api(node, "POST", "/api/templates/derive", secret=secret, admin=admin, body=body))
    console.print(f"derived {answer['handle']} from {source}")


@app.command("readers")
def readers(
    handle: Handle,
    node: NodeUrl,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="index:handle (repeat); replaces the list")
    ] = None,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Show or set who reads the restricted attributes of the template's identifiers."""
    if set_ is None:
        answer = run(api(node, "GET", _path(handle) + "/readers"))
    else:
        answer = run(
            api(
                node, "PUT", _path(handle) + "/readers", secret=secret, admin=admin,
                body={"readers": set_},
            )
        )  # fmt: skip
    for reader in answer["readers"]:
        console.print(reader, highlight=False)


@app.command("register")
def register(
    handle: Annotated[str, typer.Argument(help="the identifier to register")],
    template: Annotated[str, typer.Option(help="the template handle")],
    node: NodeUrl,
    attr: Annotated[list[str], typer.Option(help="name=value (repeat)")],
    url: Annotated[str | None, typer.Option(help="a URL value at index 1")] = None,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Register an identifier against a template (every violation is listed if refused)."""
    definition = run(api(node, "GET", _path(template)))
    indexes = {a["name"]: a["index"] for a in definition["attributes"]}
    values: list[dict[str, Any]] = [{"index": 1001, "type": "II_TEMPLATE", "data": template}]
    if url:
        values.append({"index": 1, "type": "URL", "data": url})
    for item in attr:
        name, sep, value = item.partition("=")
        if not sep:
            fail(f"--attr {item!r} is not name=value")
        # An attribute the template lacks is sent at a free index; the node names it.
        index = indexes.get(name, 1_000_000 + len(values))
        values.append({"index": index, "type": name, "data": value})
    path = f"/api/handles/{quote(handle, safe='/')}"
    run(api(node, "PUT", path, secret=secret, admin=admin, body={"values": values}))
    console.print(f"registered {handle} against {template}")
