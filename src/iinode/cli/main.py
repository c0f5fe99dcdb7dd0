"""The ``iinode`` command: parses arguments, builds settings, calls the library."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

import iinode
from iinode.cli.alarm import app as alarm_app
from iinode.cli.common import configure_logging, console, err
from iinode.cli.equipment import app as equipment_app
from iinode.cli.gs1 import app as gs1_app
from iinode.cli.handles import prefix_app, register, resolve
from iinode.cli.keys import app as keys_app
from iinode.cli.kpi import app as kpi_app
from iinode.cli.local_node import bulk_load, init, serve
from iinode.cli.monitor import app as monitor_app
from iinode.cli.project import app as project_app
from iinode.cli.search import search as search_command
from iinode.cli.settings_cmd import show_settings
from iinode.cli.simulate import app as simulate_app
from iinode.cli.telemetry import app as telemetry_app
from iinode.cli.template import app as template_app
from iinode.errors import HandleError, IinodeError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="iinode: an Industrial Internet node."
)
app.add_typer(prefix_app, name="prefix")
app.add_typer(equipment_app, name="equipment")
app.add_typer(telemetry_app, name="telemetry")
app.add_typer(kpi_app, name="kpi")
app.add_typer(alarm_app, name="alarm")
app.add_typer(project_app, name="project")
app.add_typer(simulate_app, name="simulate")
app.add_typer(monitor_app, name="monitor")
app.add_typer(keys_app, name="keys")
app.add_typer(gs1_app, name="gs1")
app.add_typer(template_app, name="template")
app.command("search")(search_command)
app.command()(init)
app.command()(serve)
app.command()(register)
app.command()(resolve)
app.command("bulk-load")(bulk_load)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"iinode {iinode.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="also show the log of the libraries the node runs (INFO)"
        ),
    ] = False,
) -> None:
    """iinode: an Industrial Internet node."""
    configure_logging(verbose=verbose)


def demo(
    base_port: Annotated[
        int, typer.Option(help="first HTTP port; nodes use the following ones")
    ] = 8100,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="keep node data here instead of a temp dir")
    ] = None,
    products: Annotated[
        int, typer.Option(min=0, help="product identifiers bulk-registered per enterprise")
    ] = 2000,
    enterprises: Annotated[
        int, typer.Option(min=1, max=60, help="enterprise nodes, spread over three provinces")
    ] = 6,
    machines: Annotated[int, typer.Option(min=1, max=40, help="machines per enterprise")] = 3,
    resolutions: Annotated[
        float, typer.Option(min=0, help="product identifiers resolved per second from the top")
    ] = 10.0,
    headless: Annotated[
        bool, typer.Option(help="for scripts: no progress or hints, one JSON line once up")
    ] = False,
) -> None:
    """Boot a miniature national Industrial Internet on local ports, with its web console."""
    from iinode.demo.run import run_demo

    asyncio.run(
        run_demo(
            console,
            base_port=base_port,
            duration=duration,
            data_dir=data_dir,
            products=products,
            enterprises=enterprises,
            machines=machines,
            resolutions_per_second=resolutions,
            headless=headless,
        )
    )


app.command()(demo)
app.command("settings")(show_settings)


def run() -> None:
    """Entry point: library errors print one line and exit non-zero."""
    command = typer.main.get_command(app)
    if not sys.stdout.isatty():
        _plain_help(command)
    try:
        result = command(standalone_mode=False)
        if isinstance(result, int):
            sys.exit(result)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except HandleError as exc:
        err.print(
            f"[red]error:[/red] {escape(exc.message)} "
            f"(Handle response code {int(exc.code)} {exc.code.to_text()})",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    except IinodeError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except OSError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as exc:
        if isinstance(exc, _usage_errors()):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise


def _plain_help(command: object) -> None:
    """Help as plain text (click's layout) for ``command`` and its sub-commands: piped,
    rich's panels would cut long lines at 80 columns and draw boxes."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        if not sub.short_help and sub.help:  # whole in the listing, not cut to 45 characters
            sub.short_help = " ".join(sub.help.split("\n\n")[0].split())
        _plain_help(sub)


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error classes: the installed click's and the copy typer may vendor."""
    import click

    found: set[type[Exception]] = {click.ClickException}
    found.update(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return tuple(found)
