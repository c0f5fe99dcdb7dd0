"""Typed node settings: ``NodeSettings``, and ``SETTINGS``, the one table of settings.

Settings are frozen and passed into constructors; only the CLI reads the
environment (``IINODE_*``) and the node file (``<data-dir>/node.toml``), through
``settings_sources.py``.  ``SETTINGS`` is the one table of settings; a test checks
it against the docs.  Each value is checked against the setting's type on
construction (``check_setting``), and every URL and address is validated.  The
resolved settings travel to worker processes as data (``to_json``/``from_json``),
not re-read from the file.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
import os
import typing
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iinode.errors import ConfigurationError, InvalidHandle
from iinode.identifiers import Prefix

NODE_FILE = "node.toml"
#: The embedded MQTT broker listens on the HTTP port plus this, unless ``mqtt_port`` is set.
MQTT_PORT_OFFSET = 10_000
#: The environment variable through which ``serve`` hands its resolved settings to workers.
RESOLVED_VARIABLE = "IINODE_RESOLVED_SETTINGS"
#: ``IINODE_*`` variables that are not settings (options of the ``iinode`` command, tests).
OTHER_VARIABLES = frozenset(
    {
        "IINODE_DATA_DIR",
        "IINODE_ADMIN_SECRET",
        "IINODE_NODE_URL",
        "IINODE_ROOT_URL",
        "IINODE_CHILD_SECRET",
        "IINODE_REQUIRE_SERVICES",
        RESOLVED_VARIABLE,
    }
)
#: Settings fixed when a node is created: a later source may repeat them, not change them.
FIXED_AT_INIT = ("role", "prefix")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is on the loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Role(enum.StrEnum):
    TOP = "top"
    SECONDARY = "secondary"
    ENTERPRISE = "enterprise"
    RECURSIVE = "recursive"


@dataclass(frozen=True, slots=True)
class NodeSettings:
    role: Role
    data_dir: Path
    prefix: str | None = None
    store_url: str = "sqlite:handles.sqlite3"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    handle_port: int | None = None
    parent_handle_port: int | None = None
    public_host: str = "127.0.0.1"
    parent_url: str | None = None
    name: str = ""
    cache_size: int = 100_000
    negative_ttl: int = 60
    cache_url: str = ""
    max_referrals: int = 8
    message_lifetime: int = 43_200
    telemetry: bool = True
    mqtt_url: str = "embedded"
    mqtt_port: int | None = None
    mqtt_host: str = "127.0.0.1"
    mqtt_password: str | None = None
    telemetry_dir: str = "telemetry"
    bus_url: str = "memory:"
    monitoring_parent_url: str | None = None
    report_secret: str | None = None
    heartbeat_interval: float = 30.0
    notice_interval: float = 30.0
    province: str = ""
    industry: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in setting_names():
            object.__setattr__(self, name, check_setting(name, getattr(self, name)))
        if self.role is Role.RECURSIVE:
            if self.prefix is not None:
                raise ConfigurationError("a recursive node owns no prefix")
            if not self.parent_url:
                raise ConfigurationError("a recursive node needs --parent (the root node's URL)")
        elif self.prefix is None:
            raise ConfigurationError(f"a {self.role.value} node needs --prefix")
        else:
            try:
                prefix = Prefix(self.prefix)
            except InvalidHandle as exc:
                raise ConfigurationError(f"invalid prefix: {exc.message}") from None
            object.__setattr__(self, "prefix", prefix.text)
            if self.role is Role.TOP and prefix.depth != 1:
                raise ConfigurationError(f"a top-level node owns a root prefix, not {prefix}")
            if self.role is not Role.TOP and prefix.depth == 1:
                raise ConfigurationError(f"a {self.role.value} node owns a derived prefix")
        for name in ("http_port", "handle_port", "parent_handle_port", "mqtt_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port < 65536:
                raise ConfigurationError(f"{name} {port} is out of range (0-65535)")
        for name in ("cache_size", "negative_ttl", "max_referrals"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative")
        if not 0 < self.message_lifetime <= 0xFFFF_FFFF:
            raise ConfigurationError("message_lifetime must be 1 to 4294967295 seconds")
        self._check_addresses()
        self._check_extensions()

    def _check_addresses(self) -> None:
        """URLs and hosts, checked here so that a bad one fails at init, not in serve."""
        for name in ("parent_url", "monitoring_parent_url"):
            _check_url(name, getattr(self, name), ("http", "https"))
        if not self.store_url.startswith(("memory:", "sqlite:")):
            _check_url("store_url", self.store_url, ("postgresql", "postgres"))
        if self.store_url.startswith("sqlite:") and not self.store_url.removeprefix("sqlite:"):
            raise ConfigurationError("store_url 'sqlite:' names no file: write sqlite:PATH")
        if self.store_url.startswith("memory:") and self.store_url not in ("memory:", "memory://"):
            raise ConfigurationError(f"store_url {self.store_url!r}: write memory:")
        if self.cache_url and not self.cache_url.startswith("unix://"):
            _check_url("cache_url", self.cache_url, ("redis", "rediss"))
        try:
            ipaddress.ip_address(self.public_host)
        except ValueError:
            raise ConfigurationError(
                f"public_host {self.public_host!r} must be an IP address "
                "(an HS_SITE lists addresses, not names)"
            ) from None
        for name in ("http_host", "mqtt_host"):
            if not getattr(self, name).strip():
                raise ConfigurationError(f"{name} must not be empty")

    def _check_extensions(self) -> None:
        """Telemetry and monitoring settings (see ``iinode.api.extensions``)."""
        if self.mqtt_url != "embedded":
            _check_url("mqtt_url", self.mqtt_url, ("mqtt", "tcp"), "'embedded' or ")
        if self.bus_url != "memory:":
            _check_url("bus_url", self.bus_url, ("nats", "tls"), "'memory:' or ")
        for name in ("heartbeat_interval", "notice_interval"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds")
        embedded = self.mqtt_url == "embedded"
        if embedded and not self.mqtt_password and not is_loopback(self.mqtt_host):
            raise ConfigurationError(
                f"mqtt_host {self.mqtt_host} exposes the embedded MQTT broker to the "
                "network: set mqtt_password (IINODE_MQTT_PASSWORD) as well"
            )

    @property
    def reporting_url(self) -> str | None:
        """Where monitoring reports go: ``monitoring_parent_url``, else the parent."""
        return self.monitoring_parent_url or self.parent_url

    @property
    def embedded_mqtt_port(self) -> int:
        """Port of the embedded broker: ``mqtt_port``, else derived from the HTTP port.

        The default keeps clear of 1883 (often a system Mosquitto) and of other
        nodes on the machine, which already differ in their HTTP ports.
        """
        if self.mqtt_port is not None:
            return self.mqtt_port
        if self.http_port + MQTT_PORT_OFFSET < 65536:
            return self.http_port + MQTT_PORT_OFFSET
        return self.http_port - MQTT_PORT_OFFSET

    @property
    def owned_prefix(self) -> Prefix | None:
        return None if self.prefix is None else Prefix(self.prefix)

    @property
    def admin_identity(self) -> str | None:
        return None if self.prefix is None else f"300:0.NA/{self.prefix}"

    @property
    def http_url(self) -> str:
        return f"http://{self.public_host}:{self.http_port}"

    def with_overrides(self, **changes: Any) -> NodeSettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    # -- the node file ---------------------------------------------------------
    def to_toml(self) -> str:
        lines = []
        for f in fields(self):
            if f.name in ("data_dir", "extra"):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, enum.Enum):
                value = value.value
            lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def save(self) -> Path:
        """Write ``node.toml`` atomically, readable by its owner only (it may hold
        ``report_secret``)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / NODE_FILE
        tmp = path.with_name(f".{NODE_FILE}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # also if a stale temporary file was there
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                fd = -1
                f.write(self.to_toml())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if fd >= 0:
                os.close(fd)
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, data_dir: Path) -> NodeSettings:
        """The settings in ``node.toml`` (and defaults), without the environment."""
        from iinode.node.settings_sources import resolve_settings

        return resolve_settings(data_dir, environ={})

    # -- handing settings to worker processes ----------------------------------
    def to_json(self) -> str:
        """Every field as JSON, for ``from_json`` in another process."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = str(value) if isinstance(value, Path | enum.Enum) else value
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> NodeSettings:
        try:
            data = json.loads(text)
            data["data_dir"] = Path(data["data_dir"])
            return cls(**data)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"resolved settings are not readable: {exc}") from None


def _check_url(name: str, url: str | None, schemes: tuple[str, ...], other: str = "") -> None:
    """``url`` is ``SCHEME://HOST[:PORT]…`` with one of ``schemes`` (or ``None``)."""
    if url is None:
        return
    want = f"{other}{schemes[0]}://HOST:PORT"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigurationError(f"{name} {url!r} has an invalid port; want {want}") from None
    if parts.scheme.lower() not in schemes or not parts.hostname:
        hint = f" (write {schemes[0]}://{url})" if "://" not in url else ""
        raise ConfigurationError(f"{name} {url!r} is not {want}{hint}")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


