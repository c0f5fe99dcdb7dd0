from __future__ import annotations

import inspect

import iinode.connectivity.sparkplug as sparkplug
import iinode.telemetry as telemetry


def test_telemetry_exports() -> None:
    public = [
        name
        for name in dir(telemetry)
        if not name.startswith("_") and not inspect.ismodule(getattr(telemetry, name))
    ]
    assert sorted(telemetry.__all__) == sorted(public)
    assert "Reading" in telemetry.__all__


def test_sparkplug_exports() -> None:
    for name in sparkplug.__all__:
        assert hasattr(sparkplug, name)
    assert set(sparkplug.__all__) >= {"EdgeNode", "HostApplication", "Topic", "decode_payload"}
