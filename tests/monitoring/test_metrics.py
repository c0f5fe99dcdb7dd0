from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from iinode.monitoring import NodeMetrics


def parse(metrics: NodeMetrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_counters_and_gauges_render_and_parse() -> None:
    m = NodeMetrics()
    m.resolutions.labels("udp").inc(3)
    m.resolutions.labels("http").inc()
    m.resolution_errors.labels("HANDLE_NOT_FOUND").inc(2)
    m.connector_up.labels("opcua").set(1)
    m.resolution_seconds.observe(0.0003)
    got = parse(m)
    assert got["iinode_resolutions_total"] == {
        (("transport", "udp"),): 3.0,
        (("transport", "http"),): 1.0,
    }
    assert got["iinode_resolution_errors_total"] == {(("code", "HANDLE_NOT_FOUND"),): 2.0}
    assert got["iinode_connector_up"] == {(("connector", "opcua"),): 1.0}
    assert got["iinode_resolution_seconds_count"] == {(): 1.0}
    assert got["iinode_resolution_seconds_bucket"][(("le", "0.0005"),)] == 1.0
    assert got["iinode_resolution_seconds_bucket"][(("le", "0.0001"),)] == 0.0


def test_callback_collector_is_read_at_scrape_time() -> None:
    m = NodeMetrics()
    size = [10]
    m.add_callback("iinode_store_identifiers", "Identifiers in the store.", lambda: size[0])
    m.add_callback(
        "iinode_store_prefix_identifiers",
        "Identifiers per prefix.",
        lambda: {("88.118.8",): 4, ('we"ird\\',): 1},
        labels=("prefix",),
    )
    assert parse(m)["iinode_store_identifiers"] == {(): 10.0}
    size[0] = 12
    got = parse(m)
    assert got["iinode_store_identifiers"] == {(): 12.0}
    assert got["iinode_store_prefix_identifiers"] == {
        (("prefix", "88.118.8"),): 4.0,
        (("prefix", 'we"ird\\'),): 1.0,
    }


def test_registries_are_per_node() -> None:
    a, b = NodeMetrics(), NodeMetrics()
    a.events_accepted.inc(5)
    assert parse(a)["iinode_monitoring_events_accepted_total"] == {(): 5.0}
    assert parse(b)["iinode_monitoring_events_accepted_total"] == {(): 0.0}


def test_bad_callback_fails_the_scrape() -> None:
    m = NodeMetrics()
    m.add_callback("iinode_bad", "Labelled but bare.", lambda: 1.0, labels=("x",))
    with pytest.raises(TypeError, match="bare number"):
        m.render()


def test_duplicate_metric_name_is_refused() -> None:
    m = NodeMetrics()
    with pytest.raises(ValueError, match="Duplicated"):
        m.add_callback("iinode_connector_up", "clash", lambda: 1.0)


def test_counts_are_counters_and_no_family_is_left_unfed() -> None:
    m = NodeMetrics()
    total = [3]
    m.add_callback("iinode_things_done", "Things done.", lambda: total[0], counter=True)
    m.add_callback("iinode_things_open", "Things open.", lambda: 1.0)
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert families["iinode_things_done"].type == "counter"
    assert [s.name for s in families["iinode_things_done"].samples] == ["iinode_things_done_total"]
    assert families["iinode_things_open"].type == "gauge"
    # families nothing ever updated are gone
    assert not {"iinode_kpi", "iinode_ingest_points", "iinode_security_events"} & set(families)
    # every monitoring count is a counter
    for name in (
        "iinode_monitoring_reports_received",
        "iinode_monitoring_events_sent",
        "iinode_monitoring_dead_letters",
        "iinode_monitoring_task_failures",
        "iinode_resolutions",
    ):
        assert families[name].type == "counter", name
