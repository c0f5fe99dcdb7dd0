"""The ``iinode`` command: parses arguments, builds settings, calls the library."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import iinode
from iinode.cli.alarm import app as alarm_app
from iinode.cli.common import configure_logging, console, err, node_settings, setting_options
from iinode.cli.equipment import app as equipment_app
from iinode.cli.gs1 import app as gs1_app
from iinode.cli.keys import app as keys_app
from iinode.cli.kpi import app as kpi_app
from iinode.cli.monitor import app as monitor_app
from iinode.cli.project import app as project_app
from iinode.cli.search import search as search_command
from iinode.cli.settings_cmd import show_settings
from iinode.cli.simulate import app as simulate_app
from iinode.cli.telemetry import app as telemetry_app
from iinode.cli.template import app as template_app
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
from iinode.node.settings import FIXED_AT_INIT, NODE_FILE

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="iinode: an Industrial Internet node."
)
prefix_app = typer.Typer(no_args_is_help=True, help="Prefix delegation.")
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


DataDir = Annotated[
    Path, typer.Option("--data-dir", help="the node's data directory", envvar="IINODE_DATA_DIR")
]
Secret = Annotated[
    str | None, typer.Option("--secret", help="admin secret", envvar="IINODE_ADMIN_SECRET")
]


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
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


@app.command("bulk-load")
def bulk_load(
    file: Annotated[Path, typer.Argument(help=".csv or .jsonl file", exists=True, dir_okay=False)],
    data_dir: DataDir,
    overwrite: Annotated[bool, typer.Option(help="replace existing handles")] = False,
    batch: Annotated[int, typer.Option(help="rows per transaction")] = 20_000,
) -> None:
    """Load many identifiers straight into this node's store, with a progress bar."""
    from rich.markup import escape

    from iinode.node.bulk import BulkRegistrar
    from iinode.node.loader import LoadError, count_lines, read_numbered_rows
    from iinode.node.service import HandleService
    from iinode.storage import open_store

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
                    for line, handle, values in read_numbered_rows(file):
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


@app.command()
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
