"""``iinode serve --workers 2``: one process runs the broker and periodic work (real processes)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx

from cli.cli_support import (
    auth,
    eventually,
    http_port,
    iinode,
    init,
    serving,
    tune,
)
from iinode.api.lease import LEASE_FILE
from iinode.node.settings import NodeSettings, Role

HEARTBEAT = 0.25


def _children(pid: int) -> list[int]:
    """The uvicorn worker processes of ``pid`` (not multiprocessing's resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    workers = []
    for child in path.read_text().split() if path.exists() else []:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(int(child))
    return workers


def _listeners(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
            found.add(inode)
    return found


def _owners(inodes: set[str], pids: list[int]) -> set[int]:
    owners = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                owners.add(pid)
    return owners


def _heartbeats(top_url: str) -> int:
    r = httpx.get(f"{top_url}/monitoring/view", params={"by": "kind"}, auth=auth("88", "top-pw"))
    assert r.status_code == 200, r.text
    return int(r.json()["counts"].get("heartbeat", 0))


def test_two_workers_run_the_broker_and_heartbeats_once(tmp_path: Path) -> None:
    top, ent = tmp_path / "top", tmp_path / "ent"
    pt, pe = http_port(), http_port()
    top_url, ent_url = f"http://127.0.0.1:{pt}", f"http://127.0.0.1:{pe}"
    init(top, "top", "88", pt, "top-pw")
    init(ent, "enterprise", "88.5", pe, "ent-pw", "--parent", top_url,
         "--report-secret", "ent-report")  # fmt: skip
    tune(ent, heartbeat_interval=HEARTBEAT, notice_interval=HEARTBEAT)
    mqtt_port = NodeSettings.load(ent).embedded_mqtt_port
    assert mqtt_port == pe + 10_000

    with serving(top, pt):
        iinode("prefix", "delegate", "88.5", "--to", ent_url, "--node", top_url,
               "--secret", "top-pw", "--child-secret", "ent-report")  # fmt: skip
        with serving(ent, pe, "--workers", "2") as server:
            workers = eventually(lambda: len(_children(server.pid)) == 2 and _children(server.pid))
            assert workers, "two worker processes expected"
            lease = ent / LEASE_FILE

            def one_broker() -> int | None:
                owners = _owners(_listeners(mqtt_port), _children(server.pid))
                holder = lease.read_text().strip() if lease.exists() else ""
                return owners.pop() if len(owners) == 1 and str(owners) == f"{{{holder}}}" else None

            primary = eventually(one_broker)
            assert primary, "exactly one worker, the lease holder, listens on the MQTT port"
            assert eventually(lambda: _heartbeats(top_url) > 0)

            def both_workers_answer() -> bool:
                seen = set()
                for _ in range(40):  # fresh connections, spread over the workers by the kernel
                    text = httpx.get(f"{ent_url}/metrics").text
                    seen |= {ln for ln in text.splitlines() if ln.startswith("iinode_extensions_")}
                return seen == {"iinode_extensions_primary 1.0", "iinode_extensions_primary 0.0"}

            assert eventually(both_workers_answer), "one primary and one serving-only worker"

            # heartbeats come from one process: about one per interval, not two
            first, started = _heartbeats(top_url), time.monotonic()
            time.sleep(4.0)
            beats = _heartbeats(top_url) - first
            expected = (time.monotonic() - started) / HEARTBEAT
            assert 0.4 * expected <= beats <= 1.4 * expected, (beats, expected)

            # telemetry through the node: every worker serves the same API
            iinode("simulate", "--node", ent_url, "--secret", "ent-pw", "--machines", "2",
                   "--steps", "5")  # fmt: skip

            def history_everywhere() -> bool:
                answers = set()
                for _ in range(12):  # fresh connections spread over the workers
                    r = httpx.get(
                        f"{ent_url}/telemetry/equipment/88.5/M001/history", params={"limit": 5}
                    )
                    answers.add(r.status_code == 200 and bool(r.json()["readings"]))
                return answers == {True}

            assert eventually(history_everywhere), "stored readings not visible from every worker"
            lister = httpx.BasicAuth("300%3A0.NA%2F88.5", "ent-pw")  # LIST_HANDLES
            equipment = httpx.get(f"{ent_url}/telemetry/equipment", auth=lister).json()
            assert {e["id"] for e in equipment} >= {"88.5/M001", "88.5/M002"}

            # the lease holder dies: another process takes the broker and heartbeats over
            assert isinstance(primary, int)
            os.kill(primary, signal.SIGKILL)

            def new_broker() -> int | None:
                found = one_broker()
                return found if found not in (None, primary) else None

            successor = eventually(new_broker, limit=30)
            assert successor, "no process took the broker over"
            before = _heartbeats(top_url)
            assert eventually(lambda: _heartbeats(top_url) > before + 2)
            with socket.create_connection(("127.0.0.1", mqtt_port), timeout=2):
                pass


def test_a_taken_broker_port_fails_with_one_line_naming_the_setting(tmp_path: Path) -> None:
    data, port = tmp_path / "ent", http_port()
    init(data, "enterprise", "88.5", port, "pw")
    settings = NodeSettings.load(data)
    assert settings.mqtt_port is None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", settings.embedded_mqtt_port))
        busy.listen()
        proc = iinode("serve", "--data-dir", str(data), check=False, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{settings.embedded_mqtt_port}" in lines[0]
    assert "mqtt_port" in lines[0]
    assert "IINODE_MQTT_PORT" in lines[0]


def test_the_embedded_broker_port_follows_the_http_port(tmp_path: Path) -> None:
    def port_for(**kw: object) -> int:
        s = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.5", **kw)  # type: ignore[arg-type]
        return s.embedded_mqtt_port

    assert port_for() == 18000
    assert port_for(http_port=8101) == 18101
    assert port_for(http_port=60000) == 50000
    assert port_for(http_port=8101, mqtt_port=1883) == 1883
