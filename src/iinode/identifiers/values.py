"""Handle values and records (RFC 3651 section 3.1).

A ``HandleValue`` is one typed entry of a handle record: index, type, data,
TTL, timestamp, the four permission bits and references.  A record is a tuple
of values with distinct indexes.  Both have a wire form (the RFC's encoding,
which is also how stores keep records) and a JSON form (the Handle.Net REST
API's).
"""

from __future__ import annotations

import enum
import itertools
import re
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from iinode.errors import InvalidHandle, RemoteProtocolError, ValueAlreadyExists, ValueInvalid
from iinode.identifiers.data import (
    AdminData,
    AliasData,
    BinaryData,
    EmailData,
    JsonData,
    PubKeyData,
    SecKeyData,
    ServData,
    StringData,
    UrlData,
    ValueData,
    VListData,
)
from iinode.identifiers.names import HandleName, IndexedHandle
from iinode.identifiers.site import SiteData
from iinode.identifiers.wire import WireReader, WireWriter

#: Largest data of a single value, in bytes.
MAX_VALUE_BYTES = 256 * 1024
#: Default TTL (seconds) of new values, as Handle.Net uses.
DEFAULT_TTL = 86400

#: The registry: value type -> data class.  Types not listed hold plain data.
VALUE_TYPES: dict[str, type[ValueData]] = {
    "URL": UrlData,
    "EMAIL": EmailData,
    "HS_ADMIN": AdminData,
    "HS_SITE": SiteData,
    "HS_SITE.PREFIX": SiteData,
    "HS_SERV": ServData,
    "HS_SERV.PREFIX": ServData,
    "HS_VLIST": VListData,
    "HS_SECKEY": SecKeyData,
    "HS_PUBKEY": PubKeyData,
    "HS_ALIAS": AliasData,
}


#: A value's head: index, timestamp, TTL type, TTL, permissions, the type string
#: (length, bytes) and the data's length; one ``pack`` per length of the type string.
_HEADS: dict[int, struct.Struct] = {}
_NO_REFERENCES = b"\x00\x00\x00\x00"


def _head(type_size: int) -> struct.Struct:
    head = _HEADS[type_size] = struct.Struct(f">IIBiBI{type_size}sI")
    return head


class TTLType(enum.IntEnum):
    RELATIVE = 0
    ABSOLUTE = 1


class Permissions(enum.IntFlag):
    """Per-value access bits (RFC 3651 section 3.1)."""

    PUBLIC_WRITE = 0x01
    PUBLIC_READ = 0x02
    ADMIN_WRITE = 0x04
    ADMIN_READ = 0x08

    @classmethod
    def default(cls) -> Permissions:
        return cls.ADMIN_READ | cls.ADMIN_WRITE | cls.PUBLIC_READ

    @classmethod
    def from_bits(cls, text: str) -> Permissions:
        """The REST form: four characters adminRead adminWrite publicRead publicWrite."""
        if len(text) != 4 or set(text) - {"0", "1"}:
            raise ValueInvalid(f"permissions {text!r} must be four characters of 0/1")
        return cls(int(text, 2))

    def to_bits(self) -> str:
        return format(int(self), "04b")


_DEFAULT_PERMISSIONS = Permissions.default()
_CONTROL = re.compile(r"[\x00-\x1f]")
#: Value type strings already found valid (a node sees few distinct ones), so
#: building a value checks its type once per process, not once per value.
_VALID_TYPES: set[str] = set()
_VALID_TYPES_KEPT = 4096


def _check_type(vtype: object) -> None:
    """Raise ``ValueInvalid`` unless ``vtype`` is a valid value type; remember it if so."""
    if not isinstance(vtype, str) or len(vtype.encode()) > 1024:
        raise ValueInvalid("value type must be text of at most 1024 bytes")
    if _CONTROL.search(vtype):
        raise ValueInvalid(f"value type {vtype!r} contains a control character")
    if vtype.__class__ is str and len(_VALID_TYPES) < _VALID_TYPES_KEPT:
        _VALID_TYPES.add(vtype)


def data_class_for(value_type: str) -> type[ValueData] | None:
    return VALUE_TYPES.get(value_type.upper())


