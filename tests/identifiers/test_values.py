import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iinode.errors import RemoteProtocolError, ValueAlreadyExists, ValueInvalid
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    BinaryData,
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    SiteData,
    StringData,
    TTLType,
    UrlData,
    VListData,
    decode_record,
    encode_record,
    record_from_json,
    site_for,
)

# RFC 3651 section 3.1 layout, written out field by field.
GOLDEN_URL_VALUE = (
    b"\x00\x00\x00\x01"  # index 1
    b"\x5f\x5e\x10\x00"  # timestamp 1600000000
    b"\x00"  # TTL type: relative
    b"\x00\x01\x51\x80"  # TTL 86400
    b"\x0e"  # permissions: admin read, admin write, public read
    b"\x00\x00\x00\x03URL"  # type
    b"\x00\x00\x00\x12http://example.cn/"  # data
    b"\x00\x00\x00\x00"  # no references
)

# RFC 3651 section 3.2.1: permissions, admin handle, admin index.
GOLDEN_ADMIN_DATA = b"\x0f\xff\x00\x00\x00\x0d0.NA/88.118.8\x00\x00\x00\xc8"


def test_golden_url_value() -> None:
    value = HandleValue(1, "URL", UrlData("http://example.cn/"), timestamp=1_600_000_000)
    assert value.to_wire() == GOLDEN_URL_VALUE
    assert HandleValue.from_wire(GOLDEN_URL_VALUE) == value


def test_golden_value_with_references_and_an_odd_type() -> None:
    value = HandleValue(
        7,
        "é",
        StringData("d"),
        ttl=-5,
        ttl_type=TTLType.ABSOLUTE,
        timestamp=9,
        permissions=Permissions.ADMIN_READ,
        references=(
            IndexedHandle(300, HandleName.parse("0.NA/88.1")),
            IndexedHandle(2, HandleName.parse("88.1/x")),
        ),
    )
    expected = (
        b"\x00\x00\x00\x07"  # index 7
        b"\x00\x00\x00\x09"  # timestamp 9
        b"\x01"  # TTL type: absolute
        b"\xff\xff\xff\xfb"  # TTL -5
        b"\x08"  # permissions: admin read
        b"\x00\x00\x00\x02\xc3\xa9"  # type, UTF-8
        b"\x00\x00\x00\x01d"  # data
        b"\x00\x00\x00\x02"  # two references
        b"\x00\x00\x00\x090.NA/88.1\x00\x00\x01\x2c"
        b"\x00\x00\x00\x0688.1/x\x00\x00\x00\x02"
    )
    assert value.to_wire() == expected
    assert HandleValue.from_wire(expected) == value
    assert encode_record([value]) == b"\x00\x00\x00\x01" + expected


def test_golden_admin_data() -> None:
    admin = AdminData(AdminPermission.all(), IndexedHandle.parse("200:0.NA/88.118.8"))
    assert admin.to_wire() == GOLDEN_ADMIN_DATA
    assert AdminData.from_wire(GOLDEN_ADMIN_DATA) == admin


def test_admin_permission_bits_follow_handle_net_order() -> None:
    perms = AdminPermission.from_bits("011111110011")
    assert AdminPermission.LIST_HANDLES not in perms
    assert AdminPermission.ADD_HANDLE in perms
    assert AdminPermission.DELETE_HANDLE in perms
    assert AdminPermission.ADD_NA not in perms
    assert AdminPermission.DELETE_NA not in perms
    assert AdminPermission.READ_VALUE in perms
    assert perms.to_bits() == "011111110011"


# Bit i of the wire mask is AdminRecord.perms[i] in the Handle.Net library and the
# RFC 3651 order; the REST string lists perms[11] .. perms[0].
HANDLE_NET_ORDER = [
    AdminPermission.ADD_HANDLE,
    AdminPermission.DELETE_HANDLE,
    AdminPermission.ADD_NA,
    AdminPermission.DELETE_NA,
    AdminPermission.MODIFY_VALUE,
    AdminPermission.REMOVE_VALUE,
    AdminPermission.ADD_VALUE,
    AdminPermission.MODIFY_ADMIN,
    AdminPermission.REMOVE_ADMIN,
    AdminPermission.ADD_ADMIN,
    AdminPermission.READ_VALUE,
    AdminPermission.LIST_HANDLES,
]


@pytest.mark.parametrize(("position", "permission"), list(enumerate(HANDLE_NET_ORDER)))
def test_each_permission_on_the_wire_and_in_rest(
    position: int, permission: AdminPermission
) -> None:
    assert int(permission) == 1 << position
    bits = permission.to_bits()
    assert bits == "".join("1" if 11 - c == position else "0" for c in range(12))
    assert AdminPermission.from_bits(bits) == permission
    wire = AdminData(permission, IndexedHandle.parse("300:0.NA/88")).to_wire()
    assert wire[:2] == (1 << position).to_bytes(2, "big")


def test_handle_net_default_admin_on_the_wire() -> None:
    # The Handle.Net admin tool's default HS_ADMIN: all but LIST_HANDLES, ADD_NA, DELETE_NA.
    default = AdminPermission.all() & ~(
        AdminPermission.LIST_HANDLES | AdminPermission.ADD_NA | AdminPermission.DELETE_NA
    )
    admin = AdminData(default, IndexedHandle.parse("200:0.NA/88.118.8"))
    assert admin.to_wire()[:2] == b"\x07\xf3"
    assert default.to_bits() == "011111110011"
    assert AdminData.from_wire(admin.to_wire()).permissions == default


def test_permission_forms_handle_net_accepts() -> None:
    # Short strings are aligned on ADD_HANDLE, like the Handle.Net server reads them.
    assert AdminPermission.from_bits("11") == (
        AdminPermission.ADD_HANDLE | AdminPermission.DELETE_HANDLE
    )
    assert AdminPermission.from_bits("*") == AdminPermission.all()

    def perms(p: object) -> AdminPermission:
        return AdminData.from_json(
            {"format": "admin", "value": {"handle": "0.NA/88", "index": 300, "permissions": p}}
        ).permissions

    assert perms(True) == AdminPermission.all()
    assert perms(False) == AdminPermission(0)
    assert perms(0x07F3) == AdminPermission.from_bits("011111110011")
    for bad in ("0123", "1" * 13, "", [1, 0], 0x1000, -1):
        with pytest.raises(ValueInvalid):
            perms(bad)


def test_json_shapes_match_handle_net() -> None:
    value = HandleValue(
        100, "HS_ADMIN", AdminData(AdminPermission.all(), IndexedHandle.parse("300:0.NA/88"))
    )
    assert value.to_json()["data"] == {
        "format": "admin",
        "value": {"handle": "0.NA/88", "index": 300, "permissions": "111111111111"},
    }
    vlist = VListData((IndexedHandle.parse("300:0.NA/88"),))
    assert vlist.to_json() == {"format": "vlist", "value": [{"handle": "0.NA/88", "index": 300}]}
    assert HandleValue(2, "X", BinaryData(b"\xff\x00")).to_json()["data"] == {
        "format": "base64",
        "value": "/wA=",
    }


def test_pyhandle_style_values_parse() -> None:
    record = record_from_json(
        [
            {"index": 1, "type": "URL", "data": "http://x.cn/a"},
            {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin",
             "value": {"index": "200", "handle": "0.NA/88.1", "permissions": "011111110011"}}},
            {"index": 2, "type": "BLOB", "data": {"format": "hex", "value": "00ff"}},
        ]
    )  # fmt: skip
    assert [v.index for v in record] == [1, 2, 100]
    assert record[1].data == BinaryData(b"\x00\xff")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"index": 1, "type": "URL", "data": "not a url"}], "absolute URL"),
        ([{"index": 1, "type": "EMAIL", "data": "nobody"}], "e-mail"),
        (
            [{"index": 1, "type": "X", "data": {"format": "rot13", "value": "x"}}],
            "unknown data format",
        ),
        ([{"index": 0, "type": "X", "data": "a"}], "out of range"),
        ([{"type": "X", "data": "a"}], "no 'index'"),
        ([{"index": 1, "type": "X", "data": "x" * (256 * 1024 + 1)}], "larger than"),
        ([{"index": 1, "type": "HS_ALIAS", "data": "nohandle"}], "must name a handle"),
        ({"values": []}, "must be a list"),
    ],
)
def test_bad_values_are_refused(items: object, message: str) -> None:
    with pytest.raises(ValueInvalid, match=message):
        record_from_json(items)


def test_duplicate_indexes_are_refused() -> None:
    with pytest.raises(ValueAlreadyExists):
        record_from_json(
            [{"index": 1, "type": "A", "data": "a"}, {"index": 1, "type": "B", "data": "b"}]
        )


def test_site_round_trip() -> None:
    site = site_for("10.1.2.3", http_port=8000, handle_port=2641, description="Jiangsu")
    assert SiteData.from_wire(site.to_wire()) == site
    assert SiteData.from_json(site.to_json()) == site
    assert site.http_urls() == ["http://10.1.2.3:8000"]


values_strategy = st.builds(
    HandleValue,
    index=st.integers(1, 2**31 - 1),
    type=st.sampled_from(["URL", "DESC", "BLOB", "10320/loc"]),
    data=st.one_of(
        st.builds(UrlData, st.sampled_from(["http://a.cn/x", "https://b.example/y?z=1"])),
        st.builds(StringData, st.text(max_size=40)),
        st.builds(BinaryData, st.binary(max_size=40).filter(lambda b: not _is_text(b))),
    ),
    ttl=st.integers(-(2**31), 2**31 - 1),
    ttl_type=st.sampled_from(TTLType),
    timestamp=st.integers(0, 2**32 - 1),
    permissions=st.builds(Permissions, st.integers(0, 15)),
    references=st.lists(
        st.builds(IndexedHandle, st.integers(1, 1000), st.just(HandleName.parse("88.1/ref"))),
        max_size=2,
    ).map(tuple),
)


def _is_text(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(st.lists(values_strategy, max_size=5, unique_by=lambda v: v.index))
def test_record_wire_round_trip(values: list[HandleValue]) -> None:
    data_types_ok = [v for v in values if not (v.type == "URL" and not isinstance(v.data, UrlData))]
    record = tuple(data_types_ok)
    decoded = decode_record(encode_record(record))
    assert [v.to_wire() for v in decoded] == [v.to_wire() for v in record]


@given(st.binary(max_size=200))
def test_decoder_never_raises_anything_else(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_record(data)


def test_truncated_record_is_a_protocol_error() -> None:
    raw = encode_record((HandleValue(1, "URL", UrlData("http://a.cn/")),))
    for cut in range(len(raw)):
        with pytest.raises(RemoteProtocolError):
            decode_record(raw[:cut])
    assert base64.b64encode(raw)
