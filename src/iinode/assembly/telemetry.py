"""An enterprise node's telemetry pipeline settings, derived from its node settings."""

from __future__ import annotations

import secrets
import socket
from urllib.parse import urlsplit

from iinode.connectivity.mqtt import MqttSettings
from iinode.connectivity.nats_bus import NatsBusSettings
from iinode.connectivity.service import TelemetrySettings
from iinode.errors import ConfigurationError
from iinode.node.settings import NodeSettings
from iinode.telemetry.store import StoreSettings


def _label(prefix: str) -> str:
    return prefix.replace(".", "_")


def mqtt_address(settings: NodeSettings) -> tuple[str, int]:
    """Where the node ingests MQTT from (the embedded broker unless ``mqtt_url`` is set)."""
    if settings.mqtt_url == "embedded":
        return settings.mqtt_host, settings.embedded_mqtt_port
    parts = urlsplit(settings.mqtt_url)
    if not parts.hostname:
        raise ConfigurationError(f"mqtt_url {settings.mqtt_url!r} has no host")
    return parts.hostname, parts.port or 1883


def telemetry_settings(settings: NodeSettings) -> TelemetrySettings:
    """The pipeline of a node with a prefix: MQTT (embedded or external), bus, store."""
    s = settings
    if s.prefix is None:
        raise ConfigurationError("telemetry needs a node with a prefix")
    embedded = s.mqtt_url == "embedded"
    label = _label(s.prefix)
    client = MqttSettings(
        client_id=f"iinode-{s.prefix}",
        # At the embedded broker the connector is the node's host client, the only
        # one allowed to send commands; its password lives as long as this process.
        username=f"iinode-{label}",
        password=secrets.token_urlsafe(32) if embedded else None,
        sparkplug_groups=(s.prefix,),
        host_id=f"iinode-{label}",
    )
    host, port = mqtt_address(s)
    mqtt = None
    if not embedded:
        mqtt = MqttSettings(
            host=host, port=port, client_id=client.client_id,
            sparkplug_groups=client.sparkplug_groups, host_id=client.host_id,
        )  # fmt: skip
    nats = None
    if s.bus_url != "memory:":
        nats = NatsBusSettings(
            servers=s.bus_url, stream=f"IINODE_TELEMETRY_{label}",
            subject=f"iinode.telemetry.{label}",
        )  # fmt: skip
    return TelemetrySettings(
        StoreSettings(s.data_dir / s.telemetry_dir),
        mqtt=mqtt,
        embedded_host=host,
        embedded_port=port,
        nats=nats,
        mqtt_client=client,
        embedded_password=s.mqtt_password,
    )


def check_embedded_broker(settings: NodeSettings) -> None:
    """Raise ``ConfigurationError`` (one line naming the setting) if the broker port is taken."""
    host, port = settings.mqtt_host, settings.embedded_mqtt_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigurationError(
                f"the embedded MQTT broker cannot listen on {host}:{port} ({reason}); "
                "set mqtt_port (IINODE_MQTT_PORT) in node.toml to a free port, "
                "or mqtt_url to an external broker"
            ) from None


__all__ = ["check_embedded_broker", "mqtt_address", "telemetry_settings"]
