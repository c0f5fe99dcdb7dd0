from __future__ import annotations

from iinode.connectivity.sparkplug import (
    BDSEQ,
    REBIRTH,
    DataType,
    EdgeNode,
    HostApplication,
    HostSettings,
    MessageType,
    Metric,
    Payload,
    Topic,
    decode_payload,
    encode_payload,
    rebirth_request,
)
from iinode.telemetry.model import Quality, Reading

GROUP = "88.118.8"
NOW_MS = 1_767_225_690_000
NOW_US = NOW_MS * 1000


def started() -> tuple[EdgeNode, HostApplication]:
    edge = EdgeNode(GROUP, "edge1", bdseq=3)
    host = HostApplication()
    for msg in (
        edge.birth({"uptime": 5}, NOW_MS),
        edge.device_birth("PRESS-01", {"temp": 20.5, "running": True, "state": "idle"}, NOW_MS),
    ):
        result = host.receive(msg.topic, msg.payload, NOW_US)
        assert result.errors == []
        assert result.replies == []
    return edge, host


def test_birth_certificates_carry_bdseq_rebirth_and_aliases() -> None:
    edge = EdgeNode(GROUP, "edge1", bdseq=3)
    will = edge.will()
    assert will.topic == "spBv1.0/88.118.8/NDEATH/edge1"
    assert will.qos == 1
    assert decode_payload(will.payload).metrics == (Metric(BDSEQ, 3, DataType.INT64),)
    birth = decode_payload(edge.birth({"uptime": 5}, NOW_MS).payload)
    assert birth.seq == 0
    names = {m.name: m for m in birth.metrics}
    assert names[BDSEQ].value == 3
    assert names[REBIRTH].value is False
    assert names["uptime"].alias == 1
    assert names["uptime"].datatype is DataType.INT64
    dbirth = decode_payload(edge.device_birth("PRESS-01", {"temp": 1.0}, NOW_MS).payload)
    assert dbirth.seq == 1
    assert dbirth.metrics[0].alias == 2


def test_data_travels_by_alias_and_becomes_readings() -> None:
    edge, host = started()
    msg = edge.data({"temp": 21.0, "state": "running"}, NOW_MS + 1000, device="PRESS-01")
    wire = decode_payload(msg.payload)
    assert all(m.name is None and m.alias for m in wire.metrics)
    result = host.receive(msg.topic, msg.payload, NOW_US)
    eq = "88.118.8/PRESS-01"
    assert result.readings == [
        Reading(eq, "temp", NOW_US + 1_000_000, 21.0),
        Reading(eq, "state", NOW_US + 1_000_000, "running"),
    ]
    node = edge.data({"uptime": 6}, NOW_MS)
    assert host.receive(node.topic, node.payload, NOW_US).readings == [
        Reading("88.118.8/edge1", "uptime", NOW_US, 6)
    ]


def test_sequence_numbers_wrap_at_256() -> None:
    edge, host = started()
    seqs = []
    for i in range(300):
        msg = edge.data({"temp": float(i)}, NOW_MS + i, device="PRESS-01")
        seq = decode_payload(msg.payload).seq
        assert seq is not None
        seqs.append(seq)
        assert host.receive(msg.topic, msg.payload, NOW_US).errors == []
    assert seqs[:3] == [2, 3, 4]
    assert max(seqs) == 255
    assert seqs[254] == 0


def test_gap_in_sequence_requests_rebirth_after_the_reorder_timeout_and_keeps_data() -> None:
    edge, host = started()
    edge.data({"temp": 1.0}, NOW_MS, device="PRESS-01")  # lost on the way
    msg = edge.data({"temp": 2.0}, NOW_MS, device="PRESS-01")
    result = host.receive(msg.topic, msg.payload, NOW_US)
    assert (result.errors, result.replies, result.readings, result.held) == ([], [], [], 1)
    assert host.next_deadline() == NOW_US + 2_000_000
    assert host.expire(NOW_US + 1_999_999).errors == []
    result = host.expire(NOW_US + 2_000_000)
    assert "1 message(s) missing before 3 (reorder timeout)" in result.errors[0]
    assert [r.value for r in result.readings] == [2.0]
    assert host.next_deadline() is None
    [reply] = result.replies
    assert reply.topic == "spBv1.0/88.118.8/NCMD/edge1"
    answer = edge.on_command(reply.topic, reply.payload, NOW_MS)
    assert [Topic.parse(o.topic).message_type for o in answer] == [
        MessageType.NBIRTH,
        MessageType.DBIRTH,
    ]
    for o in answer:
        assert host.receive(o.topic, o.payload, NOW_US).errors == []
    msg = edge.data({"temp": 3.0}, NOW_MS, device="PRESS-01")
    assert host.receive(msg.topic, msg.payload, NOW_US).errors == []


def test_out_of_order_messages_are_reordered_within_the_timeout() -> None:
    edge, host = started()
    msgs = [edge.data({"temp": float(i)}, NOW_MS + i, device="PRESS-01") for i in range(4)]
    values: list[float] = []
    for n, msg in enumerate([msgs[2], msgs[1], msgs[3], msgs[0]]):
        result = host.receive(msg.topic, msg.payload, NOW_US + n)
        assert result.errors == []
        assert result.replies == []
        values += [float(r.value) for r in result.readings]
    assert values == [0.0, 1.0, 2.0, 3.0]
    assert host.next_deadline() is None
    assert host.expire(NOW_US + 10**9).readings == []


def test_reorder_buffer_is_bounded_and_late_messages_keep_their_data() -> None:
    edge = EdgeNode(GROUP, "edge1", bdseq=3)
    host = HostApplication(settings=HostSettings(reorder_timeout_us=1000, max_held=3))
    for msg in (edge.birth({}, NOW_MS), edge.device_birth("PRESS-01", {"temp": 0.5}, NOW_MS)):
        host.receive(msg.topic, msg.payload, NOW_US)
    lost = edge.data({"temp": 1.0}, NOW_MS, device="PRESS-01")
    later = [edge.data({"temp": float(i)}, NOW_MS, device="PRESS-01") for i in range(2, 6)]
    results = [host.receive(m.topic, m.payload, NOW_US) for m in later]
    assert [r.held for r in results] == [1, 1, 1, 1]
    assert results[-1].readings
    assert "missing before 3" in results[-1].errors[0]
    assert [r.value for r in results[-1].readings] == [2.0, 3.0, 4.0, 5.0]
    assert len(results[-1].replies) == 1
    late = host.receive(lost.topic, lost.payload, NOW_US)
    assert "late message, sequence 2 before 7" in late.errors[0]
    assert [r.value for r in late.readings] == [1.0]
    assert late.replies == []
    zero = HostApplication(settings=HostSettings(reorder_timeout_us=0))
    edge2 = EdgeNode(GROUP, "edge1")
    for msg in (edge2.birth({}, NOW_MS), edge2.device_birth("PRESS-01", {"t": 1.0}, NOW_MS)):
        zero.receive(msg.topic, msg.payload, NOW_US)
    edge2.data({"t": 2.0}, NOW_MS, device="PRESS-01")
    msg = edge2.data({"t": 3.0}, NOW_MS, device="PRESS-01")
    result = zero.receive(msg.topic, msg.payload, NOW_US)
    assert "sequence 3 where 2 was expected" in result.errors[0]
    assert [r.value for r in result.readings] == [3.0]


def test_death_ends_a_reorder_wait_without_a_rebirth_request() -> None:
    edge, host = started()
    edge.data({"temp": 1.0}, NOW_MS, device="PRESS-01")
    msg = edge.data({"temp": 2.0}, NOW_MS, device="PRESS-01")
    assert host.receive(msg.topic, msg.payload, NOW_US).held == 1
    will = edge.will()
    result = host.receive(will.topic, will.payload, NOW_US)
    assert [r.value for r in result.readings] == [2.0]
    assert result.replies == []
    assert result.offline == ["88.118.8/edge1", "88.118.8/PRESS-01"]
    assert host.next_deadline() is None


def test_unknown_alias_and_data_before_birth() -> None:
    _edge, host = started()
    bad = Payload(NOW_MS, (Metric(None, 1.0, DataType.DOUBLE, alias=99),), seq=2)
    result = host.receive("spBv1.0/88.118.8/DDATA/edge1/PRESS-01", encode_payload(bad), NOW_US)
    assert result.errors == ["spBv1.0/88.118.8/DDATA/edge1/PRESS-01: unknown alias 99"]
    assert len(result.replies) == 1
    assert result.readings == []
    stranger = EdgeNode(GROUP, "edge2")
    stranger.birth({"x": 1}, NOW_MS)
    msg = stranger.data({"x": 2}, NOW_MS)
    result = host.receive(msg.topic, msg.payload, NOW_US)
    assert "before NBIRTH" in result.errors[0]
    assert result.replies[0].topic.endswith("/NCMD/edge2")


def test_deaths_mark_equipment_offline_and_stale_deaths_are_ignored() -> None:
    edge, host = started()
    stale = EdgeNode(GROUP, "edge1", bdseq=2).will()
    assert host.receive(stale.topic, stale.payload, NOW_US).offline == []
    assert host.node_online(GROUP, "edge1")
    ddeath = edge.device_death("PRESS-01", NOW_MS)
    assert host.receive(ddeath.topic, ddeath.payload, NOW_US).offline == ["88.118.8/PRESS-01"]
    will = edge.will()
    assert host.receive(will.topic, will.payload, NOW_US).offline == ["88.118.8/edge1"]
    assert not host.node_online(GROUP, "edge1")


def test_malformed_and_ignored_messages() -> None:
    _, host = started()
    result = host.receive("spBv1.0/88.118.8/NDATA/edge1", b"\xff\xff", NOW_US)
    assert "not a Sparkplug" in result.malformed[0]
    assert result.errors == []
    assert host.receive("not/sparkplug", b"", NOW_US).malformed
    cmd = rebirth_request(GROUP, "edge1", NOW_MS)
    assert host.receive(cmd.topic, cmd.payload, NOW_US).errors == []
    assert host.subscriptions()[0] == "spBv1.0/+/NBIRTH/#"


def test_quality_property_and_unsupported_values() -> None:
    _edge, host = started()
    payload = Payload(
        NOW_MS,
        (
            Metric(None, 5.0, DataType.DOUBLE, alias=2,
                   properties=(("Quality", DataType.INT32, 0),)),
            Metric(None, None, DataType.DOUBLE, alias=2, is_null=True),
        ),
        seq=2,
    )  # fmt: skip
    result = host.receive("spBv1.0/88.118.8/DDATA/edge1/PRESS-01", encode_payload(payload), NOW_US)
    assert [(r.tag, r.quality) for r in result.readings] == [("temp", Quality.BAD)]
    assert result.skipped == 1


def test_state_message_and_equipment_mapping() -> None:
    host = HostApplication("scada", equipment_of=lambda g, e, d: None)
    state = host.state(True, NOW_MS)
    assert state.topic == "spBv1.0/STATE/scada"
    assert state.retain
    assert state.qos == 1
    assert state.payload == b'{"online":true,"timestamp":1767225690000}'
    edge = EdgeNode("g", "e")
    msg = edge.birth({"x": 1}, NOW_MS)
    assert "no equipment identifier" in host.receive(msg.topic, msg.payload, NOW_US).errors[0]
