"""Every setting, given each way (option, IINODE_* variable, node.toml), takes effect in
a running ``iinode serve``.

Few processes check many settings each: per group of settings that can live in one
node, three nodes start side by side, one per way, and each is probed from outside:
``/api/node``, the HS_SITE it publishes, the addresses it listens on, what its parent
(a real top-level node) sees of its resolutions, what its monitoring parent (a
recording stand-in) receives, which MQTT broker and NATS stream its connector uses.
``test_every_setting_is_probed`` keeps the table and the probes in step.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from cli.cli_support import ENV, IINODE, auth, eventually, free_range, http_port
from iinode.cli.main import app
from iinode.node.settings import FIXED_AT_INIT, SETTINGS, setting_names
from iinode.proto import Message
from native.golden import resolution_request
from support import require_service
from test_settings import option, sample, text, toml_line

pytestmark = pytest.mark.slow
WAYS = ("option", "environment", "node.toml")
TOP_SECRET = "top-pw"
SECRET = "node-pw"


# -- a monitoring parent that records what reaches it -----------------------------------
@dataclass
class Monitor:
    """Accepts report batches (with a valid receipt) and notice pulls; remembers them."""

    port: int = 0
    batches: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)
    pulls: list[tuple[float, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def heartbeats(self, sender: str) -> list[float]:
        return [
            t
            for t, _, _, batch in self.batches
            if batch["sender"] == sender
            for event in batch["events"]
            if event.get("kind") == "heartbeat"
        ]

    def events(self, sender: str) -> list[dict[str, Any]]:
        return [e for _, _, _, b in self.batches if b["sender"] == sender for e in b["events"]]

    def passwords(self, sender: str) -> set[str]:
        return {p for _, user, p, b in self.batches if b["sender"] == sender}

    def pulls_of(self, user: str) -> list[float]:
        return [t for t, u in self.pulls if u == user]


def _credentials(header: str | None) -> tuple[str, str]:
    import base64

    if not header or not header.startswith("Basic "):
        return "", ""
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return unquote(user), password


@contextmanager
def monitor() -> Iterator[Monitor]:
    record = Monitor()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            batch = json.loads(self.rfile.read(int(self.headers["content-length"])))
            user, password = _credentials(self.headers.get("authorization"))
            record.batches.append((time.monotonic(), user, password, batch))
            self._send(
                {"batch": batch["batch"], "accepted": len(batch["events"]), "duplicates": 0,
                 "received_at": time.time(), "clock_skew": 0.0, "skew_alarm": False}
            )  # fmt: skip

        def do_GET(self) -> None:
            user, _ = _credentials(self.headers.get("authorization"))
            record.pulls.append((time.monotonic(), user))
            since = int(parse_qs(urlsplit(self.path).query).get("since", ["0"])[0])
            self._send({"next": since, "notices": []})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()


# -- nodes ---------------------------------------------------------------------------
@dataclass
class Node:
    way: str
    data: Path
    prefix: str
    values: dict[str, Any]
    proc: subprocess.Popen[str] | None = None
    log: IO[str] | None = None

    @property
    def url(self) -> str:
        host = self.values.get("http_host", "127.0.0.1")
        return f"http://{host}:{self.values['http_port']}"


def _given(way: str, values: dict[str, Any], data: Path) -> tuple[list[str], dict[str, str]]:
    """Command-line arguments and environment giving ``values`` the ``way`` asked for."""
    if way == "option":
        return [a for n, v in values.items() for a in option(n, v)], {}
    if way == "environment":
        return [], {SETTINGS[n][0]: text(v) for n, v in values.items()}
    path = data / "node.toml"
    kept = [
        line for line in path.read_text(encoding="utf-8").splitlines()
        if line.partition("=")[0].strip() not in values
    ]  # fmt: skip
    path.write_text("\n".join([*kept, *(toml_line(n, v) for n, v in values.items())]) + "\n")
    return [], {}


def create(nodes: list[Node], fixed: tuple[str, ...]) -> None:
    """``iinode init`` of every node (in process), with the settings ``fixed`` at init
    given each node's way (for node.toml: as options, which init writes there)."""
    for node in nodes:
        way = "option" if node.way == "node.toml" else node.way
        args, env = _given(way, {k: node.values[k] for k in fixed}, node.data)
        in_process("init", "--data-dir", str(node.data), "--admin-secret", SECRET, *args, env=env)


