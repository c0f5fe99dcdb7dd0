"""Where a node's settings come from, and the one path that resolves them.

Every setting can come from four places; the first that gives it wins::

    command-line option  >  IINODE_* environment variable  >  node.toml  >  default

``resolve_settings`` applies that order. Each value is checked against the
setting's type on the way in, and an unknown name (a key in ``node.toml``, an
``IINODE_*`` variable that is neither a setting nor one of ``OTHER_VARIABLES``)
is a ``ConfigurationError`` naming it, never a silent default.  Worker processes
read the settings their parent resolved (``settings_from_environment``), not the file.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from iinode.errors import ConfigurationError
from iinode.node.settings import (
    FIXED_AT_INIT,
    NODE_FILE,
    OTHER_VARIABLES,
    RESOLVED_VARIABLE,
    SECRET_SETTINGS,
    SETTINGS,
    NodeSettings,
    check_setting,
    describe_type,
    setting_names,
    setting_type,
)

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_setting(name: str, text: str) -> Any:
    """A setting from text (an environment variable); empty text unsets an optional one."""
    base, optional = setting_type(name)
    value: object = text
    stripped = text.strip()
    if optional and not stripped and base is not str:
        return None
    if optional and not text and base is str:
        return None
    try:
        if base is bool:
            if stripped.lower() not in _TRUE + _FALSE:
                raise ValueError
            value = stripped.lower() in _TRUE
        elif base is int:
            value = int(stripped)
        elif base is float:
            value = float(stripped)
            if not math.isfinite(float(stripped)):
                raise ValueError
    except ValueError:
        shown = "a secret" if name in SECRET_SETTINGS else repr(text)
        raise ConfigurationError(f"{name} must be {describe_type(name)}, not {shown}") from None
    return check_setting(name, value)


def _unknown(kind: str, key: str, known: Collection[str]) -> ConfigurationError:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigurationError(f"{kind} {key} is not a setting{hint}; README.md lists the settings")


def file_settings(data_dir: Path) -> dict[str, tuple[Any, str]]:
    """The settings ``<data_dir>/node.toml`` gives: name -> (value, the file's path)."""
    path = data_dir / NODE_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path} does not exist; run 'iinode init' for this data directory first"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path} cannot be read: {exc}") from None
    names = setting_names()
    found: dict[str, tuple[Any, str]] = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigurationError(f"{path}: {_unknown('key', key, names)}")
        try:
            found[key] = (check_setting(key, value), str(path))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{path}: {exc}") from None
    return found


def environment_settings(
    environ: Mapping[str, str], other_variables: Collection[str] = ()
) -> dict[str, tuple[Any, str]]:
    """The settings ``IINODE_*`` variables give: name -> (value, the variable).

    A variable that is neither a setting's nor in ``OTHER_VARIABLES`` or
    ``other_variables`` is an error (a misspelt setting must not pass unseen).
    """
    by_variable = {SETTINGS[name][0]: name for name in setting_names()}
    allowed = OTHER_VARIABLES | set(other_variables)
    found: dict[str, tuple[Any, str]] = {}
    for key in sorted(environ):
        if not key.startswith("IINODE_"):
            continue
        name = by_variable.get(key)
        if name is None:
            if key in allowed:
                continue
            raise _unknown("environment variable", key, by_variable)
        try:
            found[name] = (parse_setting(name, environ[key]), key)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{key}: {exc}") from None
    return found


def resolve_with_sources(
    data_dir: Path,
    options: Mapping[str, object] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    other_variables: Collection[str] = (),
    node_file: bool = True,
) -> tuple[NodeSettings, dict[str, str]]:
    """The node's settings and, for each setting not left at its default, where it came from.

    ``options`` are the command line's (``None`` values are options not given);
    ``environ`` defaults to ``os.environ``; ``node_file=False`` skips ``node.toml``
    (``init``, which writes it).
    """
    layers: list[dict[str, tuple[Any, str]]] = []
    stored = file_settings(data_dir) if node_file else {}
    layers.append(stored)
    env = os.environ if environ is None else environ
    layers.append(environment_settings(env, other_variables))
    given: dict[str, tuple[Any, str]] = {}
    for name, value in (options or {}).items():
        if value is None:
            continue
        if name not in setting_names():
            raise _unknown("option", name, setting_names())
        try:
            given[name] = (check_setting(name, value), "command line")
        except ConfigurationError as exc:
            raise ConfigurationError(f"command line: {exc}") from None
    layers.append(given)
    chosen: dict[str, tuple[Any, str]] = {}
    for layer in layers:
        chosen.update(layer)
    if node_file:
        for name in FIXED_AT_INIT:
            created = stored.get(name, (None,))[0]
            if name in chosen and chosen[name][0] != created:
                value, source = chosen[name]
                was = "none" if created is None else repr(str(created))
                raise ConfigurationError(
                    f"{source} sets {name} {str(value)!r}, but this node was created with "
                    f"{was}; {name} is fixed by 'iinode init'"
                )
    if "role" not in chosen:
        raise ConfigurationError(f"role is not set: give --role or {SETTINGS['role'][0]}")
    values = {name: value for name, (value, _) in chosen.items()}
    try:
        settings = NodeSettings(data_dir=data_dir, **values)
    except ConfigurationError as exc:
        first = str(exc).split(" ", 1)[0]
        if first in chosen:
            raise ConfigurationError(f"{exc} (from {chosen[first][1]})") from None
        raise
    return settings, {name: source for name, (_, source) in chosen.items()}


def resolve_settings(
    data_dir: Path,
    options: Mapping[str, object] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    other_variables: Collection[str] = (),
    node_file: bool = True,
) -> NodeSettings:
    """The node's settings: ``options`` > ``IINODE_*`` in ``environ`` > node.toml > defaults."""
    settings, _ = resolve_with_sources(
        data_dir, options, environ=environ, other_variables=other_variables, node_file=node_file
    )
    return settings


def settings_from_environment(environ: Mapping[str, str] | None = None) -> NodeSettings:
    """The settings a parent process put in ``RESOLVED_VARIABLE`` for its workers."""
    env = os.environ if environ is None else environ
    text = env.get(RESOLVED_VARIABLE)
    if not text:
        raise ConfigurationError(f"{RESOLVED_VARIABLE} is not set")
    return NodeSettings.from_json(text)


__all__ = [
    "environment_settings",
    "file_settings",
    "parse_setting",
    "resolve_settings",
    "resolve_with_sources",
    "settings_from_environment",
]
