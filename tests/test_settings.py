"""One settings path: every setting from node.toml, IINODE_* and an option, in that order.

Table-driven over ``SETTINGS``: a setting added to the table is covered here
once it has a sample value (the generic ones follow from its type).
``iinode settings`` resolves exactly as ``iinode serve`` does (the same options
and ``node_settings``) and shows each value with its source, so these tests run
the real command line in process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from iinode.cli.main import app
from iinode.errors import ConfigurationError
from iinode.node.settings import (
    FIXED_AT_INIT,
    SECRET_SETTINGS,
    SETTINGS,
    NodeSettings,
    Role,
    check_setting,
    setting_default,
    setting_names,
    setting_type,
)
from iinode.node.settings_sources import parse_setting, resolve_settings

#: A valid value other than the default, where the type alone does not give one.
SAMPLES: dict[str, Any] = {
    "store_url": "sqlite:other.sqlite3",
    "http_host": "127.0.0.2",
    "public_host": "127.0.0.3",
    "parent_url": "http://127.0.0.1:9001",
    "cache_url": "redis://127.0.0.1:6379/5",
    "mqtt_url": "mqtt://127.0.0.1:1883",
    "mqtt_host": "127.0.0.4",
    "bus_url": "nats://127.0.0.1:4222",
    "monitoring_parent_url": "http://127.0.0.1:9002",
    "heartbeat_interval": 0.5,
    "notice_interval": 0.75,
}
SERVE_SETTINGS = [name for name in setting_names() if name not in FIXED_AT_INIT]


def sample(name: str) -> Any:
    """A valid, non-default value of ``name``."""
    if name in SAMPLES:
        return SAMPLES[name]
    base, _ = setting_type(name)
    default = setting_default(name)
    if base is bool:
        return not default
    if base is int:
        return 9000 + setting_names().index(name) if default is None else int(default) + 7
    if base is float:
        return 1.25 if default != 1.25 else 2.5
    return f"sample-{name}"


def text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def option(name: str, value: Any) -> list[str]:
    flag = f"--{name.replace('_', '-')}"
    if isinstance(value, bool):
        return [flag if value else f"--no-{flag[2:]}"]
    return [flag, text(value)]


def toml_line(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{name} = {text(value)}"
    if isinstance(value, int | float):
        return f"{name} = {value}"
    return f'{name} = "{value}"'


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A data directory whose node.toml names only the role and prefix."""
    data = tmp_path / "node"
    data.mkdir()
    (data / "node.toml").write_text('role = "enterprise"\nprefix = "88.5"\n')
    return data


def show(data: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = CliRunner().invoke(
        app, ["settings", "--data-dir", str(data), "--json", *args], env=env or {}
    )
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def expected(name: str, value: Any) -> Any:
    return "***" if name in SECRET_SETTINGS else value


def test_every_setting_has_a_valid_sample() -> None:
    assert set(setting_names()) == set(SETTINGS), "every table row is a NodeSettings field"
    fields = set(NodeSettings.__dataclass_fields__) - {"data_dir", "extra"}
    assert fields == set(SETTINGS), "every NodeSettings field is a row of the table"
    values = {name: sample(name) for name in SERVE_SETTINGS}
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=Path("x"), prefix="88.5", **values)
    for name in SERVE_SETTINGS:
        assert getattr(settings, name) == values[name] != setting_default(name), name


@pytest.mark.parametrize("way", ["node.toml", "environment", "option"])
def test_each_setting_is_taken_from_each_source(node: Path, way: str) -> None:
    values = {name: sample(name) for name in SERVE_SETTINGS}
    args: list[str] = []
    env: dict[str, str] = {}
    if way == "node.toml":
        with (node / "node.toml").open("a") as f:
            f.writelines(toml_line(n, v) + "\n" for n, v in values.items())
    elif way == "environment":
        env = {SETTINGS[n][0]: text(v) for n, v in values.items()}
    else:
        args = [a for n, v in values.items() for a in option(n, v)]
    shown = show(node, *args, env=env)
    for name, value in values.items():
        source = {
            "node.toml": str(node / "node.toml"),
            "environment": SETTINGS[name][0],
            "option": "command line",
        }[way]
        assert shown[name] == {"value": expected(name, value), "source": source}, name
    assert shown["role"] == {"value": "enterprise", "source": str(node / "node.toml")}


