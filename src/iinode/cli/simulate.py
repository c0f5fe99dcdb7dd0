"""``iinode simulate``: a simulated factory publishing Sparkplug B to a node's broker."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from iinode.cli.common import Admin, Secret, admin_client, console, fail, run
from iinode.client import NodeClient
from iinode.telemetry.simulator import Factory, ShiftCalendar

app = typer.Typer(help="Run the factory simulator against an MQTT broker.")


@app.callback(invoke_without_command=True)
def simulate(
    node: Annotated[
        str | None, typer.Option("--node", help="node URL: its broker, prefix and registry")
    ] = None,
    broker: Annotated[str | None, typer.Option(help="HOST:PORT of another MQTT broker")] = None,
    prefix: Annotated[
        str | None, typer.Option(help="enterprise prefix (default: the node's)")
    ] = None,
    machines: Annotated[int, typer.Option(help="machines in the plant")] = 4,
    steps: Annotated[int, typer.Option(help="simulation steps to publish")] = 60,
    dt: Annotated[float, typer.Option(help="simulated seconds per step")] = 60.0,
    pace: Annotated[float, typer.Option(help="real seconds between steps")] = 0.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    register: Annotated[
        bool, typer.Option(help="register the machines at --node first (needs --secret)")
    ] = True,
    mqtt_user: Annotated[
        str, typer.Option("--mqtt-user", help="user name to give the MQTT broker")
    ] = "iinode-sim",
    mqtt_password: Annotated[
        str | None,
        typer.Option(
            "--mqtt-password",
            envvar="IINODE_MQTT_PASSWORD",
            help="password to give the MQTT broker (the node's mqtt_password)",
        ),
    ] = None,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Publish a simulated plant (Sparkplug B, group = prefix) with a progress bar."""
    from iinode.connectivity.sim_sparkplug import SparkplugSimulator

    # A lost connection ends the command with one error line; no log lines besides.
    logging.getLogger("iinode.connectivity").setLevel(logging.ERROR)
    logging.getLogger("mqtt").setLevel(logging.CRITICAL)  # aiomqtt's client log: paho's errors
    if node is None and (broker is None or prefix is None):
        fail("give --node, or --broker and --prefix")
    if steps < 1 or machines < 1 or dt <= 0:
        fail("--steps, --machines and --dt must be positive")

    async def go() -> int:
        host, port, group = "", 0, prefix
        if node is not None:
            async with NodeClient(node) as c:
                info = await c.node_info()
                mqtt = (await c.call_json("GET", "/telemetry/info"))["mqtt"]
            host, port = str(mqtt["host"]), int(mqtt["port"])
            group = group or info["prefix"]
        if broker is not None:
            h, _, p = broker.rpartition(":")
            if not h or not p.isdigit():
                fail(f"--broker {broker!r} must be HOST:PORT")
            host, port = h, int(p)
        assert group is not None
        start = datetime.now(UTC) - timedelta(seconds=steps * dt)
        factory = Factory.demo(group, machines, seed)
        factory = Factory(group, factory.specs, seed, start=start, calendar=ShiftCalendar())
        if node is not None and register:
            async with await admin_client(node, secret, admin) as c:
                for item in factory.equipment("sparkplug", f"{group}/sim"):
                    await c.put_equipment(item.to_json())
        sent = 0
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[points]} points"))  # fmt: skip
        async with SparkplugSimulator(
            factory,
            host,
            port,
            node_id=f"sim{seed}",
            username=mqtt_user or None,
            password=mqtt_password or None,
        ) as sim:
            with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
                task = progress.add_task(f"{group} -> {host}:{port}", total=steps, points=0)
                for _ in range(steps):
                    sent += await sim.step(dt)
                    progress.update(task, advance=1, points=sent)
                    if pace:
                        await asyncio.sleep(pace)
        return sent

    sent = run(go())
    console.print(f"published {sent} changed values from {machines} machines")