def in_process(*args: str, env: dict[str, str] | None = None) -> None:
    result = CliRunner().invoke(app, list(args), env=env or {})
    assert result.exit_code == 0, (args, result.output, result.exception)


@contextmanager
def serving(nodes: list[Node]) -> Iterator[None]:
    """Start every node (side by side), wait until each answers; stop them afterwards."""
    for node in nodes:
        values = {n: v for n, v in node.values.items() if n not in FIXED_AT_INIT}
        values.pop("store_url", None)  # given at init, so the store holds the node's record
        args, env = _given(node.way, values, node.data)
        node.log = (node.data.parent / f"{node.data.name}.log").open("w")
        node.proc = subprocess.Popen(
            [*IINODE, "serve", "--data-dir", str(node.data), "--native-workers", "1", *args],
            stdout=node.log, stderr=subprocess.STDOUT, text=True, env={**ENV, **env},
        )  # fmt: skip
    try:
        for node in nodes:
            _wait_up(node)
        yield
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGINT)
        for node in nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
            if node.log is not None:
                node.log.close()


def reset(node: Node) -> None:
    """Take back what ``serving`` put in node.toml for the last run."""
    path = node.data / "node.toml"
    kept = [line for line in path.read_text().splitlines()
            if line.partition("=")[0].strip() in (*FIXED_AT_INIT, "store_url")]  # fmt: skip
    path.write_text("\n".join(kept) + "\n")


def _wait_up(node: Node, limit: float = 60.0) -> None:
    assert node.proc is not None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            log = (node.data.parent / f"{node.data.name}.log").read_text()
            raise AssertionError(f"{node.way} node exited {node.proc.returncode}: {log}")
        try:
            if httpx.get(f"{node.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{node.url} did not come up")


def listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def resolutions(top_url: str) -> float:
    text = httpx.get(f"{top_url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("iinode_resolutions_total")
    )


def mqtt_connect(host: str, port: int, user: str = "", password: str = "") -> int:
    """The CONNACK return code an MQTT 3.1.1 CONNECT with these credentials draws."""

    def utf8(s: str) -> bytes:
        return len(s.encode()).to_bytes(2, "big") + s.encode()

    flags = 0x02 | (0x80 if user else 0) | (0x40 if password else 0)
    body = utf8("MQTT") + bytes([4, flags]) + (30).to_bytes(2, "big") + utf8("settings-probe")
    body += (utf8(user) if user else b"") + (utf8(password) if password else b"")
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        reply = s.recv(4)
    return reply[3] if len(reply) == 4 else -1


# -- the top-level parent --------------------------------------------------------------
@dataclass
class Top:
    url: str
    data: Path
    handle_port: int


@pytest.fixture(scope="module")
def top(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Top]:
    data = tmp_path_factory.mktemp("top") / "top"
    port, native = http_port(), free_range(1)
    in_process("init", "--role", "top", "--prefix", "88", "--data-dir", str(data), "--admin-secret",
               TOP_SECRET, "--http-port", str(port), "--handle-port", str(native))  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*IINODE, "serve", "--data-dir", str(data), "--native-workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    try:
        assert eventually(lambda: _healthy(url), limit=60), "top node did not come up"
        for handle in ("88/A", "88/B"):
            r = httpx.put(
                f"{url}/api/handles/{handle}",
                json={"values": [{"index": 1, "type": "URL",
                                  "data": {"format": "string", "value": f"http://x/{handle}"}}]},
                auth=auth("88", TOP_SECRET),
            )  # fmt: skip
            assert r.status_code in (200, 201), r.text
        in_process("prefix", "delegate", "88.99", "--to", "http://127.0.0.1:9",
                   "--handle-port", "9", "--node", url, "--secret", TOP_SECRET)  # fmt: skip
        yield Top(url, data, native)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


# -- probes: setting -> check(node) ------------------------------------------------------
PROBED: dict[str, str] = {}  # setting -> the test that probes it (filled below)


def probes(test: str, *names: str) -> None:
    for name in names:
        PROBED[name] = test


def test_every_setting_is_probed() -> None:
    missing = [name for name in setting_names() if name not in PROBED]
    assert not missing, f"no effect test for {missing}: add a probe in test_settings_effect.py"


probes(
    "node_identity_ports_cache_and_monitoring",
    "role", "prefix", "store_url", "http_host", "http_port", "handle_port", "public_host",
    "parent_url", "name", "cache_size", "negative_ttl", "max_referrals", "mqtt_port",
    "mqtt_host", "mqtt_password", "monitoring_parent_url", "report_secret",
    "heartbeat_interval", "notice_interval", "province", "industry", "message_lifetime",
)  # fmt: skip


def test_node_identity_ports_cache_and_monitoring(tmp_path: Path, top: Top) -> None:
    nodes: list[Node] = []
    with ExitStack() as stack:
        mon = stack.enter_context(monitor())
        for n, way in enumerate(WAYS):
            base = free_range(3)
            values: dict[str, Any] = {
                "role": "enterprise", "prefix": f"88.{5 + n}",
                "store_url": "sqlite:other.sqlite3",
                "http_host": "127.0.0.2", "http_port": base, "handle_port": base + 1,
                "public_host": "127.0.0.3", "parent_url": top.url, "name": f"shop {way}",
                "cache_size": 1, "negative_ttl": 1, "max_referrals": 0,
                "mqtt_host": "127.0.0.4", "mqtt_port": base + 2, "mqtt_password": "broker-pw",
                "monitoring_parent_url": mon.url, "report_secret": f"report-{way}",
                "heartbeat_interval": 0.3, "notice_interval": 0.4,
                "province": "JS", "industry": "automobiles",
                "message_lifetime": sample("message_lifetime"),
            }  # fmt: skip
            nodes.append(Node(way, tmp_path / way.replace(".", "-"), values["prefix"], values))
        create(nodes, ("role", "prefix", "store_url"))
        stack.enter_context(serving(nodes))
        for node in nodes:
            check_identity_and_ports(node)
        for node in nodes:  # one at a time: the top's counter tells their resolutions apart
            check_resolution_cache(node, top)
        for node in nodes:
            check_monitoring(node, mon)


def check_identity_and_ports(node: Node) -> None:
    v, way = node.values, node.way
    info = httpx.get(f"{node.url}/api/node").json()
    assert info["role"] == "enterprise", way
    assert info["prefix"] == node.prefix, way
    assert info["name"] == v["name"], way
    assert info["parent"] == v["parent_url"], way
    assert info["handlePort"] == v["handle_port"], way
    # http_host: the API listens on 127.0.0.2 only
    assert not listening("127.0.0.1", v["http_port"]), way
    # store_url: the node's record is in other.sqlite3, no default store was made
    assert (node.data / "other.sqlite3").exists(), way
    assert not (node.data / "handles.sqlite3").exists(), way
    assert info["handles"] >= 1, way
    # public_host and handle_port: what the prefix record's HS_SITE advertises
    record = httpx.get(f"{node.url}/api/handles/0.NA/{node.prefix}").json()
    site = next(x for x in record["values"] if x["type"] == "HS_SITE")
    servers = json.dumps(site["data"])
    assert "127.0.0.3" in servers, (way, servers)
    assert str(v["handle_port"]) in servers, (way, servers)
    assert str(v["http_port"]) in servers, (way, servers)
    # handle_port and message_lifetime: a native answer on that port, expiring as set
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5.0)
        s.sendto(resolution_request(f"{node.prefix}/none", 7), ("127.0.0.2", v["handle_port"]))
        answer = Message.from_wire(s.recv(65_535))
    assert abs(answer.expiration - time.time() - v["message_lifetime"]) < 30, way
    # mqtt_host, mqtt_port, mqtt_password: the embedded broker's address and its password
    assert listening("127.0.0.4", v["mqtt_port"]), way
    assert not listening("127.0.0.1", v["http_port"] + 10_000), way
    assert mqtt_connect("127.0.0.4", v["mqtt_port"]) != 0, way
    assert mqtt_connect("127.0.0.4", v["mqtt_port"], "probe", "wrong") != 0, way
    assert mqtt_connect("127.0.0.4", v["mqtt_port"], "probe", "broker-pw") == 0, way


