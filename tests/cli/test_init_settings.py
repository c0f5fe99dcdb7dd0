"""``iinode init``: every setting is an option (or a variable), checked before anything is
written; a failed init leaves nothing behind."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.cli_support import iinode
from iinode.cli.main import app
from iinode.errors import IinodeError
from iinode.node.settings import SETTINGS, NodeSettings, setting_names
from test_settings import option, sample, text

BASE = ["init", "--admin-secret", "pw"]
ENTERPRISE = ["--role", "enterprise", "--prefix", "88.5"]


def init(data: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, [*BASE, "--data-dir", str(data), *args], env=env or {})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def everything(data: Path) -> list[Path]:
    return sorted(data.rglob("*")) if data.exists() else []


@pytest.mark.parametrize("way", ["option", "environment"])
def test_init_takes_every_setting_and_writes_it_to_node_toml(tmp_path: Path, way: str) -> None:
    values = {name: sample(name) for name in setting_names() if name not in ("role", "prefix")}
    values["store_url"] = "sqlite:own.sqlite3"
    if way == "option":
        code, out = init(tmp_path / "n", *ENTERPRISE, *(a for n, v in values.items()
                                                          for a in option(n, v)))  # fmt: skip
    else:
        env = {SETTINGS[n][0]: text(v) for n, v in values.items()}
        env |= {"IINODE_ROLE": "enterprise", "IINODE_PREFIX": "88.5"}
        code, out = init(tmp_path / "n", env=env)
    assert code == 0, out
    stored = tomllib.loads((tmp_path / "n" / "node.toml").read_text())
    assert stored["role"] == "enterprise"
    assert stored["prefix"] == "88.5"
    for name, value in values.items():
        assert stored[name] == value, name
    assert (tmp_path / "n" / "own.sqlite3").exists()
    assert NodeSettings.load(tmp_path / "n").mqtt_url == values["mqtt_url"]


def test_telemetry_broker_and_bus_options_of_init(tmp_path: Path) -> None:
    code, out = init(tmp_path / "n", *ENTERPRISE, "--no-telemetry", "--mqtt-url",
                     "mqtt://127.0.0.1:1883", "--bus-url", "nats://127.0.0.1:4222")  # fmt: skip
    assert code == 0, out
    settings = NodeSettings.load(tmp_path / "n")
    assert settings.telemetry is False
    assert settings.mqtt_url == "mqtt://127.0.0.1:1883"
    assert settings.bus_url == "nats://127.0.0.1:4222"


REFUSED = [
    (["--parent", "127.0.0.1:19001"], "parent_url '127.0.0.1:19001' is not http://HOST:PORT"),
    (["--parent-url", "ftp://127.0.0.1:19001"], "parent_url"),
    (["--parent", "http://127.0.0.1:99999"], "invalid port"),
    (["--monitoring-parent-url", "127.0.0.1:1"], "monitoring_parent_url"),
    (["--mqtt-url", "127.0.0.1:1883"], "mqtt_url '127.0.0.1:1883'"),
    (["--mqtt-url", "mqtt://"], "mqtt_url"),
    (["--bus-url", "127.0.0.1:4222"], "bus_url"),
    (["--cache-url", "127.0.0.1:6379"], "cache_url"),
    (["--store-url", "postgres:/nohost"], "store_url"),
    (["--store-url", "sqlite:"], "store_url"),
    (["--public-host", "localhost"], "public_host"),
    (["--mqtt-host", "0.0.0.0"], "mqtt_password"),
    (["--heartbeat-interval", "0"], "heartbeat_interval"),
    (["--handle-port", "65536"], "handle_port"),
    (["--role", "top", "--prefix", "88.5"], "root prefix"),
    (["--role", "recursive"], "needs --parent"),
    (["--role", "enterprise"], "needs --prefix"),
]


@pytest.mark.parametrize(("args", "words"), REFUSED)
def test_init_refuses_a_bad_setting_and_makes_nothing(
    tmp_path: Path, args: list[str], words: str
) -> None:
    role = [] if "--role" in args else ["--role", "enterprise"]
    prefix = [] if "--prefix" in args or "--role" in args else ["--prefix", "88.5"]
    data = tmp_path / "new" / "node"
    code, out = init(data, *role, *prefix, *args)
    assert code == 1, out
    assert len(out) == 1, out
    assert out[0].startswith("error: ")
    assert words in out[0], out
    assert not (tmp_path / "new").exists()


def test_init_without_a_role_names_both_ways_to_give_it(tmp_path: Path) -> None:
    code, out = init(tmp_path / "n", "--prefix", "88.5")
    assert code == 1
    assert out == ["error: role is not set: give --role or IINODE_ROLE"]
    assert not (tmp_path / "n").exists()


def test_init_refuses_unknown_and_ill_typed_variables(tmp_path: Path) -> None:
    code, out = init(tmp_path / "n", *ENTERPRISE, env={"IINODE_MQTT_ULR": "mqtt://h:1"})
    assert code == 1
    assert out == [
        "error: environment variable IINODE_MQTT_ULR is not a setting "
        "(did you mean IINODE_MQTT_URL?); README.md lists the settings"
    ]
    code, out = init(tmp_path / "n", *ENTERPRISE, env={"IINODE_TELEMETRY": "sometimes"})
    assert code == 1
    assert out == ["error: IINODE_TELEMETRY: telemetry must be true or false, not 'sometimes'"]
    assert not (tmp_path / "n").exists()


def test_a_store_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    # a new data directory (and its new parents) goes again entirely
    data = tmp_path / "a" / "b" / "node"
    result = CliRunner().invoke(app, [*BASE, "--data-dir", str(data), *ENTERPRISE,
                                      "--store-url", "sqlite:."])  # fmt: skip
    assert isinstance(result.exception, IinodeError), result.output
    assert "cannot open SQLite store" in str(result.exception)
    assert not (tmp_path / "a").exists()
    # in a directory that was there, only what init made goes
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "mine.txt").write_text("x")
    (keep / "sub").mkdir()
    before = everything(keep)
    proc = iinode(*BASE, "--data-dir", str(keep), *ENTERPRISE, "--store-url", "sqlite:sub",
                  check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        f"error: cannot open SQLite store {keep / 'sub'}: unable to open database file"
    ]
    assert everything(keep) == before
    # and init then works there
    iinode(*BASE, "--data-dir", str(keep), *ENTERPRISE)
    assert (keep / "node.toml").exists()


def test_parent_without_a_scheme_is_refused_by_the_installed_command(tmp_path: Path) -> None:
    """The case from the field: one line at init instead of a traceback at serve."""
    proc = iinode(*BASE, "--data-dir", str(tmp_path / "n"), *ENTERPRISE,
                  "--parent", "127.0.0.1:19001", check=False)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: parent_url '127.0.0.1:19001' is not http://HOST:PORT "
        "(write http://127.0.0.1:19001) (from command line)"
    ]
    assert not (tmp_path / "n").exists()


def test_init_into_an_existing_node_is_refused_and_keeps_it(tmp_path: Path) -> None:
    assert init(tmp_path / "n", *ENTERPRISE)[0] == 0
    toml = (tmp_path / "n" / "node.toml").read_text()
    code, out = init(tmp_path / "n", *ENTERPRISE, "--http-port", "9000")
    assert code == 1
    assert "already holds a node" in out[0]
    assert (tmp_path / "n" / "node.toml").read_text() == toml


def test_version() -> None:
    import iinode as package

    proc = iinode("--version")
    assert proc.stdout.strip() == f"iinode {package.__version__}"