def decode_data(value_type: str, raw: bytes) -> ValueData:
    """Wire bytes of ``value_type`` -> typed data (plain text or bytes if untyped)."""
    cls = data_class_for(value_type)
    if cls is not None:
        return cls.from_wire(raw)
    try:
        return StringData(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return BinaryData(raw)


def data_from_json(value_type: str, data: Any) -> ValueData:
    cls = data_class_for(value_type)
    if cls is not None:
        return cls.from_json(data)
    fmt = data.get("format", "string") if isinstance(data, dict) else "string"
    if fmt in ("base64", "hex"):
        return BinaryData.from_json(data)
    if fmt == "string":
        return StringData.from_json(data)
    raise ValueInvalid(f"unknown data format {fmt!r} for type {value_type!r}")


@dataclass(frozen=True, slots=True)
class HandleValue:
    index: int
    type: str
    data: ValueData
    ttl: int = DEFAULT_TTL
    ttl_type: TTLType = TTLType.RELATIVE
    timestamp: int = 0
    permissions: Permissions = _DEFAULT_PERMISSIONS
    references: tuple[IndexedHandle, ...] = ()

    def __post_init__(self) -> None:
        index = self.index
        if not isinstance(index, int) or not 0 < index < 2**31:
            raise ValueInvalid(f"value index {index!r} is out of range 1..2147483647")
        vtype = self.type
        if vtype.__class__ is not str or vtype not in _VALID_TYPES:
            _check_type(vtype)
        if not -(2**31) <= self.ttl < 2**31:
            raise ValueInvalid(f"TTL {self.ttl} is out of range")
        if not 0 <= self.timestamp < 2**32:
            raise ValueInvalid(f"timestamp {self.timestamp} is out of range")

    @property
    def data_bytes(self) -> bytes:
        return self.data.to_wire()

    @property
    def publicly_readable(self) -> bool:
        return bool(self.permissions & Permissions.PUBLIC_READ)

    def stamped(self, when: int | None = None) -> HandleValue:
        return replace(self, timestamp=int(time.time()) if when is None else when)

    # -- wire ------------------------------------------------------------------
    def write(self, w: WireWriter, stamp: int | None = None) -> None:
        """Append the wire form; ``stamp`` overrides the timestamp."""
        data = self.data.to_wire()
        vtype = self.type.encode("utf-8")
        ts = self.timestamp if stamp is None else stamp
        size = len(vtype)
        head = _HEADS.get(size) or _head(size)
        w.raw(head.pack(self.index, ts, self.ttl_type, self.ttl, self.permissions, size, vtype,
                        len(data))).raw(data)  # fmt: skip
        if not self.references:
            w.raw(_NO_REFERENCES)
            return
        w.u32(len(self.references))
        for ref in self.references:
            w.utf8(str(ref.handle)).u32(ref.index)

    def to_wire(self) -> bytes:
        w = WireWriter()
        self.write(w)
        return w.getvalue()

    @classmethod
    def read(cls, r: WireReader) -> HandleValue:
        index = r.u32("value index")
        timestamp = r.u32("value timestamp")
        ttl_type = r.u8("TTL type")
        ttl = r.i32("TTL")
        perms = r.u8("value permissions")
        vtype = r.utf8("value type")
        data = r.byte_string("value data")
        refs = []
        for _ in range(r.count("references", 8)):
            ref_handle = r.utf8("reference handle")
            ref_index = r.u32("reference index")
            try:
                refs.append(IndexedHandle(ref_index, HandleName.parse(ref_handle)))
            except InvalidHandle as exc:
                raise RemoteProtocolError(f"reference is invalid: {exc.message}") from None
        if ttl_type > 1:
            raise RemoteProtocolError(f"unknown TTL type {ttl_type}")
        try:
            return cls(
                index, vtype, decode_data(vtype, data), ttl, TTLType(ttl_type), timestamp,
                Permissions(perms & 0x0F), tuple(refs),
            )  # fmt: skip
        except ValueInvalid as exc:
            raise RemoteProtocolError(f"value {index} is invalid: {exc.message}") from None

    @classmethod
    def from_wire(cls, raw: bytes) -> HandleValue:
        r = WireReader(raw)
        value = cls.read(r)
        r.expect_end("handle value")
        return value

    # -- JSON --------------------------------------------------------------------
    def to_json(self) -> JsonData:
        out: JsonData = {
            "index": self.index,
            "type": self.type,
            "data": self.data.to_json(),
            "ttl": self.ttl,
            "timestamp": format_timestamp(self.timestamp),
        }
        if self.ttl_type is TTLType.ABSOLUTE:
            out["ttlType"] = 1
        if self.permissions != Permissions.default():
            out["permissions"] = self.permissions.to_bits()
        if self.references:
            out["references"] = [
                {"handle": str(r.handle), "index": r.index} for r in self.references
            ]
        return out

    @classmethod
    def from_json(cls, obj: Any) -> HandleValue:
        if not isinstance(obj, Mapping):
            raise ValueInvalid("each value must be a JSON object")
        try:
            index = int(obj["index"])
        except KeyError:
            raise ValueInvalid("value has no 'index'") from None
        except (TypeError, ValueError):
            raise ValueInvalid(f"value index {obj.get('index')!r} is not an integer") from None
        vtype = obj.get("type")
        if not isinstance(vtype, str):
            raise ValueInvalid(f"value {index} has no string 'type'")
        if "data" not in obj:
            raise ValueInvalid(f"value {index} has no 'data'")
        data = data_from_json(vtype, obj["data"])
        if len(data.to_wire()) > MAX_VALUE_BYTES:
            raise ValueInvalid(f"value {index} data is larger than {MAX_VALUE_BYTES} bytes")
        try:
            ttl = int(obj.get("ttl", DEFAULT_TTL))
            ttl_type = TTLType(int(obj.get("ttlType", 0)))
        except (TypeError, ValueError):
            raise ValueInvalid(f"value {index} has an invalid ttl or ttlType") from None
        perms_text = obj.get("permissions")
        if perms_text is None:
            perms = Permissions.default()
        elif isinstance(perms_text, str):
            perms = Permissions.from_bits(perms_text)
        else:
            raise ValueInvalid(f"value {index} permissions must be a string like '1110'")
        refs = []
        for ref in obj.get("references") or ():
            try:
                refs.append(IndexedHandle(int(ref["index"]), HandleName.parse(str(ref["handle"]))))
            except (KeyError, TypeError, ValueError):
                raise ValueInvalid(f"value {index} has a malformed reference") from None
            except InvalidHandle as exc:
                raise ValueInvalid(f"value {index} reference: {exc.message}") from None
        timestamp = parse_timestamp(obj.get("timestamp"))
        return cls(index, vtype, data, ttl, ttl_type, timestamp, perms, tuple(refs))


def format_timestamp(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(raw: Any) -> int:
    """ISO 8601 text or epoch seconds; missing means 0 (the server stamps it)."""
    if raw is None:
        return 0
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp())
        except ValueError:
            pass
    raise ValueInvalid(f"timestamp {raw!r} is not ISO 8601 or epoch seconds")


# -- records -------------------------------------------------------------------
Record = tuple[HandleValue, ...]


def check_record(values: Iterable[HandleValue]) -> Record:
    """Sort by index and reject duplicate indexes."""
    record = tuple(sorted(values, key=lambda v: v.index))
    for a, b in itertools.pairwise(record):
        if a.index == b.index:
            raise ValueAlreadyExists(f"index {a.index} appears more than once")
    return record


def encode_record(values: Sequence[HandleValue]) -> bytes:
    """A record as ``count`` followed by each value's wire form."""
    w = WireWriter().u32(len(values))
    for v in values:
        v.write(w)
    return w.getvalue()


def decode_record(raw: bytes) -> Record:
    r = WireReader(raw)
    n = r.count("values", 26)
    values = tuple(HandleValue.read(r) for _ in range(n))
    r.expect_end("record")
    return values


def record_from_json(items: Any) -> Record:
    if not isinstance(items, list):
        raise ValueInvalid("'values' must be a list")
    return check_record(HandleValue.from_json(item) for item in items)
