"""A port on 127.0.0.1 free for both UDP and TCP, for native benchmark nodes."""

from __future__ import annotations

import socket


def free_native_port(attempts: int = 50) -> int:
    """A port both a UDP and a TCP socket can bind now (native nodes need both)."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise OSError("no port free for both UDP and TCP")
