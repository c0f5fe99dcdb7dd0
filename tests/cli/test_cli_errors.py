"""Errors name their real cause in one line, without a traceback (real processes)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli.cli_support import free_range, http_port, iinode, init
from iinode.demo.topology import ports_needed


def one_error_line(*args: str) -> str:
    proc = iinode(*args, check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def node(tmp_path: Path) -> Path:
    data = tmp_path / "ent"
    init(data, "enterprise", "88.118.8", http_port(), "pw", "--no-telemetry")
    return data


@pytest.mark.parametrize(
    ("rows", "line", "cause"),
    [
        # a quote opened and never closed swallows the rest of the file
        ('88.118.8/A,http://a.example/\n88.118.8/B,"http://b.example/\n88.118.8/C,x\n', 3,
         "not valid CSV: a quote opened in this row is never closed"),
        # text after a closing quote
        ('88.118.8/A,"http://a.example/"x\n', 2, "not valid CSV: ',' expected after '\"'"),
    ],
)  # fmt: skip
def test_bad_csv_quote_is_a_csv_error_at_its_line(
    node: Path, tmp_path: Path, rows: str, line: int, cause: str
) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("handle,URL\n" + rows)
    message = one_error_line("bulk-load", str(path), "--data-dir", str(node))
    assert message.startswith(f"error: ids.csv:{line}: {cause} ("), message
    assert "committed nothing" in message
    assert "URL" not in message  # not blamed on the value the quote swallowed


def test_http_port_in_use_is_named_not_the_mqtt_one(tmp_path: Path) -> None:
    data, port = tmp_path / "ent", http_port()  # port + 10000 (the embedded broker) is free
    init(data, "enterprise", "88.118.8", port, "pw")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        message = one_error_line("serve", "--data-dir", str(data))
    assert message == (
        f"error: port 127.0.0.1:{port}/tcp (HTTP API) is in use by another process; "
        "set http_port (--http-port, IINODE_HTTP_PORT) to a free port"
    )
    assert "MQTT" not in message


def test_demo_stderr_holds_no_library_lines(tmp_path: Path) -> None:
    """The demo runs an OPC UA server and client, Modbus, MQTT and uvicorn in one
    process: their log records (asyncua's security-policy warnings, aiomqtt's
    tracebacks) stay out of its output."""
    base = free_range(ports_needed())
    proc = iinode("demo", "--base-port", str(base), "--duration", "0", "--products", "10",
                  "--data-dir", str(tmp_path / "demo"), timeout=240)  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    for noise in ("policy", "session timeout", "Unexpected message ID", "HTTP Request"):
        assert noise not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout
