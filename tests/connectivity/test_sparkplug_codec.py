from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iinode.connectivity.sparkplug import (
    DataSet,
    DataType,
    MessageType,
    Metric,
    Payload,
    SparkplugError,
    Topic,
    decode_payload,
    encode_payload,
)
from iinode.connectivity.sparkplug.schema import file_descriptor, message_classes


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("spBv1.0/88.118.8/NBIRTH/edge1", Topic(MessageType.NBIRTH, "88.118.8", "edge1")),
        ("spBv1.0/g/DDATA/e/PRESS-01", Topic(MessageType.DDATA, "g", "e", "PRESS-01")),
        ("spBv1.0/g/NCMD/e", Topic(MessageType.NCMD, "g", "e")),
        ("spBv1.0/STATE/scada-1", Topic(MessageType.STATE, host_id="scada-1")),
    ],
)
def test_topic_round_trip(text: str, topic: Topic) -> None:
    assert Topic.parse(text) == topic
    assert str(topic) == text


@pytest.mark.parametrize(
    "text",
    [
        "spAv1.0/g/NDATA/e",
        "spBv1.0/g/NDATA",
        "spBv1.0/g/DDATA/e",
        "spBv1.0/g/NDATA/e/d",
        "spBv1.0/g/XDATA/e",
        "spBv1.0//NDATA/e",
        "spBv1.0/STATE/a/b",
        "spBv1.0/g/STATE/e",
    ],
)
def test_bad_topics(text: str) -> None:
    with pytest.raises(SparkplugError):
        Topic.parse(text)


def test_topic_elements_may_not_contain_wildcards() -> None:
    with pytest.raises(SparkplugError, match="'/'"):
        Topic(MessageType.NDATA, "a+b", "e")


def test_golden_bytes() -> None:
    payload = Payload(5, (Metric("a", 1.5, DataType.DOUBLE, alias=1),), seq=1)
    data = encode_payload(payload)
    # timestamp=5, metric {name "a", alias 1, datatype 10, double 1.5}, seq=1
    assert data.hex() == "080512100a01611001200a69000000000000f83f1801"
    assert decode_payload(data) == payload


SIGNED = [
    (DataType.INT8, -23, "int_value", 233),
    (DataType.INT16, -30000, "int_value", 35536),
    (DataType.INT32, -1, "int_value", 0xFFFFFFFF),
    (DataType.INT64, -2, "long_value", 2**64 - 2),
]


@pytest.mark.parametrize(("dtype", "value", "field", "wire"), SIGNED)
def test_signed_integers_travel_as_twos_complement(
    dtype: DataType, value: int, field: str, wire: int
) -> None:
    data = encode_payload(Payload(metrics=(Metric("x", value, dtype),)))
    pb = message_classes()["Payload"].FromString(data)
    assert getattr(pb.metrics[0], field) == wire
    assert decode_payload(data).metrics[0].value == value


CASES: list[tuple[DataType, Any]] = [
    (DataType.UINT8, 255),
    (DataType.UINT32, 4_000_000_000),
    (DataType.UINT64, 2**63),
    (DataType.FLOAT, 1.25),
    (DataType.DOUBLE, -1e300),
    (DataType.BOOLEAN, True),
    (DataType.STRING, "héllo"),
    (DataType.TEXT, "long text"),
    (DataType.UUID, "5b8e6c1e-0000-4000-8000-000000000000"),
    (DataType.DATETIME, 1_767_225_690_123),
    (DataType.BYTES, b"\x00\x01"),
    (DataType.INT16_ARRAY, (-1, 2, 300)),
    (DataType.DOUBLE_ARRAY, (1.5, -2.0)),
    (DataType.BOOLEAN_ARRAY, (False, False, True, True, False, True, False, False, True)),
    (DataType.STRING_ARRAY, ("ab", "", "c")),
    (
        DataType.DATASET,
        DataSet(("n", "ok"), (DataType.INT32, DataType.BOOLEAN), ((1, True), (-2, False))),
    ),
]


@pytest.mark.parametrize(("dtype", "value"), CASES)
def test_value_round_trip(dtype: DataType, value: Any) -> None:
    metric = Metric("m", value, dtype, alias=7, timestamp=99, is_historical=True)
    back = decode_payload(encode_payload(Payload(metrics=(metric,)))).metrics[0]
    assert back == metric


def test_boolean_array_layout_matches_spec_example() -> None:
    flags = (False, False, True, True, False, True, False, False, True, True, False, True)
    data = encode_payload(Payload(metrics=(Metric("b", flags, DataType.BOOLEAN_ARRAY),)))
    pb = message_classes()["Payload"].FromString(data)
    assert pb.metrics[0].bytes_value == bytes([0x0C, 0, 0, 0, 0x34, 0xD0])


def test_null_metric_and_properties() -> None:
    metric = Metric(
        "t",
        None,
        DataType.DOUBLE,
        is_null=True,
        properties=(("Quality", DataType.INT32, 192), ("engUnit", DataType.STRING, None)),
    )
    back = decode_payload(encode_payload(Payload(metrics=(metric,)))).metrics[0]
    assert back == metric
    assert back.property("Quality") == 192
    assert back.property("missing") is None


@pytest.mark.parametrize(
    ("dtype", "value"), [(DataType.INT8, 128), (DataType.UINT16, -1), (DataType.BOOLEAN, None)]
)
def test_out_of_range_values_are_refused(dtype: DataType, value: Any) -> None:
    if value is None:
        Metric("x", value, dtype)  # a null metric is fine
        return
    with pytest.raises(SparkplugError, match="out of range"):
        encode_payload(Payload(metrics=(Metric("x", value, dtype),)))


def test_malformed_payloads() -> None:
    with pytest.raises(SparkplugError, match="not a Sparkplug"):
        decode_payload(b"\xff\xff\xff")
    cls = message_classes()["Payload"]
    with pytest.raises(SparkplugError, match="out of range"):
        decode_payload(cls(seq=256).SerializeToString())
    bad_type = cls()
    bad_type.metrics.add(name="x", datatype=99)
    with pytest.raises(SparkplugError, match="unknown Sparkplug data type"):
        decode_payload(bad_type.SerializeToString())
    wrong_field = cls()
    wrong_field.metrics.add(name="x", datatype=int(DataType.DOUBLE), string_value="no")
    with pytest.raises(SparkplugError, match="expected double_value"):
        decode_payload(wrong_field.SerializeToString())
    with pytest.raises(SparkplugError, match="multiple"):
        decode_payload(
            encode_payload(
                Payload(metrics=(Metric("a", b"\x01\x02\x03", DataType.BYTES),))
            ).replace(b"\x20\x11", b"\x20\x17")
        )


def test_schema_declares_the_specification_messages() -> None:
    proto = file_descriptor()
    payload = proto.message_type[0]
    nested = {m.name for m in payload.nested_type}
    assert nested == {"Template", "DataSet", "PropertyValue", "PropertySet", "PropertySetList",
                      "MetaData", "Metric"}  # fmt: skip
    metric = next(m for m in payload.nested_type if m.name == "Metric")
    assert [(f.name, f.number) for f in metric.field][:4] == [
        ("name", 1), ("alias", 2), ("timestamp", 3), ("datatype", 4)
    ]  # fmt: skip


@given(
    seq=st.integers(0, 255),
    ts=st.integers(0, 2**63),
    value=st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=20),
    ),
)
def test_property_round_trip(seq: int, ts: int, value: Any) -> None:
    from iinode.connectivity.sparkplug import datatype_for

    metric = Metric("v", value, datatype_for(value), alias=3, timestamp=ts)
    back = decode_payload(encode_payload(Payload(ts, (metric,), seq)))
    assert back.seq == seq
    got = back.metrics[0].value
    assert got == value or (isinstance(value, float) and math.isnan(value))
    assert type(got) is type(value)


@pytest.mark.parametrize("value", [1.1, 3.1415927, 1e-7, 123456.79, -0.3])
def test_float32_values_come_back_as_their_shortest_decimal(value: float) -> None:
    data = encode_payload(Payload(metrics=(Metric("f", value, DataType.FLOAT),)))
    back = decode_payload(data).metrics[0].value
    assert back == value
