"""What the ``iinode`` sub-commands share: consoles, options, one-line failures."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from iinode.client import NodeClient
from iinode.errors import ConfigurationError
from iinode.node.settings import (
    SECRET_SETTINGS,
    SETTINGS,
    NodeSettings,
    setting_names,
    setting_type,
)
from iinode.node.settings_sources import resolve_settings

T = TypeVar("T")


class CliConsole(Console):
    """rich on a terminal; plain text when piped or redirected.

    Off a terminal, tables print as aligned plain columns (no box drawing, no cell
    cut to fit 80 columns) and long lines are not wrapped, so ``grep``, ``cut`` and
    files get every value whole.
    """

    def print(self, *objects: Any, **options: Any) -> None:
        if not self.is_terminal:
            objects = tuple(plain_table(o) if isinstance(o, Table) else o for o in objects)
            options.setdefault("soft_wrap", True)
        super().print(*objects, **options)


def plain_table(table: Table) -> Text:
    """``table`` as text: a title line, a header line, rows; columns two blanks apart."""
    columns = [[_plain(c) for c in column.cells] for column in table.columns]
    headers = [_plain(column.header) for column in table.columns]
    widths = [
        max(cell_len(text) for text in [header, *cells])
        for header, cells in zip(headers, columns, strict=True)
    ]
    right = [column.justify == "right" for column in table.columns]

    def line(cells: Sequence[str]) -> str:
        shown = (
            " " * (w - cell_len(c)) + c if r else c + " " * (w - cell_len(c))
            for c, w, r in zip(cells, widths, right, strict=True)
        )
        return "  ".join(shown).rstrip()

    lines = [_plain(table.title)] if table.title else []
    if table.show_header:
        lines.append(line(headers))
    lines += [line(row) for row in zip(*columns, strict=True)]
    if table.caption:
        lines.append(_plain(table.caption))
    return Text("\n".join(lines))


def _plain(cell: object) -> str:
    if isinstance(cell, str):
        text = Text.from_markup(cell).plain
    elif isinstance(cell, Text):
        text = cell.plain
    else:
        text = str(cell)
    return " ".join(text.splitlines())


console = CliConsole()
err = CliConsole(stderr=True)


class NodeRecordsOnly(logging.Filter):
    """Pass iinode's own log records; other libraries' only when critical."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        return name == "iinode" or name.startswith("iinode.") or record.levelno >= logging.CRITICAL


def configure_logging(*, verbose: bool = False) -> None:
    """Log to stderr: the node's warnings as plain lines; with ``verbose`` every
    library's INFO records too, each with its level and logger name.

    Without ``verbose`` the libraries the node runs (uvicorn, asyncua, pymodbus,
    amqtt, aiomqtt, httpx) stay quiet: their records are not the node's to report.
    """
    handler = logging.StreamHandler()
    root = logging.getLogger()
    if verbose:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.setLevel(logging.INFO)
    else:
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(NodeRecordsOnly())
    for old in [h for h in root.handlers if getattr(h, "iinode_cli", False)]:
        root.removeHandler(old)
    handler.iinode_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)


NodeUrl = Annotated[str, typer.Option("--node", help="URL of the node", envvar="IINODE_NODE_URL")]
Secret = Annotated[
    str | None, typer.Option("--secret", help="admin secret", envvar="IINODE_ADMIN_SECRET")
]
Admin = Annotated[
    str | None, typer.Option("--admin", help="identity, default 300:0.NA/<the node's prefix>")
]


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
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


# -- node settings from the command line, the environment and node.toml -------------
#: Extra option names of settings, kept from before every setting had an option.
OPTION_ALIASES: dict[str, tuple[str, ...]] = {
    "parent_url": ("--parent",),
    "store_url": ("--store",),
    "http_host": ("--host",),
}
SETTINGS_PANEL = "Node settings (also IINODE_* variables and node.toml keys)"
F = TypeVar("F", bound=Callable[..., Any])


def setting_options(*, exclude: Collection[str] = ()) -> Callable[[F], F]:
    """Give a command one option per setting of the table (except ``exclude``).

    The command receives the options given as ``setting_values`` (name -> value,
    ``None`` for options not given), ready for ``node_settings``: a setting added
    to ``SETTINGS`` gets its option here with no other change.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name != "setting_values"]
        added = []
        for name in setting_names():
            if name in exclude:
                continue
            base, _ = setting_type(name)
            flag = f"--{name.replace('_', '-')}"
            env, meaning = SETTINGS[name]
            if name in SECRET_SETTINGS:
                meaning += " (better in the variable or node.toml: options show in ps)"
            decls = (f"{flag}/--no-{flag[2:]}",) if base is bool else (flag,)
            option = typer.Option(
                *decls, *OPTION_ALIASES.get(name, ()), help=f"{meaning} [{env}]",
                show_default=False, rich_help_panel=SETTINGS_PANEL,
            )  # fmt: skip
            annotation = Annotated[base | None, option]  # type: ignore[valid-type]
            added.append(
                inspect.Parameter(
                    f"setting_{name}",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=annotation,
                )
            )

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values = {
                key.removeprefix("setting_"): kwargs.pop(key)
                for key in list(kwargs)
                if key.startswith("setting_")
            }
            return func(**kwargs, setting_values=values)

        parameters = [*kept, *added]
        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        return command  # type: ignore[return-value]

    return decorate


def command_variables() -> set[str]:
    """The environment variables the ``iinode`` command's options read (not settings)."""
    context = click.get_current_context(silent=True)
    found: set[str] = set()
    if context is None:
        return found
    todo: list[click.Command] = [context.find_root().command]
    while todo:
        command = todo.pop()
        if isinstance(command, click.Group):
            todo.extend(command.commands.values())
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                found.add(envvar)
            elif envvar:
                found.update(envvar)
    return found


def node_settings(
    data_dir: Path, setting_values: Mapping[str, object] | None = None, *, node_file: bool = True
) -> NodeSettings:
    """The node's settings: options > IINODE_* variables > node.toml > defaults.

    ``serve``, ``init`` and the other commands that run a node call this; a bad
    or unknown setting from any source ends the command with one line naming it.
    """
    try:
        return resolve_settings(
            data_dir, setting_values, other_variables=command_variables(), node_file=node_file
        )
    except ConfigurationError as exc:
        fail(escape(str(exc)))