#: The settings table: name -> (environment variable, description).
SETTINGS: dict[str, tuple[str, str]] = {
    "role": ("IINODE_ROLE", "top, secondary, enterprise or recursive"),
    "prefix": ("IINODE_PREFIX", "the prefix this node owns (none for a recursive node)"),
    "store_url": (
        "IINODE_STORE_URL",
        "memory:, sqlite:PATH (default sqlite:handles.sqlite3) or postgresql://…[#table]",
    ),
    "http_host": ("IINODE_HTTP_HOST", "address the HTTP API binds to"),
    "http_port": ("IINODE_HTTP_PORT", "HTTP API port (default 8000)"),
    "handle_port": ("IINODE_HANDLE_PORT", "native Handle protocol port (2641 by convention)"),
    "parent_handle_port": (
        "IINODE_PARENT_HANDLE_PORT",
        "native Handle port of the parent node (on the parent_url host)",
    ),
    "public_host": ("IINODE_PUBLIC_HOST", "IP address advertised in this node's HS_SITE"),
    "parent_url": (
        "IINODE_PARENT_URL",
        "HTTP URL of the parent node (the root for a recursive node)",
    ),
    "name": ("IINODE_NAME", "a human name for the node"),
    "cache_size": ("IINODE_CACHE_SIZE", "entries in the resolution cache"),
    "negative_ttl": ("IINODE_NEGATIVE_TTL", "seconds a not-found answer is cached"),
    "cache_url": (
        "IINODE_CACHE_URL",
        "resolution cache shared by the node's processes: "
        "empty (in-process only) or redis://HOST:PORT/DB",
    ),
    "max_referrals": ("IINODE_MAX_REFERRALS", "referrals followed before giving up"),
    "message_lifetime": (
        "IINODE_MESSAGE_LIFETIME",
        "seconds from now to the ExpirationTime of native protocol messages (default 43200)",
    ),
    "telemetry": (
        "IINODE_TELEMETRY",
        "run the telemetry pipeline on an enterprise node (true/false)",
    ),
    "mqtt_url": (
        "IINODE_MQTT_URL",
        "embedded (the node's own MQTT broker) or mqtt://HOST:PORT of an external broker",
    ),
    "mqtt_port": (
        "IINODE_MQTT_PORT",
        "port of the embedded MQTT broker (default: http_port + 10000, or - 10000 above 55535)",
    ),
    "mqtt_host": (
        "IINODE_MQTT_HOST",
        "address the embedded MQTT broker binds to (default 127.0.0.1; others need mqtt_password)",
    ),
    "mqtt_password": (
        "IINODE_MQTT_PASSWORD",
        "password every client of the embedded MQTT broker must give when it is not on loopback",
    ),
    "telemetry_dir": (
        "IINODE_TELEMETRY_DIR",
        "directory of the Parquet telemetry store (relative to the data directory)",
    ),
    "bus_url": (
        "IINODE_BUS_URL",
        "ingest bus: memory: (in process) or nats://HOST:PORT (JetStream)",
    ),
    "monitoring_parent_url": (
        "IINODE_MONITORING_PARENT_URL",
        "HTTP URL monitoring reports go to (default: parent_url)",
    ),
    "report_secret": (
        "IINODE_REPORT_SECRET",
        "secret of 300:0.NA/<prefix> in the parent's delegation record (reports, notice pulls)",
    ),
    "heartbeat_interval": ("IINODE_HEARTBEAT_INTERVAL", "seconds between heartbeats to the parent"),
    "notice_interval": ("IINODE_NOTICE_INTERVAL", "seconds between notice pulls from the parent"),
    "province": ("IINODE_PROVINCE", "province label of this node's monitoring events"),
    "industry": ("IINODE_INDUSTRY", "industry label of this node's monitoring events"),
}

