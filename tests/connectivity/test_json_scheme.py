from __future__ import annotations

import pytest

from iinode.connectivity import json_scheme
from iinode.errors import RemoteProtocolError
from iinode.telemetry.model import Quality, Reading

NOW = 1_767_225_690_000_000
TOPIC = "iinode/v1/88.118.8/PRESS-01"


def test_topic_round_trip() -> None:
    assert json_scheme.topic_for("88.118.8/PRESS-01") == TOPIC
    assert json_scheme.equipment_of(TOPIC) == "88.118.8/PRESS-01"
    assert json_scheme.equipment_of("iinode/v1/88.1/a/b") == "88.1/a/b"
    assert json_scheme.subscription("site/x") == "site/x/#"


def test_decode_single_and_list() -> None:
    payload = json_scheme.encode({"temp": 71.5, "state": "run", "n": 3, "on": True}, 1000)
    assert json_scheme.decode(TOPIC, payload, NOW) == [
        Reading("88.118.8/PRESS-01", "temp", 1_000_000, 71.5),
        Reading("88.118.8/PRESS-01", "state", 1_000_000, "run"),
        Reading("88.118.8/PRESS-01", "n", 1_000_000, 3),
        Reading("88.118.8/PRESS-01", "on", 1_000_000, True),
    ]
    many = (
        b'[{"values": {"t": 1.0}}, '
        b'{"ts": "2026-01-01T00:00:00Z", "values": {"t": 2.0}, "quality": 0}]'
    )
    got = json_scheme.decode(TOPIC, many, NOW)
    assert [(r.time_us, r.quality) for r in got] == [
        (NOW, Quality.GOOD),
        (1_767_225_600_000_000, Quality.BAD),
    ]
    assert json_scheme.encode({"t": 1}, quality=0) == b'{"values":{"t":1},"quality":0}'


@pytest.mark.parametrize(
    ("topic", "payload", "message"),
    [
        ("other/88.1/X", b"{}", "not under"),
        ("iinode/v1/88.1", b"{}", "no '/'"),
        (TOPIC, b"{nope", "not JSON"),
        (TOPIC, b'{"temp": 1}', "'values' object"),
        (TOPIC, b'{"values": {"t": [1]}}', "unsupported type"),
        (TOPIC, b'{"ts": 1.5, "values": {"t": 1}}', "neither"),
        (TOPIC, b'{"ts": "yesterday", "values": {"t": 1}}', "neither"),
        (TOPIC, b'{"quality": 999, "values": {"t": 1}}', "999"),
    ],
)
def test_malformed(topic: str, payload: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        json_scheme.decode(topic, payload, NOW)
