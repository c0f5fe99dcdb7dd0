"""``iinode settings``: the settings a node would run with, and where each came from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from iinode.cli.common import command_variables, console, fail, setting_options
from iinode.errors import ConfigurationError
from iinode.node.settings import FIXED_AT_INIT, NODE_FILE, SECRET_SETTINGS, setting_names
from iinode.node.settings_sources import resolve_with_sources

MASK = "***"


@setting_options(exclude=FIXED_AT_INIT)
def show_settings(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="the node's data directory", envvar="IINODE_DATA_DIR")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    *,
    setting_values: Mapping[str, object],
) -> None:
    """Show the settings 'iinode serve' would use with the same options and environment.

    Each comes from the first of: option (shown as "command line"), IINODE_*
    variable, node.toml, default. Secrets are shown as ***.
    """
    try:
        settings, sources = resolve_with_sources(
            data_dir, setting_values, other_variables=command_variables()
        )
    except ConfigurationError as exc:
        fail(escape(str(exc)))
    rows = []
    for name in setting_names():
        value = getattr(settings, name)
        if name in SECRET_SETTINGS and value is not None:
            value = MASK
        elif hasattr(value, "value"):  # an enum
            value = value.value
        rows.append((name, value, sources.get(name, "default")))
    if as_json:
        print(json.dumps({name: {"value": v, "source": s} for name, v, s in rows}))
        return
    table = Table()
    for column in ("setting", "value", "from"):
        table.add_column(column, overflow="fold")  # whole values, also when piped
    for name, value, source in rows:
        shown = "" if value is None else str(value).lower() if isinstance(value, bool) else value
        if source.endswith(NODE_FILE):
            source = NODE_FILE
        table.add_row(name, escape(str(shown)), escape(source))
    console.print(table)