def check_resolution_cache(node: Node, top: Top) -> None:
    """cache_size 1, negative_ttl 1, max_referrals 0, seen from the parent's counter."""
    way = node.way

    def ask(handle: str) -> httpx.Response:
        return httpx.get(f"{node.url}/api/handles/{handle}", params={"recursive": "true"})

    before = resolutions(top.url)
    for handle in ("88/A", "88/B", "88/A"):  # one entry: A is gone when B comes
        assert ask(handle).status_code == 200, (way, handle)
    assert resolutions(top.url) - before == 3, way
    before = resolutions(top.url)
    assert ask("88/none").status_code == 404
    assert ask("88/none").status_code == 404
    assert resolutions(top.url) - before == 1, way  # a not-found answer is kept ...
    time.sleep(1.2)
    assert ask("88/none").status_code == 404
    assert resolutions(top.url) - before == 2, way  # ... for one second
    # 88.99 is delegated away at the top: its answer is a referral, one more than allowed
    r = ask("88.99/x")
    assert "more than 0 referrals" in r.text, (way, r.text)


def check_monitoring(node: Node, mon: Monitor) -> None:
    v, way = node.values, node.way
    assert eventually(lambda: len(mon.heartbeats(node.prefix)) >= 4), way  # 0.3 s, not 30 s
    assert eventually(lambda: len(mon.pulls_of(f"300:0.NA/{node.prefix}")) >= 3), way  # 0.4 s
    assert mon.passwords(node.prefix) == {v["report_secret"]}, way
    labelled = [e for e in mon.events(node.prefix) if e.get("kind") == "heartbeat"]
    assert all(e.get("province") == "JS" for e in labelled), way
    assert all(e.get("industry") == "automobiles" for e in labelled), way


probes(
    "external_broker_bus_and_shared_cache_then_telemetry_off",
    "mqtt_url", "bus_url", "telemetry_dir", "cache_url", "telemetry",
)  # fmt: skip


def test_external_broker_bus_and_shared_cache_then_telemetry_off(tmp_path: Path, top: Top) -> None:
    require_service("mosquitto")
    require_service("nats")
    require_service("redis")
    import paho.mqtt.client as mqtt
    import redis

    run = random.randrange(10_000, 99_999)
    nodes = []
    for n, way in enumerate(WAYS):
        prefix = f"88.{run}{n}"
        values: dict[str, Any] = {
            "role": "enterprise", "prefix": prefix, "http_port": http_port(),
            "parent_url": top.url, "mqtt_url": "mqtt://127.0.0.1:1883",
            "bus_url": "nats://127.0.0.1:4222", "telemetry_dir": f"points-{n}",
            "cache_url": "redis://127.0.0.1:6379/0",
        }  # fmt: skip
        nodes.append(Node(way, tmp_path / way.replace(".", "-"), prefix, values))
    create(nodes, ("role", "prefix"))

    states: dict[str, dict[str, Any]] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, m: states.__setitem__(m.topic, json.loads(m.payload))
    client.connect("127.0.0.1", 1883)
    client.subscribe("spBv1.0/STATE/#")
    client.loop_start()
    started = time.time()
    cache = redis.Redis()
    try:
        with serving(nodes):
            for node in nodes:
                v, way, label = node.values, node.way, node.prefix.replace(".", "_")
                # mqtt_url: the connector, as Sparkplug host, says it is online at Mosquitto
                topic = f"spBv1.0/STATE/iinode-{label}"

                def online(topic: str = topic) -> bool:
                    state = states.get(topic, {})
                    return bool(state.get("online")) and state["timestamp"] / 1000 >= started - 5

                assert eventually(online), (way, states)
                assert not listening("127.0.0.1", v["http_port"] + 10_000), way
                # bus_url: the node's JetStream stream exists at NATS
                assert stream_exists(f"IINODE_TELEMETRY_{label}"), way
                # telemetry_dir: the store lives there
                assert eventually(lambda d=node.data / v["telemetry_dir"]: d.is_dir()), way
                assert not (node.data / "telemetry").exists(), way
                # cache_url: a resolution through the parent lands in Redis, in the
                # node's namespace
                r = httpx.get(f"{node.url}/api/handles/88/A", params={"recursive": "true"})
                assert r.status_code == 200, (way, r.text)
                assert cache.keys(f"iinode:{node.prefix}:a:*"), way
        # The same nodes again with telemetry off (and nothing else given): no pipeline
        for node in nodes:
            reset(node)
            node.values = {"http_port": node.values["http_port"], "telemetry": False}
        with serving(nodes):
            for node in nodes:
                port, way = node.values["http_port"], node.way
                assert not listening("127.0.0.1", port + 10_000), way  # no embedded broker
                r = httpx.get(f"{node.url}/telemetry/equipment/{node.prefix}/M1/live")
                assert r.status_code == 404, (way, r.status_code)
                metrics = httpx.get(f"{node.url}/metrics").text
                assert 'connector="mqtt"' not in metrics, way
    finally:
        client.loop_stop()
        client.disconnect()
        for node in nodes:
            for key in cache.scan_iter(f"iinode:{node.prefix}:*"):
                cache.delete(key)
            delete_stream(f"IINODE_TELEMETRY_{node.prefix.replace('.', '_')}")
        cache.close()