def test_unset_settings_keep_their_defaults(node: Path) -> None:
    shown = show(node)
    for name in SERVE_SETTINGS:
        assert shown[name] == {"value": setting_default(name), "source": "default"}, name


def test_options_beat_the_environment_which_beats_node_toml(node: Path) -> None:
    """Three values of every setting at once: the option's wins, then the variable's."""
    names = [n for n in SERVE_SETTINGS if setting_type(n)[0] in (int, float, str)]
    names = [n for n in names if n not in SAMPLES or n in ("heartbeat_interval", "http_host")]
    third = {"http_host": ("127.0.0.5", "127.0.0.6", "127.0.0.7")}
    values: dict[str, tuple[Any, Any, Any]] = {}
    for name in names:
        if name in third:
            values[name] = third[name]
        elif setting_type(name)[0] is str:
            values[name] = (f"file-{name}", f"env-{name}", f"option-{name}")
        elif setting_type(name)[0] is int:
            values[name] = (9101, 9102, 9103)
        else:
            values[name] = (1.5, 2.5, 3.5)
    with (node / "node.toml").open("a") as f:
        f.writelines(toml_line(n, v[0]) + "\n" for n, v in values.items())
    file_only = show(node)
    env = {SETTINGS[n][0]: text(v[1]) for n, v in values.items()}
    env_over_file = show(node, env=env)
    args = [a for n, v in values.items() for a in option(n, v[2])]
    option_over_env = show(node, *args, env=env)
    assert len(names) >= 12, names
    for name, (in_file, in_env, in_option) in values.items():
        assert file_only[name]["value"] == expected(name, in_file), name
        assert env_over_file[name]["value"] == expected(name, in_env), name
        assert option_over_env[name]["value"] == expected(name, in_option), name
    # booleans: --no-telemetry over IINODE_TELEMETRY=true over telemetry = true
    (node / "node.toml").write_text('role = "enterprise"\nprefix = "88.5"\ntelemetry = false\n')
    assert show(node)["telemetry"]["value"] is False
    assert show(node, env={"IINODE_TELEMETRY": "true"})["telemetry"]["value"] is True
    shown = show(node, "--no-telemetry", env={"IINODE_TELEMETRY": "yes"})
    assert shown["telemetry"] == {"value": False, "source": "command line"}


def test_option_aliases_kept_from_earlier_releases(node: Path) -> None:
    shown = show(
        node, "--host", "127.0.0.9", "--parent", "http://127.0.0.1:7", "--store", "memory:"
    )
    assert shown["http_host"]["value"] == "127.0.0.9"
    assert shown["parent_url"]["value"] == "http://127.0.0.1:7"
    assert shown["store_url"]["value"] == "memory:"


# -- errors: one line naming the setting and where it came from ---------------------
BAD = [
    # (node.toml lines, environment, options, words the one line must contain)
    (
        ["mqtt_ulr = 'mqtt://h:1'"],
        {},
        [],
        ["key mqtt_ulr is not a setting", "mqtt_url?", "node.toml"],
    ),
    (['http_port = "8000"'], {}, [], ["http_port must be an integer, not '8000'", "node.toml"]),
    (["telemetry = 1"], {}, [], ["telemetry must be true or false", "node.toml"]),
    (["heartbeat_interval = 'soon'"], {}, [], ["heartbeat_interval must be a number"]),
    (["report_secret = 12"], {}, [], ["report_secret must be a string, not a secret"]),
    (
        [],
        {"IINODE_MQTT_ULR": "mqtt://h:1"},
        [],
        ["IINODE_MQTT_ULR is not a setting", "IINODE_MQTT_URL?"],
    ),
    ([], {"IINODE_TELEMETRY": "maybe"}, [], ["IINODE_TELEMETRY", "true or false", "'maybe'"]),
    ([], {"IINODE_HTTP_PORT": "80.5"}, [], ["IINODE_HTTP_PORT", "must be an integer"]),
    ([], {"IINODE_CACHE_SIZE": "-1"}, [], ["cache_size must not be negative", "IINODE_CACHE_SIZE"]),
    (
        [],
        {"IINODE_PREFIX": "88.6"},
        [],
        ["IINODE_PREFIX sets prefix '88.6'", "'88.5'", "iinode init"],
    ),
    ([], {"IINODE_ROLE": "top"}, [], ["IINODE_ROLE sets role 'top'", "fixed"]),
    (
        [],
        {"IINODE_MQTT_URL": "localhost:1883"},
        [],
        ["mqtt_url 'localhost:1883'", "mqtt://localhost:1883", "IINODE_MQTT_URL"],
    ),
    ([], {"IINODE_BUS_URL": "redis://h"}, [], ["bus_url", "nats://", "IINODE_BUS_URL"]),
    ([], {}, ["--parent-url", "127.0.0.1:19001"], ["http://127.0.0.1:19001", "command line"]),
    (
        [],
        {},
        ["--public-host", "node.example"],
        ["public_host 'node.example' must be an IP address"],
    ),
    ([], {}, ["--cache-url", "memcached://h"], ["cache_url", "redis://"]),
    ([], {}, ["--mqtt-host", "0.0.0.0"], ["mqtt_password", "IINODE_MQTT_PASSWORD"]),
    ([], {}, ["--http-port", "70000"], ["http_port 70000 is out of range"]),
    ([], {"IINODE_MESSAGE_LIFETIME": "0"}, [], ["message_lifetime must be 1 to"]),
    ([], {}, ["--store-url", "mysql://h/db"], ["store_url", "postgresql://"]),
    (
        [],
        {},
        ["--monitoring-parent-url", "http://h:notaport"],
        ["monitoring_parent_url", "invalid port"],
    ),
]


