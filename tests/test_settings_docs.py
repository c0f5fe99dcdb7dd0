from pathlib import Path

from iinode.node.settings import SETTINGS


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, (env, meaning) in SETTINGS.items():
        assert f"| {name} | {env} | {meaning} |" in readme, name