def _jetstream(action: Callable[[Any], Any]) -> Any:
    import asyncio

    import nats

    async def run() -> Any:
        nc = await nats.connect("nats://127.0.0.1:4222")
        try:
            return await action(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


def stream_exists(name: str) -> bool:
    from nats.js.errors import NotFoundError

    async def info(js: Any) -> bool:
        try:
            await js.stream_info(name)
        except NotFoundError:
            return False
        return True

    return bool(eventually(lambda: _jetstream(info)))


def delete_stream(name: str) -> None:
    from nats.js.errors import NotFoundError

    async def delete(js: Any) -> None:
        with suppress(NotFoundError):
            await js.delete_stream(name)

    _jetstream(delete)


probes("recursive_node_asks_its_parent_natively", "parent_handle_port")


def test_recursive_node_asks_its_parent_natively(tmp_path: Path, top: Top) -> None:
    nodes = []
    for way in WAYS:
        base = free_range(2)
        values: dict[str, Any] = {
            "role": "recursive", "parent_url": top.url, "http_port": base,
            "handle_port": base + 1, "parent_handle_port": top.handle_port,
        }  # fmt: skip
        nodes.append(Node(way, tmp_path / way.replace(".", "-"), "", values))
    create(nodes, ("role", "parent_url"))
    with serving(nodes):
        for n, node in enumerate(nodes):
            before = resolutions(top.url)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(10.0)
                s.sendto(
                    resolution_request("88/A", 11 + n), ("127.0.0.1", node.values["handle_port"])
                )
                answer = Message.from_wire(s.recv(65_535))
            assert answer.response_code == 1, (node.way, answer)
            # resolved over the parent's native port: the parent's HTTP API was not asked
            assert resolutions(top.url) == before, node.way


def test_http_workers_run_with_the_resolved_settings(tmp_path: Path) -> None:
    """``serve --workers 2``: every worker has what the command line and the environment
    gave, so none rewrites the HS_SITE without the native port."""
    base = free_range(2)
    values: dict[str, Any] = {"role": "secondary", "prefix": "88.30", "http_port": base}
    node = Node("environment", tmp_path / "node", "88.30", values)
    create([node], ("role", "prefix"))
    log = (tmp_path / "node.log").open("w")
    proc = subprocess.Popen(
        [*IINODE, "serve", "--data-dir", str(node.data), "--workers", "2",
         "--native-workers", "1", "--handle-port", str(base + 1)],
        stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**ENV, "IINODE_HTTP_PORT": str(base), "IINODE_NAME": "two workers"},
    )  # fmt: skip
    node.proc = proc
    try:
        _wait_up(node)
        seen: set[tuple[str, int, str, str]] = set()

        def both_workers_seen() -> bool:
            for _ in range(20):  # fresh connections, spread over both workers by the kernel
                with httpx.Client() as client:  # one connection: one worker answers both
                    metrics = client.get(f"{node.url}/metrics").text
                    info = client.get(f"{node.url}/api/node").json()
                primary = next(
                    ln for ln in metrics.splitlines() if ln.startswith("iinode_extensions_primary")
                )
                seen.add((primary, info["handlePort"], info["name"], info["httpUrl"]))
            return len({primary for primary, *_ in seen}) == 2

        assert eventually(both_workers_seen), seen
        expected = (base + 1, "two workers", f"http://127.0.0.1:{base}")
        assert {tuple(rest) for _, *rest in seen} == {expected}, seen
        record = httpx.get(f"{node.url}/api/handles/0.NA/88.30").json()
        site = json.dumps(next(x for x in record["values"] if x["type"] == "HS_SITE")["data"])
        assert str(base + 1) in site, site
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
