"""``iinode alarm …`` against an alarm API served on a real port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from cli.cli_support import free_range
from iinode.analytics.alarms import AlarmEngine, AlarmStore
from iinode.api.alarms import AlarmApp, alarm_router
from iinode.cli.main import app as cli
from iinode.telemetry.model import Reading

M1 = "88.118.8/M001"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, AlarmEngine]]:
    engine = AlarmEngine(AlarmStore(tmp_path / "alarms.sqlite3"))
    app = FastAPI()
    app.include_router(alarm_router(AlarmApp(engine)))
    port = free_range(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", engine
    server.should_exit = True
    thread.join(10)
    engine.store.close()


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "220", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_rule_alarm_ack_history(served: tuple[str, AlarmEngine]) -> None:
    url, engine = served
    admin = ("--secret", "s", "--admin", "300:0.NA/88.118.8")
    out = invoke("alarm", "rule", "set", "vib", M1, "tag", "vibration", "high", "7.1",
                 "--deadband", "0.5", "--severity", "high", "--node", url, *admin)  # fmt: skip
    assert "rule vib set" in out
    assert "vibration" in invoke("alarm", "rule", "list", "--node", url)
    engine.observe([Reading(M1, "vibration", 1_000_000, 9.5)])
    out = invoke("alarm", "list", "--node", url)
    assert "active" in out
    assert "9.5" in out
    (alarm,) = engine.alarms()
    assert "acknowledged" in invoke("alarm", "ack", alarm.id, "--node", url, *admin)
    out = invoke("alarm", "history", "--node", url, "--equipment", M1)
    assert "raised" in out
    assert "acknowledged" in out
    assert "deleted" in invoke("alarm", "rule", "delete", "vib", "--node", url, *admin)
    bad = CliRunner().invoke(cli, ["alarm", "rule", "delete", "vib", "--node", url, *admin])
    assert bad.exit_code == 1
