"""Typed node settings.

Settings are frozen and passed into constructors; only the CLI reads the
environment (``IINODE_*``) and the node file (``<data-dir>/node.toml``).
``SETTINGS`` is the one table of settings; a test checks it against the docs.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from iinode.errors import ConfigurationError, InvalidHandle
from iinode.identifiers import Prefix

NODE_FILE = "node.toml"
#: The embedded MQTT broker listens on the HTTP port plus this, unless ``mqtt_port`` is set.
MQTT_PORT_OFFSET = 10_000


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
        for port in (self.http_port, self.handle_port, self.parent_handle_port, self.mqtt_port):
            if port is not None and not 0 <= port < 65536:
                raise ConfigurationError(f"port {port} is out of range")
        self._check_extensions()

    def _check_extensions(self) -> None:
        """Telemetry and monitoring settings (see ``iinode.api.extensions``)."""
        if self.mqtt_url != "embedded" and not self.mqtt_url.startswith(("mqtt://", "tcp://")):
            raise ConfigurationError(
                f"mqtt_url {self.mqtt_url!r} must be 'embedded' or mqtt://HOST:PORT"
            )
        if self.bus_url != "memory:" and not self.bus_url.startswith(("nats://", "tls://")):
            raise ConfigurationError(f"bus_url {self.bus_url!r} must be 'memory:' or nats://…")
        for name in ("heartbeat_interval", "notice_interval"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.telemetry, bool):
            raise ConfigurationError("telemetry must be true or false")
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
        path = data_dir / NODE_FILE
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(
                f"{path} does not exist; run 'iinode init' for this data directory first"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
        known = {f.name for f in fields(cls)} - {"data_dir", "extra"}
        unknown = set(raw) - known
        if unknown:
            raise ConfigurationError(f"{path}: unknown settings {', '.join(sorted(unknown))}")
        try:
            raw["role"] = Role(raw["role"])
        except (KeyError, ValueError):
            raise ConfigurationError(
                f"{path}: 'role' must be one of top/secondary/enterprise/recursive"
            ) from None
        return cls(data_dir=data_dir, **raw)


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
