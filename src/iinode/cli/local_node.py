"""``iinode init``, ``serve`` and ``bulk-load``: the commands on a node's own data directory.

``init`` creates the node (its node.toml and prefix record), ``serve`` runs it
(``serve.py``), ``bulk-load`` writes identifiers straight into its store.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from iinode.cli.common import console, fail, node_settings, setting_options
from iinode.errors import HandleError, IinodeError
from iinode.node.settings import FIXED_AT_INIT, NODE_FILE

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="the node's data directory", envvar="IINODE_DATA_DIR")
]


@setting_options()
def init(
    data_dir: DataDir,
    admin_secret: Annotated[
        str,
        typer.Option(
            "--admin-secret",
            envvar="IINODE_ADMIN_SECRET",
            help="secret of the node's administrator 300:0.NA/<prefix>",
        ),
    ],
    *,
    setting_values: Mapping[str, object],
) -> None:
    """Create a node: its configuration and its prefix record 0.NA/<prefix>.

    Every setting is an option here (or an IINODE_* variable); what is given is
    checked, then written to <data-dir>/node.toml.
    """
    from iinode.node.service import HandleService
    from iinode.storage import open_store

    if (data_dir / NODE_FILE).exists():
        fail(f"{data_dir} already holds a node; choose another --data-dir")
    settings = node_settings(data_dir, setting_values, node_file=False)
    if settings.prefix is not None and not admin_secret:
        fail("--admin-secret must not be empty")

    async def run() -> str | None:
        store_ = await open_store(settings.store_url, base_dir=data_dir)
        try:
            if settings.prefix is None:
                return None
            return str(await HandleService(settings, store_).initialise(admin_secret))
        finally:
            await store_.close()

    # The store first, node.toml (mode 0600) last; whatever a failed init made in
    # the data directory is removed again, so it can simply be run again.
    with _undone_on_failure(data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        na = asyncio.run(run())
        path = settings.save()
    console.print(f"node configuration written to {path}")
    if na:
        console.print(f"created {na}; authenticate as [bold]300:{na}[/bold]")


@contextmanager
def _undone_on_failure(data_dir: Path) -> Iterator[None]:
    """Remove what the block adds under ``data_dir`` (and the directory, if it made it)."""
    made = data_dir.absolute()
    while not made.parent.exists():
        made = made.parent
    existed = made.exists()
    before = set(data_dir.iterdir()) if data_dir.is_dir() else set()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(made, ignore_errors=True)
        elif data_dir.is_dir():
            for path in set(data_dir.iterdir()) - before:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


@setting_options(exclude=FIXED_AT_INIT)
def serve(
    ctx: typer.Context,
    data_dir: DataDir,
    workers: Annotated[int, typer.Option(help="HTTP worker processes")] = 1,
    native_workers: Annotated[
        int | None, typer.Option(help="native protocol worker processes (default: CPU count)")
    ] = None,
    *,
    setting_values: Mapping[str, object],
) -> None:
    """Serve the node's HTTP API, and the native protocol (UDP+TCP) if a handle port is set.

    SIGTERM, SIGINT and SIGHUP stop the whole node gracefully (SIGHUP is not a reload).
    Settings: options > IINODE_* variables > <data-dir>/node.toml > defaults.
    """
    from iinode.cli.serve import run_node

    settings = node_settings(data_dir, setting_values)
    verbose = bool(ctx.find_root().params.get("verbose", False))  # iinode --verbose serve
    run_node(settings, workers=workers, native_workers=native_workers, console=console,
             verbose=verbose)  # fmt: skip


def bulk_load(
    file: Annotated[Path, typer.Argument(help=".csv or .jsonl file", exists=True, dir_okay=False)],
    data_dir: DataDir,
    overwrite: Annotated[bool, typer.Option(help="replace existing handles")] = False,
    batch: Annotated[int, typer.Option(help="rows per transaction")] = 20_000,
    template: Annotated[
        str | None,
        typer.Option(help="register CSV rows against this template: its attributes' columns"),
    ] = None,
) -> None:
    """Load many identifiers straight into this node's store, with a progress bar."""
    from rich.markup import escape

    from iinode.errors import ValueInvalid
    from iinode.identifiers import HandleName
    from iinode.node.bulk import BulkRegistrar
    from iinode.node.loader import LoadError, TemplateColumns, count_lines, read_numbered_rows
    from iinode.node.service import HandleService
    from iinode.storage import open_store

    if template is not None and file.suffix.lower() not in (".csv", ".txt"):
        fail("--template reads CSV columns; JSON Lines rows carry their own link and indexes")

    settings = node_settings(data_dir)
    total = max(count_lines(file) - (1 if file.suffix.lower() == ".csv" else 0), 0)
    #: rows committed (written, skipped), the last line committed, the line reached
    written = skipped = done_line = line = 0

    async def run() -> None:
        nonlocal written, skipped, done_line, line
        store = await open_store(settings.store_url, base_dir=data_dir)
        try:
            registrar = BulkRegistrar(HandleService(settings, store), overwrite=overwrite)
            await registrar.load_templates()
            against = None
            if template is not None:
                name = HandleName.parse(template)
                compiled = await registrar.service.templates.load(name)
                if compiled is None:
                    raise ValueInvalid(f"this node holds no template {name}")
                against = TemplateColumns(
                    str(name), {a.name: a.index for a in compiled.template.attributes}
                )
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            shown = console.is_terminal  # piped: no bar, only the summary line
            with Progress(*columns, console=console, disable=not shown) as progress:
                task = progress.add_task(f"loading {file.name}", total=total)
                # The store writes one batch while the next is encoded (write_behind);
                # ``flight`` is the (last line, size) of the batch being written.
                flight: tuple[int, int] | None = None

                def landed(done: tuple[int, int] | None) -> None:
                    nonlocal written, skipped, done_line
                    if done is not None and flight is not None:
                        written, skipped, done_line = (
                            written + done[0],
                            skipped + done[1],
                            flight[0],
                        )
                        progress.advance(task, flight[1])

                rows = []
                try:
                    for line, handle, values in read_numbered_rows(file, against):
                        rows.append(registrar.encode(handle, values))
                        await registrar.refuse_delegated(handle)
                        if len(rows) >= batch:
                            landed(await registrar.write_behind(rows))
                            flight, rows = (line, len(rows)), []
                    if rows:
                        landed(await registrar.write_behind(rows))
                        flight = (line, len(rows))
                except BaseException:
                    # The batch being written lands (or fails) before the error is told.
                    with contextlib.suppress(IinodeError):
                        landed(await registrar.drain())
                    raise
                landed(await registrar.drain())
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except IinodeError as exc:
        message = exc.message if isinstance(exc, HandleError) else str(exc)
        if isinstance(exc, LoadError) and exc.line is not None:
            line = exc.line  # the message names it already
        elif line:
            message = f"{file.name}:{line}: {message}"
        committed = (
            f"committed {written + skipped} rows through line {done_line} "
            f"({written} loaded, {skipped} already there)"
            if done_line
            else "committed nothing"
        )
        fail(f"{escape(message)} ({committed}; stopped at line {line or 1})")
    console.print(f"loaded {written} identifiers, skipped {skipped} that already existed")
