"""``iinode demo`` in the foreground: start the network, show it, stop on a signal.

``run_demo`` runs a ``DemoNetwork`` until its time is up or a stop signal arrives,
after resolving two examples through the hierarchy and printing how to look around
(``howto``), or, headless, one JSON line (``summary``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from iinode.demo.network import DemoNetwork, RunningNode, manual_ack_node
from iinode.demo.topology import (
    DEFAULT_ENTERPRISES,
    DEFAULT_MACHINES,
    DEMO_GTIN,
    FIELD_ENTERPRISE,
    NOTICE_ID,
    RESOLUTIONS_PER_SECOND,
    SECRET,
    machine_names,
)
from iinode.identifiers import HandleName
from iinode.node.service import site_from_url
from iinode.resolution import HttpResolver
from iinode.resolution.native_client import NativeResolver


async def run_demo(
    console: Console,
    *,
    base_port: int = 8100,
    duration: float | None = None,
    data_dir: Path | None = None,
    products: int = 2000,
    enterprises: int = DEFAULT_ENTERPRISES,
    machines: int = DEFAULT_MACHINES,
    resolutions_per_second: float = RESOLUTIONS_PER_SECOND,
    headless: bool = False,
) -> None:
    """Run the network until ``duration`` is over or SIGTERM, SIGINT or SIGHUP arrives.

    A signal during start-up cancels it; either way the network stops cleanly and
    its temporary directory is removed.  ``headless`` (for scripts) shows no
    progress bars, table or hints: one JSON line describes the network once it is up.
    """
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if not stop.is_set() and main is not None and not booted:
            main.cancel()  # interrupt the start-up; the network cleans up after itself
        stop.set()

    booted = False
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
            continue  # started under nohup
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    try:
        if data_dir is None:
            console.print("a fresh network in a temporary directory, removed when the demo stops")
        else:
            console.print(
                f"node data in {data_dir}: kept, and resumed by a later run there",
                soft_wrap=True, highlight=False,
            )  # fmt: skip
        network = DemoNetwork(
            console, base_port, data_dir, products, enterprises=enterprises, machines=machines,
            resolutions_per_second=resolutions_per_second, quiet=headless,
        )  # fmt: skip
        async with network:
            if headless:
                console.print(json.dumps(summary(network, data_dir)), soft_wrap=True,
                              highlight=False, markup=False)  # fmt: skip
            else:
                await _resolve_examples(network.nodes, console)
                _print_howto(network.nodes, console)
            booted = True
            if duration is None:
                console.print("serving; press Ctrl-C to stop")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
    except asyncio.CancelledError:
        if not received:
            raise
        if main is not None:
            main.uncancel()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    if received:
        console.print(f"demo stopped ({signal.Signals(received[0]).name})")


async def _resolve_examples(nodes: dict[str, RunningNode], console: Console) -> None:
    """One walk over REST and one over the native protocol, both from the top."""
    top = nodes["88"]
    http = HttpResolver([site_from_url(top.url)])
    native = NativeResolver([site_from_url(top.url, top.handle_port)])
    walks: list[tuple[str, str, HttpResolver | NativeResolver]] = [
        ("88.118.8/PRESS-01", "HTTP", http),
        (_first_machine(manual_ack_node(nodes)), "native", native),
    ]
    try:
        for handle, how, resolver in walks:
            started = time.perf_counter()
            resolved = await resolver.resolve(HandleName.parse(handle))
            ms = (time.perf_counter() - started) * 1000
            path = " -> ".join(f"{h.server} ({h.code.to_text()})" for h in resolved.chain)
            url = next((v.data.to_json()["value"] for v in resolved.values if v.type == "URL"), "")
            console.print(f"resolved {handle} over {how} in {ms:.1f} ms: {url}")
            console.print(f"  path: {path}", highlight=False)
    finally:
        await http.aclose()
        await native.aclose()


def _first_machine(node: RunningNode) -> str:
    return f"{node.spec.prefix}/{machine_names(node.spec.industry, 1)[0]}"


def howto(nodes: dict[str, RunningNode]) -> list[str]:
    """The commands to try against the running network."""
    top = nodes["88"]
    ent = nodes["88.118.8"]
    pharma = manual_ack_node(nodes).url
    other = nodes.get("88.120.3") or manual_ack_node(nodes)
    auth = f"--secret {SECRET}"
    return [
        f"iinode resolve 88.118.8/PRESS-01 --node {top.url}",
        f"iinode resolve --native 88.118.8/PRESS-01 --server 127.0.0.1:{top.handle_port}",
        f"curl -L {top.url}/api/handles/{_first_machine(other)}",
        f"iinode equipment list --node {ent.url} {auth}",
        f"iinode telemetry query 88.118.8/PRESS-01 --node {ent.url} --tag temperature"
        " --interval 600",
        f"iinode monitor status --node {top.url} {auth}",
        f"iinode monitor notices --node {pharma} {auth}",
        f"iinode monitor ack {NOTICE_ID} --node {pharma} {auth}",
        f"iinode monitor notices --node {top.url} {auth}   (who has acknowledged)",
        f"iinode simulate --node {ent.url} {auth} --steps 60",
        f"curl {ent.url}/metrics",
        f"curl -i {ent.url}/01/{DEMO_GTIN}   (GS1 Digital Link)",
    ]


def _print_howto(nodes: dict[str, RunningNode], console: Console) -> None:
    table = Table("node", "role", "prefix", "URL", "native", "MQTT", title="the network")
    for node in nodes.values():
        mqtt = ""
        if node.node.telemetry is not None:
            mqtt = "{}:{}".format(*node.node.telemetry.mqtt_address)
        table.add_row(
            node.spec.name, node.spec.role.value, node.spec.prefix, node.url,
            f"127.0.0.1:{node.handle_port}", mqtt,
        )  # fmt: skip
    console.print(table)
    console.print("try:")
    for line in howto(nodes):
        console.print(f"  {line}", highlight=False, soft_wrap=True)  # copied whole, not cut
    console.print(f"  admin identity of each node: 300:0.NA/<prefix>, secret {SECRET!r}")
    top = nodes["88"].url
    console.print(f"console: {top}/  (national view; every node serves its own console)")
    ent = nodes[FIELD_ENTERPRISE].url
    lookup = f"{ent}/console/#/lookup?id=/01/{DEMO_GTIN}"
    console.print(f"  a plant: {ent}/ ; a GS1 Digital Link: {lookup}", highlight=False,
                  soft_wrap=True)  # fmt: skip
    console.print(f"API docs: {top}/docs  (served offline by the node)", highlight=False)


def summary(network: DemoNetwork, data_dir: Path | None) -> dict[str, object]:
    """What ``iinode demo --headless`` prints as one JSON line once the network is up."""
    nodes = []
    for node in network.nodes.values():
        telemetry = node.node.telemetry
        nodes.append({
            "prefix": node.spec.prefix, "role": node.spec.role.value, "name": node.spec.name,
            "parent": node.spec.parent, "url": node.url, "console": f"{node.url}/",
            "handle_port": node.handle_port,
            "mqtt": "{}:{}".format(*telemetry.mqtt_address) if telemetry is not None else None,
        })  # fmt: skip
    return {
        "console": f"{network.nodes['88'].url}/", "identity": "300:0.NA/<prefix>",
        "secret": SECRET, "notice": NOTICE_ID, "nodes": nodes,
        "data_dir": str(data_dir) if data_dir is not None else None,
    }  # fmt: skip
