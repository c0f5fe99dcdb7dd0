"""Shared test helpers (importable as ``support``; tests/ is on the path).

Tests that need an external service (PostgreSQL, Redis, Mosquitto, NATS) call
``require_service``: without the service they skip, unless
``IINODE_REQUIRE_SERVICES=1`` is set (as CI does), in which case they fail.
"""

from __future__ import annotations

import os
import socket

import pytest

SERVICES = {
    "postgres": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
    "mosquitto": ("127.0.0.1", 1883),
    "nats": ("127.0.0.1", 4222),
}


def services_required() -> bool:
    return os.environ.get("IINODE_REQUIRE_SERVICES", "") not in ("", "0")


def require_service(name: str) -> tuple[str, int]:
    """Return (host, port) of a running service, or skip/fail the test."""
    host, port = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return host, port


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
