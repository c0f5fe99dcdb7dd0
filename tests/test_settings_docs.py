import re
from pathlib import Path

from iinode.node.settings import OTHER_VARIABLES, RESOLVED_VARIABLE, SETTINGS, NodeSettings, Role

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    for name, (env, meaning) in SETTINGS.items():
        assert f"| {name} | {env} | {meaning} |" in README, name


def test_the_readme_table_lists_nothing_but_settings() -> None:
    rows = re.findall(r"^\| (\w+) \| (IINODE_\w+) \| .* \|$", README, re.MULTILINE)
    assert rows, "the settings table is gone from the README"
    assert sorted(name for name, _ in rows) == sorted(SETTINGS), "README rows are the table's"
    assert all(env == SETTINGS[name][0] for name, env in rows)
    assert all(env == f"IINODE_{name.upper()}" for name, (env, _) in SETTINGS.items())


def test_the_readme_states_the_precedence_and_the_other_variables() -> None:
    assert "command-line option  >  IINODE_* environment variable  >  node.toml  >  default" in (
        README
    )
    for variable in OTHER_VARIABLES - {RESOLVED_VARIABLE}:
        assert f"`{variable}`" in README, variable


def test_the_readme_node_toml_example_is_a_valid_node_file(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", README, re.DOTALL)
    assert example, "the node.toml example is gone from the README"
    (tmp_path / "node.toml").write_text(example.group(1))
    settings = NodeSettings.load(tmp_path)
    assert settings.mqtt_url == "mqtt://127.0.0.1:1883"
    assert settings.role is Role.ENTERPRISE
