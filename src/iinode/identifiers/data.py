"""Typed handle value data: one class per value type, found through a registry.

Every class is immutable, validates on construction and converts both ways:
``to_wire``/``from_wire`` (RFC 3651 section 3) and ``to_json``/``from_json``
(the ``data`` object of the Handle.Net REST API: ``{"format", "value"}``).
Malformed input raises ``ValueInvalid`` (JSON) or ``RemoteProtocolError`` (wire).
"""

from __future__ import annotations

import abc
import base64
import binascii
import enum
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from iinode.errors import InvalidHandle, RemoteProtocolError, ValueInvalid
from iinode.identifiers.names import HandleName, IndexedHandle
from iinode.identifiers.wire import WireReader, WireWriter

JsonData = dict[str, Any]


class AdminPermission(enum.IntFlag):
    """The twelve HS_ADMIN permission bits, as they travel in the 2-octet field.

    RFC 3651 section 3.2.1 and the Handle.Net software (``Encoder.PERM_*`` on
    the wire, ``AdminRecord`` array positions) agree: bit ``i`` is permission
    ``i`` below.  The REST form is the same mask as 12 binary digits, most
    significant first, so its first character is LIST_HANDLES and its last
    ADD_HANDLE; the usual default ``011111110011`` grants everything except
    LIST_HANDLES, ADD_NA and DELETE_NA.
    """

    ADD_HANDLE = 0x0001
    DELETE_HANDLE = 0x0002
    ADD_NA = 0x0004
    DELETE_NA = 0x0008
    MODIFY_VALUE = 0x0010
    REMOVE_VALUE = 0x0020
    ADD_VALUE = 0x0040
    MODIFY_ADMIN = 0x0080
    REMOVE_ADMIN = 0x0100
    ADD_ADMIN = 0x0200
    READ_VALUE = 0x0400
    LIST_HANDLES = 0x0800

    @classmethod
    def all(cls) -> AdminPermission:
        return cls(0x0FFF)

    @classmethod
    def from_bits(cls, text: str) -> AdminPermission:
        """Parse the REST form: up to 12 characters of 0/1, LIST_HANDLES first.

        A shorter string is aligned on its last character (ADD_HANDLE), as the
        Handle.Net server reads it; ``"*"`` means every permission.
        """
        if text == "*":
            return cls.all()
        if len(text) > 12 or not text or set(text) - {"0", "1"}:
            raise ValueInvalid(f"admin permissions {text!r} must be up to 12 characters of 0/1")
        return cls(int(text, 2))

    def to_bits(self) -> str:
        return format(int(self), "012b")


class ValueData(abc.ABC):
    """Base of all value data types."""

    __slots__ = ()
    format: ClassVar[str] = "string"

    @abc.abstractmethod
    def to_wire(self) -> bytes: ...

    @abc.abstractmethod
    def to_json(self) -> JsonData: ...

    @classmethod
    @abc.abstractmethod
    def from_wire(cls, raw: bytes) -> Self: ...

    @classmethod
    @abc.abstractmethod
    def from_json(cls, data: Any) -> Self: ...


