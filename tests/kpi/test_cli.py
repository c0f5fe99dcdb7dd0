"""``iinode kpi show|live|report`` against a KPI API served on a real port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from cli.cli_support import free_range
from iinode.analytics.projects import ProjectStore
from iinode.api.kpi import KpiApp, kpi_router
from iinode.cli.main import app as cli
from iinode.kpi.periods import to_us
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.simulator import Factory
from iinode.telemetry.store import ParquetStore

ENT = "88.118.8"
MONDAY = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    before = Factory.demo(ENT, 2, seed=8)
    after = Factory.demo(ENT, 2, seed=8)
    after.specs = [replace(s, scrap_rate=0.004) for s in after.specs]
    after.__post_init__()
    after.start = MONDAY + timedelta(days=1)
    store = ParquetStore(tmp_path_factory.mktemp("kpi-cli"))
    for factory in (before, after):
        store.append([r for batch in factory.run(16 * 3600, 60.0) for r in batch])
    app = FastAPI()
    now = to_us(MONDAY + timedelta(hours=10))
    projects = ProjectStore(tmp_path_factory.mktemp("kpi-projects") / "projects.sqlite3")
    app.include_router(kpi_router(KpiApp(MemoryRegistry(before.equipment()), store,
                                         clock=lambda: now, development=projects.events,
                                         projects=projects)))  # fmt: skip
    port = free_range(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "220", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_show_per_shift(node_url: str) -> None:
    out = invoke("kpi", "show", "plant", ENT, "--node", node_url, "--by", "shift",
                 "--start", "2026-01-05T06:00:00Z", "--end", "2026-01-05T22:00:00Z")  # fmt: skip
    assert "plant 88.118.8" in out
    rows = [line for line in out.splitlines() if line.lstrip("\u2502 ").startswith("2026-01-05/")]
    assert len(rows) == 2
    assert "%" in rows[0]
    assert "yes" in rows[1]  # the afternoon shift is complete


def test_show_one_machine_and_the_live_shift(node_url: str) -> None:
    out = invoke("kpi", "show", "equipment", f"{ENT}/M001", "--node", node_url,
                 "--start", "2026-01-05T06:00:00Z", "--end", "2026-01-05T14:00:00Z")  # fmt: skip
    assert "equipment 88.118.8/M001" in out
    out = invoke("kpi", "live", "line", f"{ENT}/LINE-1", "--node", node_url)
    assert "line 88.118.8/LINE-1 (store)" in out
    assert "2026-01-05/14:00" in out  # the shift running at the node's clock, 16:00


def test_report_states_changes_the_industry_way(node_url: str) -> None:
    out = invoke("kpi", "report", "plant", ENT, "--node", node_url,
                 "--before", "2026-01-05T06:00:00Z/2026-01-05T22:00:00Z",
                 "--after", "2026-01-06T06:00:00Z/2026-01-06T22:00:00Z",
                 "--energy-per-kwh", "0.8", "--labour-per-hour", "30")  # fmt: skip
    assert "before/after" in out
    defect = next(line for line in out.splitlines() if line.startswith("defect rate \u2212"))
    assert float(defect.split("\u2212")[1].rstrip("%")) > 30


def test_errors_are_one_line(node_url: str) -> None:
    result = CliRunner().invoke(cli, ["kpi", "report", "plant", ENT, "--node", node_url,
                                      "--before", "2026-01-05", "--after", "x/y"])  # fmt: skip
    assert result.exit_code == 1
    assert "--before is START/END" in result.output
    result = CliRunner().invoke(cli, ["kpi", "show", "line", "LINE-1", "--node", node_url])
    assert result.exit_code == 1


def test_project_events_feed_the_development_cycle(node_url: str) -> None:
    admin = ("--secret", "s", "--admin", f"300:0.NA/{ENT}")
    out = invoke("project", "event", "add", f"{ENT}/PRJ-1", "project_start", "--node", node_url,
                 "--time", "2025-10-01T00:00:00Z", *admin)  # fmt: skip
    assert f"{ENT}/PRJ-1" in out
    invoke("project", "event", "add", f"{ENT}/PRJ-1", "design_freeze", "--node", node_url,
           "--time", "2025-11-01T00:00:00Z", *admin)  # fmt: skip
    out = invoke("project", "event", "add", f"{ENT}/PRJ-1", "first_good_lot", "--node",
                 node_url, "--time", "2026-01-06T08:00:00Z", *admin)  # fmt: skip
    assert "97.3" in out  # 2025-10-01 to 2026-01-06 08:00 is 97.33 days
    out = invoke("project", "list", "--node", node_url)
    assert "design_freeze" in out
    # the first good lot falls in the "after" period: its cycle is the metric there
    out = invoke("kpi", "report", "plant", ENT, "--node", node_url,
                 "--before", "2026-01-05T06:00:00Z/2026-01-05T22:00:00Z",
                 "--after", "2026-01-06T06:00:00Z/2026-01-06T22:00:00Z")  # fmt: skip
    line = next(x for x in out.splitlines() if x.lstrip("\u2502 ").startswith("development"))
    assert "8,409,600" in line  # 97.33 days in seconds, after; n/a before
    bad = CliRunner().invoke(cli, ["project", "event", "add", "P 1", "project_start", "--node",
                                   node_url, *admin])  # fmt: skip
    assert bad.exit_code != 0


def test_html_report_renders_offline_with_the_figures(node_url: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    out = invoke("kpi", "report", "plant", ENT, "--node", node_url,
                 "--before", "2026-01-05T06:00:00Z/2026-01-05T22:00:00Z",
                 "--after", "2026-01-06T06:00:00Z/2026-01-06T22:00:00Z",
                 "--html", str(page), "--by", "shift")  # fmt: skip
    assert "report written" in out
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<svg") == 2  # the change chart and the KPI chart
    statement = next(line for line in out.splitlines() if line.startswith("defect rate \u2212"))
    assert statement in text  # the same figure as the table
    assert "2026-01-06/14:00" in text  # the after side's shifts are on the chart
    assert "<script" not in text
    assert 'src="http' not in text
    assert 'href="http' not in text
    # the node serves the same page
    query = {
        "before_start": "2026-01-05T06:00:00Z",
        "before_end": "2026-01-05T22:00:00Z",
        "after_start": "2026-01-06T06:00:00Z",
        "after_end": "2026-01-06T22:00:00Z",
    }
    response = httpx.get(f"{node_url}/kpi/plants/{ENT}/report.html", params=query, timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert statement in response.text
    assert response.text.count("<svg") == 2