#: Settings whose values are never repeated in messages.
SECRET_SETTINGS = frozenset({"mqtt_password", "report_secret"})


# -- types ----------------------------------------------------------------------------
@cache
def _kinds() -> dict[str, tuple[type, bool]]:
    """Each setting's value type and whether it may be unset, from ``NodeSettings``."""
    hints = typing.get_type_hints(NodeSettings)
    kinds: dict[str, tuple[type, bool]] = {}
    for name in SETTINGS:
        if name not in hints:
            continue
        args = typing.get_args(hints[name])
        optional = type(None) in args
        base = next(a for a in args if a is not type(None)) if args else hints[name]
        kinds[name] = (base, optional)
    return kinds


def setting_names() -> tuple[str, ...]:
    """The settings in table order (each a ``NodeSettings`` field)."""
    return tuple(_kinds())


def setting_type(name: str) -> tuple[type, bool]:
    """``(type, optional)`` of a setting: ``(int, True)`` for ``handle_port``."""
    return _kinds()[name]


def setting_default(name: str) -> object:
    """A setting's default (``MISSING`` for ``role``, which has none)."""
    for f in fields(NodeSettings):
        if f.name == name:
            return f.default
    raise KeyError(name)


def describe_type(name: str) -> str:
    base, _ = setting_type(name)
    if base is bool:
        text = "true or false"
    elif base is int:
        text = "an integer"
    elif base is float:
        text = "a number"
    elif issubclass(base, enum.Enum):
        text = "one of " + ", ".join(str(m.value) for m in base)
    else:
        text = "a string"
    return text


def check_setting(name: str, value: object) -> Any:
    """``value`` as the setting's type (an int for a float setting becomes a float)."""
    base, optional = setting_type(name)
    if value is None and optional:
        return None
    good: Any = None
    if base is bool:
        good = value if isinstance(value, bool) else None
    elif base is int:
        good = value if isinstance(value, int) and not isinstance(value, bool) else None
    elif base is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            good = float(value)
    elif issubclass(base, enum.Enum):
        try:
            good = base(value)
        except ValueError:
            good = None
    elif base is str:
        good = value if isinstance(value, str) else None
    else:
        good = value if isinstance(value, base) else None
    if good is None:
        shown = "a secret" if name in SECRET_SETTINGS else repr(value)
        raise ConfigurationError(f"{name} must be {describe_type(name)}, not {shown}")
    return good


__all__ = [
    "FIXED_AT_INIT",
    "MQTT_PORT_OFFSET",
    "NODE_FILE",
    "OTHER_VARIABLES",
    "RESOLVED_VARIABLE",
    "SECRET_SETTINGS",
    "SETTINGS",
    "NodeSettings",
    "Role",
    "check_setting",
    "describe_type",
    "is_loopback",
    "setting_default",
    "setting_names",
    "setting_type",
]