def _json_bytes(data: Any, kind: str) -> bytes:
    """Decode ``{"format": string|base64|hex, "value": ...}`` or a bare string."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if not isinstance(data, dict) or "value" not in data:
        raise ValueInvalid(f"{kind} data must be a string or an object with 'format' and 'value'")
    fmt = data.get("format", "string")
    value = data["value"]
    if not isinstance(value, str):
        raise ValueInvalid(f"{kind} data value must be a string for format {fmt!r}")
    if fmt == "string":
        return value.encode("utf-8")
    if fmt == "base64":
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueInvalid(f"{kind} data is not valid base64") from None
    if fmt == "hex":
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise ValueInvalid(f"{kind} data is not valid hex") from None
    raise ValueInvalid(f"unknown data format {fmt!r} for {kind}")


@dataclass(frozen=True, slots=True)
class BinaryData(ValueData):
    """Opaque bytes; rendered as ``base64`` in JSON."""

    raw: bytes
    format: ClassVar[str] = "base64"

    def to_wire(self) -> bytes:
        return self.raw

    def to_json(self) -> JsonData:
        return {"format": "base64", "value": base64.b64encode(self.raw).decode("ascii")}

    @classmethod
    def from_wire(cls, raw: bytes) -> Self:
        return cls(bytes(raw))

    @classmethod
    def from_json(cls, data: Any) -> Self:
        return cls(_json_bytes(data, "binary"))


@dataclass(frozen=True, slots=True)
class StringData(ValueData):
    """UTF-8 text; subclasses add a validation rule."""

    text: str
    kind: ClassVar[str] = "string"

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueInvalid(f"{self.kind} data must be text")
        self.check()

    def check(self) -> None:
        """Raise ``ValueInvalid`` if the text is not valid for this type."""

    def to_wire(self) -> bytes:
        return self.text.encode("utf-8")

    def to_json(self) -> JsonData:
        return {"format": "string", "value": self.text}

    @classmethod
    def from_wire(cls, raw: bytes) -> Self:
        try:
            return cls(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"{cls.kind} data is not UTF-8") from None

    @classmethod
    def from_json(cls, data: Any) -> Self:
        raw = _json_bytes(data, cls.kind)
        try:
            return cls(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueInvalid(f"{cls.kind} data is not UTF-8 text") from None


_SPACE = re.compile(r"\s")


#: ``scheme://host…`` with no white space or brackets: certainly absolute.
_PLAIN_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#\[\]]+[^\s\[\]]*\Z")


class UrlData(StringData):
    kind = "URL"

    def check(self) -> None:
        text = self.text
        if _PLAIN_URL.match(text):  # the common case, without building a SplitResult
            return
        try:
            parts = urlsplit(text)
        except ValueError:  # e.g. an unbalanced IPv6 bracket
            parts = None
        if parts is None or not parts.scheme or not (parts.netloc or parts.path):
            raise ValueInvalid(f"URL data {text!r} is not an absolute URL")
        if _SPACE.search(text):
            raise ValueInvalid(f"URL data {text!r} is not an absolute URL")


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\Z")


class EmailData(StringData):
    kind = "EMAIL"

    def check(self) -> None:
        if not _EMAIL.match(self.text):
            raise ValueInvalid(f"EMAIL data {self.text!r} is not an e-mail address")


class _HandleRefData(StringData):
    def check(self) -> None:
        try:
            HandleName.parse(self.text)
        except InvalidHandle as exc:
            raise ValueInvalid(f"{self.kind} data must name a handle: {exc.message}") from None


class AliasData(_HandleRefData):
    """HS_ALIAS: the handle this one is an alias of."""

    kind = "HS_ALIAS"


class ServData(_HandleRefData):
    """HS_SERV: the service handle whose HS_SITE values serve a prefix."""

    kind = "HS_SERV"


@dataclass(frozen=True, slots=True)
class SecKeyData(ValueData):
    """HS_SECKEY: a secret key, or (as iinode stores it) its salted hash."""

    raw: bytes

    def to_wire(self) -> bytes:
        return self.raw

    def to_json(self) -> JsonData:
        try:
            return {"format": "string", "value": self.raw.decode("utf-8")}
        except UnicodeDecodeError:
            return {"format": "base64", "value": base64.b64encode(self.raw).decode("ascii")}

    @classmethod
    def from_wire(cls, raw: bytes) -> Self:
        return cls(bytes(raw))

    @classmethod
    def from_json(cls, data: Any) -> Self:
        return cls(_json_bytes(data, "HS_SECKEY"))


@dataclass(frozen=True, slots=True)
class PubKeyData(ValueData):
    """HS_PUBKEY: a public key record (RFC 3651 section 3.2.4), kept as its wire bytes."""

    raw: bytes
    format: ClassVar[str] = "key"

    @property
    def key_type(self) -> str:
        return WireReader(self.raw).utf8("public key type")

    def to_wire(self) -> bytes:
        return self.raw

    def to_json(self) -> JsonData:
        return {"format": "key", "value": base64.b64encode(self.raw).decode("ascii")}

    @classmethod
    def from_wire(cls, raw: bytes) -> Self:
        WireReader(raw).utf8("public key type")
        return cls(bytes(raw))

    @classmethod
    def from_json(cls, data: Any) -> Self:
        if isinstance(data, dict) and data.get("format") == "key":
            data = {"format": "base64", "value": data.get("value")}
        raw = _json_bytes(data, "HS_PUBKEY")
        try:
            return cls.from_wire(raw)
        except RemoteProtocolError as exc:
            raise ValueInvalid(
                f"HS_PUBKEY data is not a public key record: {exc.message}"
            ) from None


@dataclass(frozen=True, slots=True)
class AdminData(ValueData):
    """HS_ADMIN: who may administer the handle, and which operations they may do."""

    permissions: AdminPermission
    admin: IndexedHandle
    format: ClassVar[str] = "admin"

    def to_wire(self) -> bytes:
        w = WireWriter().u16(int(self.permissions)).utf8(str(self.admin.handle))
        return w.u32(self.admin.index).getvalue()

    def to_json(self) -> JsonData:
        return {
            "format": "admin",
            "value": {
                "handle": str(self.admin.handle),
                "index": self.admin.index,
                "permissions": self.permissions.to_bits(),
            },
        }

    @classmethod
    def from_wire(cls, raw: bytes) -> Self:
        r = WireReader(raw)
        perms = r.u16("admin permissions")
        handle = r.utf8("admin handle")
        index = r.u32("admin index")
        r.expect_end("HS_ADMIN")
        try:
            return cls(
                AdminPermission(perms & 0x0FFF), IndexedHandle(index, HandleName.parse(handle))
            )
        except InvalidHandle as exc:
            raise RemoteProtocolError(f"HS_ADMIN names an invalid handle: {exc.message}") from None

    @classmethod
    def from_json(cls, data: Any) -> Self:
        if not isinstance(data, dict) or data.get("format", "admin") != "admin":
            raise ValueInvalid("HS_ADMIN data must have format 'admin'")
        value = data.get("value")
        if not isinstance(value, dict):
            raise ValueInvalid("HS_ADMIN value must be an object with handle, index, permissions")
        try:
            index = int(value.get("index", 200))
        except (TypeError, ValueError):
            raise ValueInvalid("HS_ADMIN index must be an integer") from None
        if not 0 < index < 2**31:
            raise ValueInvalid(f"HS_ADMIN index {index} is out of range")
        perms = value.get("permissions", "011111110011")
        if isinstance(perms, bool):  # Handle.Net reads true/false as all/none
            perms = "*" if perms else "0"
        elif isinstance(perms, int) and 0 <= perms <= 0x0FFF:  # the wire mask as a number
            perms = format(perms, "b")
        if not isinstance(perms, str):
            raise ValueInvalid("HS_ADMIN permissions must be a string of 0/1")
        try:
            handle = HandleName.parse(str(value.get("handle", "")))
        except InvalidHandle as exc:
            raise ValueInvalid(f"HS_ADMIN handle is invalid: {exc.message}") from None
        return cls(AdminPermission.from_bits(perms), IndexedHandle(index, handle))


@dataclass(frozen=True, slots=True)
class VListData(ValueData):
    """HS_VLIST: a list of ``index:handle`` references (a group of identities)."""

    refs: tuple[IndexedHandle, ...]
    format: ClassVar[str] = "vlist"

    def to_wire(self) -> bytes:
        w = WireWriter().u32(len(self.refs))
        for ref in self.refs:
            w.utf8(str(ref.handle)).u32(ref.index)
        return w.getvalue()

    def to_json(self) -> JsonData:
        return {
            "format": "vlist",
            "value": [{"handle": str(r.handle), "index": r.index} for r in self.refs],
        }

    @classmethod
    def from_wire(cls, raw: bytes) -> Self:
        r = WireReader(raw)
        n = r.count("HS_VLIST references", 8)
        refs = []
        for _ in range(n):
            handle = r.utf8("HS_VLIST handle")
            index = r.u32("HS_VLIST index")
            try:
                refs.append(IndexedHandle(index, HandleName.parse(handle)))
            except InvalidHandle as exc:
                raise RemoteProtocolError(
                    f"HS_VLIST names an invalid handle: {exc.message}"
                ) from None
        r.expect_end("HS_VLIST")
        return cls(tuple(refs))

    @classmethod
    def from_json(cls, data: Any) -> Self:
        if not isinstance(data, dict) or data.get("format", "vlist") != "vlist":
            raise ValueInvalid("HS_VLIST data must have format 'vlist'")
        items = data.get("value")
        if not isinstance(items, list):
            raise ValueInvalid("HS_VLIST value must be a list of {handle, index}")
        refs = []
        for item in items:
            if not isinstance(item, dict):
                raise ValueInvalid("HS_VLIST entries must be objects with handle and index")
            try:
                refs.append(
                    IndexedHandle(int(item["index"]), HandleName.parse(str(item["handle"])))
                )
            except (KeyError, TypeError, ValueError):
                raise ValueInvalid("HS_VLIST entries need a handle and an integer index") from None
            except InvalidHandle as exc:
                raise ValueInvalid(f"HS_VLIST handle is invalid: {exc.message}") from None
        return cls(tuple(refs))
