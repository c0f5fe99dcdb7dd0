"""Native offenders per source address: workers record them, the monitoring side names them."""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path
from typing import Any

from stix2 import parse as parse_stix

from iinode.identifiers import Prefix
from iinode.monitoring.events import Event
from iinode.monitoring.security import iinode_properties
from iinode.monitoring.sources import NativeCounterWatch, ObservationWindow, SourcesSettings
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_counters import (
    OFFENDER_RING,
    OFFENDERS_FILE,
    OffenderLog,
    OffenderReader,
    read_native_counters,
)
from iinode.resolution.native_server import start_native_workers
from iinode.resolution.native_sessions import OffenderTally
from native.nodes import seed, url

SOURCES = ("127.0.0.1", "127.0.0.2")
PER_SOURCE = {"127.0.0.1": 40, "127.0.0.2": 25}


def test_tally_keeps_the_top_addresses_and_is_bounded() -> None:
    tally = OffenderTally(max_addresses=3)
    tally.note("10.0.0.1", "protocol_errors", 5)
    tally.note("10.0.0.2", "auth_failures")
    tally.note("10.0.0.3", "dropped", 2)
    tally.note("10.0.0.4", "dropped", 100)  # a fourth address is not tracked
    tally.note(None, "dropped")  # nor an unknown one
    assert tally.take(2) == {"10.0.0.1": (5, 0, 0), "10.0.0.3": (0, 0, 2)}
    assert len(tally) == 0
    assert tally.take(2) == {}


def test_reader_merges_workers_and_counts_each_publication_once(tmp_path: Path) -> None:
    one, two = OffenderLog(tmp_path, 0), OffenderLog(tmp_path, 1)
    tally = OffenderTally()
    tally.note("10.0.0.1", "protocol_errors", 3)
    one.publish(tally)
    reader = OffenderReader(tmp_path)
    assert reader.poll() == {}  # the first poll only takes note: history
    tally.note("10.0.0.1", "protocol_errors", 2)
    one.publish(tally)
    tally.note("10.0.0.1", "auth_failures")
    tally.note("10.0.0.2", "dropped", 7)
    two.publish(tally)
    assert not one.publish(tally)  # nothing counted: nothing written
    assert reader.poll() == {
        "10.0.0.1": {"protocol_errors": 2, "auth_failures": 1},
        "10.0.0.2": {"dropped": 7},
    }
    assert reader.poll() == {}
    for _ in range(OFFENDER_RING + 5):  # a ring of bounded length; the reader keeps up to it
        tally.note("10.0.0.3", "dropped")
        one.publish(tally)
    assert reader.poll() == {"10.0.0.3": {"dropped": OFFENDER_RING}}
    # garbage in a file is ignored, not a crash
    (tmp_path / f"{OFFENDERS_FILE}.7").write_bytes(b"\x00not json")
    (tmp_path / f"{OFFENDERS_FILE}.8").write_bytes(b'{"offences": 1}')
    assert reader.poll() == {}


def test_unattributed_growth_is_reported_once_under_native() -> None:
    counters = {"protocol_errors": 0, "dropped": 0, "auth_failures": 0}
    offenders: list[dict[str, dict[str, int]]] = [{}]
    watch = NativeCounterWatch(
        SourcesSettings(Prefix("88.1")), lambda: dict(counters), lambda: offenders.pop(0)
    )
    assert watch.poll() == []
    # attribution runs ahead of the totals for one poll ...
    offenders.append({"10.0.0.1": {"protocol_errors": 4}})
    polled = watch.poll()
    assert [(o.source, n) for o, n in polled] == [("native:10.0.0.1", 4)]
    # ... the totals catch up, plus 3 nobody attributed: only those 3 go under "native"
    counters["protocol_errors"] = 7
    offenders.append({})
    assert [(o.source, n) for o, n in watch.poll()] == [("native", 3)]
    offenders.append({})
    assert watch.poll() == []


def _observed(event: Event) -> tuple[str, int, str]:
    bundle: Any = parse_stix(dict(event.detail or {}), allow_custom=False)
    data = next(o for o in bundle.objects if o.type == "observed-data")
    ips = [o for o in bundle.objects if o.type in ("ipv4-addr", "ipv6-addr")]
    assert len(ips) == 1
    assert ips[0].id in data.object_refs
    return str(ips[0].value), int(data.number_observed), str(iinode_properties(data)["kind"])


def _native_port() -> int:
    """A port free for both UDP and TCP, below the ephemeral range.

    A port the kernel picked for a TCP socket may be an ephemeral UDP port in use
    elsewhere; native workers bind both.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(12_000, 32_000)
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise AssertionError("no free port")


def test_garbage_from_two_addresses_becomes_two_events(tmp_path: Path) -> None:
    """Each worker publishes on its own clock, so one address's garbage may arrive over
    several polls below the burst each; the window rates the total (25 >= 20: medium)."""
    port = _native_port()
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8", handle_port=port
    )
    seed(settings, {"88.118.8/X": [url(1, "http://x/")]})
    sources = SourcesSettings(Prefix("88.118.8"), window=3600.0)
    with start_native_workers(settings, 2, host="127.0.0.1"):
        reader = OffenderReader(tmp_path)
        watch = NativeCounterWatch(sources, lambda: read_native_counters(tmp_path), reader.poll)
        assert watch.poll() == []  # baseline
        for source, count in PER_SOURCE.items():
            for n in range(count):  # many source ports: both workers get some
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind((source, 0))
                    sock.sendto(os.urandom(8 + n % 7), ("127.0.0.1", port))
        window = ObservationWindow(sources)
        expected = sum(PER_SOURCE.values())
        deadline = time.monotonic() + 20
        while True:
            now = time.time()
            for obs, count in watch.poll():
                window.add(obs, now, count)
            grown = read_native_counters(tmp_path)["protocol_errors"]
            if grown >= expected and len(window) >= len(PER_SOURCE):
                break
            assert time.monotonic() < deadline, (grown, len(window))
            time.sleep(0.1)
        time.sleep(0.6)  # anything still on its way would show up now
        for obs, count in watch.poll():
            window.add(obs, time.time(), count)
        events = window.flush(time.time(), force=True)
    seen = sorted(_observed(e) for e in events)
    assert seen == [
        ("127.0.0.1", PER_SOURCE["127.0.0.1"], "protocol_error"),
        ("127.0.0.2", PER_SOURCE["127.0.0.2"], "protocol_error"),
    ]
    # 40 in a window is the "burst" (20) or more: medium; 25 likewise
    assert {e.severity.label for e in events} == {"medium"}
    assert len(list(tmp_path.glob(f"{OFFENDERS_FILE}.*"))) >= 1
