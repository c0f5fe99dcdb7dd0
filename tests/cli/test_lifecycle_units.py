"""``node.lifecycle`` in one process: port claims and stop signals."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator

import pytest

from cli.cli_support import free_range
from iinode.node.lifecycle import Listener, PortInUse, StopSignals, claim_ports


def listener(port: int, transports: tuple[str, ...] = ("udp", "tcp")) -> Listener:
    return Listener("native Handle protocol", "127.0.0.1", port, transports, "set handle_port")


def test_a_claimed_port_is_refused_to_a_second_claim_until_released() -> None:
    port = free_range(1)
    first = claim_ports([listener(port)])
    try:
        with pytest.raises(PortInUse) as refused:
            claim_ports([listener(port)])
        message = str(refused.value)
        assert message.startswith(f"port 127.0.0.1:{port}/udp (native Handle protocol)")
        assert f"held by iinode node process {os.getpid()}" in message
        assert message.endswith("; set handle_port")
    finally:
        first.close()
    claim_ports([listener(port)]).close()


def test_a_refused_claim_releases_the_ports_it_had_taken() -> None:
    base = free_range(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        busy.bind(("127.0.0.1", base + 1))
        with pytest.raises(PortInUse, match="in use by another process"):
            claim_ports([listener(base, ("tcp",)), listener(base + 1)])
    # the first port was claimed, then given back when the second was refused
    claim_ports([listener(base, ("tcp",)), listener(base + 1)]).close()


def test_a_port_bound_elsewhere_is_named_with_its_reason() -> None:
    with pytest.raises(PortInUse, match=r"cannot be bound \(.+\); set handle_port"):
        claim_ports([Listener("x", "192.0.2.1", free_range(1), ("tcp",), "set handle_port")])


@pytest.fixture
def restored() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.usefixtures("restored")
def test_stop_signals_call_back_and_restore_the_previous_handlers() -> None:
    seen: list[int] = []
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals(seen.append) as signals:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGHUP)
        signal.raise_signal(signal.SIGINT)
    assert seen == [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
    assert signals.received == seen
    assert signal.getsignal(signal.SIGTERM) == before
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


@pytest.mark.usefixtures("restored")
def test_an_ignored_sighup_stays_ignored_as_under_nohup() -> None:
    seen: list[int] = []
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with StopSignals(seen.append):
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        signal.raise_signal(signal.SIGHUP)
        signal.raise_signal(signal.SIGTERM)
    assert seen == [signal.SIGTERM]


def test_two_listeners_of_the_node_on_one_port_are_refused_before_any_claim() -> None:
    port = free_range(1)
    http = Listener("HTTP API", "127.0.0.1", port, ("tcp",), "set http_port")
    mqtt = Listener("embedded MQTT broker", "0.0.0.0", port, ("tcp",), "set mqtt_port")
    with pytest.raises(PortInUse) as refused:
        claim_ports([http, mqtt])
    assert str(refused.value) == (
        f"port 0.0.0.0:{port}/tcp is set for both the HTTP API and the embedded MQTT broker; "
        "set mqtt_port"
    )
    udp_only = Listener("x", "127.0.0.1", port, ("udp",), "")
    claim_ports([http, udp_only]).close()  # TCP and UDP ports are separate


def test_nodes_on_the_wildcard_and_a_specific_address_of_one_port_exclude_each_other() -> None:
    port = free_range(1)
    wildcard = Listener("native Handle protocol", "0.0.0.0", port, ("udp", "tcp"), "set it")
    first = claim_ports([wildcard])
    try:
        with pytest.raises(PortInUse, match=f"held by iinode node process {os.getpid()}"):
            claim_ports([listener(port)])
    finally:
        first.close()
    # One node listening on two specific addresses of one port claims it once.
    other = Listener("native Handle protocol", "127.0.0.2", port, ("tcp",), "set it")
    claim_ports([listener(port, ("tcp",)), other]).close()