@pytest.mark.parametrize(("lines", "env", "args", "words"), BAD)
def test_a_bad_setting_is_one_line_naming_it(
    node: Path, lines: list[str], env: dict[str, str], args: list[str], words: list[str]
) -> None:
    with (node / "node.toml").open("a") as f:
        f.writelines(line + "\n" for line in lines)
    for command in ("settings", "serve"):  # serve stops at the same line, before any port
        result = CliRunner().invoke(app, [command, "--data-dir", str(node), *args], env=env)
        assert result.exit_code == 1, (command, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        out = [line for line in result.output.splitlines() if line.strip()]
        assert len(out) == 1, out
        assert out[0].startswith("error: "), out
        for word in words:
            assert word in out[0], (word, out[0])


def test_variables_of_the_command_itself_are_not_settings_and_pass(node: Path) -> None:
    env = {
        "IINODE_ADMIN_SECRET": "x",
        "IINODE_NODE_URL": "http://h:1",
        "IINODE_REQUIRE_SERVICES": "1",
    }
    assert show(node, env=env)["http_port"]["source"] == "default"


def test_a_missing_node_file_says_to_run_init(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "run 'iinode init'" in result.output


# -- the library functions the command line uses ---------------------------------------
@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("telemetry", "TRUE", True), ("telemetry", "off", False), ("telemetry", "0", False),
        ("http_port", " 8080 ", 8080), ("handle_port", "", None), ("heartbeat_interval", "2", 2.0),
        ("mqtt_password", "", None), ("name", "", ""), ("name", " a b ", " a b "),
    ],
)  # fmt: skip
def test_text_of_a_variable_becomes_the_settings_type(name: str, raw: str, value: Any) -> None:
    parsed = parse_setting(name, raw)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("http_port", True), ("http_port", 1.0), ("telemetry", "true"), ("name", 3),
     ("heartbeat_interval", False), ("role", "king"), ("handle_port", "2641")],
)  # fmt: skip
def test_values_of_the_wrong_type_are_refused(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        check_setting(name, value)
    with pytest.raises(ConfigurationError, match=name):
        NodeSettings(**{"role": Role.TOP, "data_dir": Path("x"), "prefix": "88", name: value})


def test_intervals_must_be_finite() -> None:
    with pytest.raises(ConfigurationError, match="heartbeat_interval"):
        NodeSettings(role=Role.TOP, data_dir=Path("x"), prefix="88", heartbeat_interval=math.inf)


def test_settings_travel_to_workers_as_data(tmp_path: Path) -> None:
    values = {name: sample(name) for name in SERVE_SETTINGS}
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.5", **values)
    again = NodeSettings.from_json(settings.to_json())
    assert again == settings
    assert again.handle_port == values["handle_port"]
    with pytest.raises(ConfigurationError):
        NodeSettings.from_json('{"role": "top"}')


def test_load_reads_node_toml_without_the_environment(
    node: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IINODE_HTTP_PORT", "9999")
    assert NodeSettings.load(node).http_port == 8000
    assert resolve_settings(node).http_port == 9999
    assert resolve_settings(node, {"http_port": 9998}).http_port == 9998
    assert resolve_settings(node, {"http_port": None}).http_port == 9999
