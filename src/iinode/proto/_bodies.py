"""Message bodies (RFC 3652 sections 3.2-3.7), one frozen class per layout.

Which class a body has depends on the header: requests by opcode, successful
responses by opcode, other responses by response code (see ``body_type``).
Every class reads from a bounds-checked ``WireReader`` limited to the body and
writes to a ``WireWriter``; construction validates and raises
``LocalProtocolError``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self

from iinode.errors import HandleError, LocalProtocolError, RemoteProtocolError
from iinode.identifiers.site import SiteData
from iinode.identifiers.values import HandleValue
from iinode.identifiers.wire import WireReader, WireWriter
from iinode.proto._envelope import check_uint

#: The smallest encoded handle value (empty type and data, no references).
_MIN_VALUE_BYTES = 26


def _freeze(obj: Any, name: str, kind: type | tuple[type, ...]) -> None:
    """Coerce ``obj.name`` to a tuple whose items are all ``kind``."""
    items = getattr(obj, name)
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise LocalProtocolError(f"{name} must be a sequence")
    frozen = tuple(items)
    for item in frozen:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise LocalProtocolError(f"{name} holds {item!r}, not {kind}")
    object.__setattr__(obj, name, frozen)


def check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise LocalProtocolError(f"{name} must be text, not {type(value).__name__}")


def check_bytes(name: str, value: object) -> None:
    if not isinstance(value, bytes):
        raise LocalProtocolError(f"{name} must be bytes, not {type(value).__name__}")


def _write_indexes(w: WireWriter, indexes: tuple[int, ...]) -> None:
    w.u32(len(indexes))
    for index in indexes:
        w.u32(index)


def _read_indexes(r: WireReader, what: str) -> tuple[int, ...]:
    return tuple(r.u32(what) for _ in range(r.count(what, 4)))


def _write_values(w: WireWriter, values: tuple[HandleValue, ...]) -> None:
    w.u32(len(values))
    for value in values:
        value.write(w)


def _read_values(r: WireReader) -> tuple[HandleValue, ...]:
    return tuple(HandleValue.read(r) for _ in range(r.count("values", _MIN_VALUE_BYTES)))


class Body(abc.ABC):
    """Base of every message body."""

    __slots__ = ()

    @abc.abstractmethod
    def write(self, w: WireWriter) -> None: ...

    @classmethod
    @abc.abstractmethod
    def read(cls, r: WireReader) -> Self: ...

    def to_wire(self) -> bytes:
        w = WireWriter()
        self.write(w)
        return w.getvalue()

    @classmethod
    def from_wire(cls, data: bytes) -> Self:
        r = WireReader(data)
        body = cls.read(r)
        r.expect_end(f"{cls.__name__} body")
        return body


@dataclass(frozen=True, slots=True)
class EmptyBody(Body):
    """No body: the answer to a successful delete, add, remove or modify."""

    def write(self, w: WireWriter) -> None:
        pass

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls()


@dataclass(frozen=True, slots=True)
class OpaqueBody(Body):
    """The raw body of an operation this codec does not know."""

    data: bytes = b""

    def __post_init__(self) -> None:
        check_bytes("opaque body", self.data)

    def write(self, w: WireWriter) -> None:
        w.raw(self.data)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls(r.rest())


@dataclass(frozen=True, slots=True)
class HandleBody(Body):
    """Just a handle: delete-handle, list-handles, list-NAs and session-terminate requests."""

    handle: str

    def __post_init__(self) -> None:
        check_text("handle", self.handle)

    def write(self, w: WireWriter) -> None:
        w.utf8(self.handle)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls(r.utf8("handle"))


@dataclass(frozen=True, slots=True)
class OptionalHandleBody(Body):
    """A handle or nothing: get-siteinfo requests, create-handle answers."""

    handle: str | None = None

    def __post_init__(self) -> None:
        if self.handle is not None:
            check_text("handle", self.handle)

    def write(self, w: WireWriter) -> None:
        if self.handle is not None:
            w.utf8(self.handle)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls(r.utf8("handle") if r.remaining else None)


@dataclass(frozen=True, slots=True)
class ResolutionRequest(Body):
    """Query (s3.2.1): a handle, and the indexes and types wanted (empty means all)."""

    handle: str
    indexes: tuple[int, ...] = ()
    types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_text("handle", self.handle)
        _freeze(self, "indexes", int)
        _freeze(self, "types", str)
        for index in self.indexes:
            check_uint("value index", index, 32)

    def write(self, w: WireWriter) -> None:
        w.utf8(self.handle)
        _write_indexes(w, self.indexes)
        w.u32(len(self.types))
        for t in self.types:
            w.utf8(t)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        handle = r.utf8("handle")
        indexes = _read_indexes(r, "index list")
        types = tuple(r.utf8("type") for _ in range(r.count("type list", 4)))
        return cls(handle, indexes, types)


@dataclass(frozen=True, slots=True)
class _HandleValues(Body):
    """A handle followed by a value list."""

    handle: str
    values: tuple[HandleValue, ...] = ()

    def __post_init__(self) -> None:
        check_text("handle", self.handle)
        _freeze(self, "values", HandleValue)

    def write(self, w: WireWriter) -> None:
        w.utf8(self.handle)
        _write_values(w, self.values)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls(r.utf8("handle"), _read_values(r))


@dataclass(frozen=True, slots=True)
class ValuesRequest(_HandleValues):
    """Create-handle, add-value and modify-value requests (s3.8): a handle and values."""


@dataclass(frozen=True, slots=True)
class ResolutionResponse(_HandleValues):
    """Successful query response (s3.2.2): the handle and the values found."""


@dataclass(frozen=True, slots=True)
class ReferralResponse(_HandleValues):
    """SERVICE_REFERRAL / PREFIX_REFERRAL (s3.4): a service handle and its HS_SITE values."""

    @classmethod
    def read(cls, r: WireReader) -> Self:
        handle = r.utf8("referral handle")
        return cls(handle, _read_values(r) if r.remaining else ())


@dataclass(frozen=True, slots=True)
class RemoveValueRequest(Body):
    """Remove-value request (s3.8.4): a handle and the indexes to remove."""

    handle: str
    indexes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_text("handle", self.handle)
        _freeze(self, "indexes", int)
        for index in self.indexes:
            check_uint("value index", index, 32)

    def write(self, w: WireWriter) -> None:
        w.utf8(self.handle)
        _write_indexes(w, self.indexes)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls(r.utf8("handle"), _read_indexes(r, "index list"))


@dataclass(frozen=True, slots=True)
class ListHandlesResponse(Body):
    """List-handles and list-NAs answers: the handles found."""

    handles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _freeze(self, "handles", str)

    def write(self, w: WireWriter) -> None:
        w.u32(len(self.handles))
        for handle in self.handles:
            w.utf8(handle)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        return cls(tuple(r.utf8("handle") for _ in range(r.count("handles", 4))))


@dataclass(frozen=True, slots=True)
class SiteInfoResponse(Body):
    """Get-siteinfo answer: the HS_SITE data of the responding site."""

    site: SiteData

    def __post_init__(self) -> None:
        if not isinstance(self.site, SiteData):
            raise LocalProtocolError("site must be SiteData")

    def write(self, w: WireWriter) -> None:
        w.raw(self.site.to_wire())

    @classmethod
    def read(cls, r: WireReader) -> Self:
        raw = r.rest()
        try:
            return cls(SiteData.from_wire(raw))
        except RemoteProtocolError:
            raise
        except (HandleError, ValueError) as exc:
            raise RemoteProtocolError(f"site information is invalid: {exc}") from None


@dataclass(frozen=True, slots=True)
class ErrorBody(Body):
    """Error response (s3.3): a message, and optionally the value indexes at fault."""

    message: str = ""
    indexes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_text("error message", self.message)
        _freeze(self, "indexes", int)
        for index in self.indexes:
            check_uint("value index", index, 32)

    def write(self, w: WireWriter) -> None:
        w.utf8(self.message)
        if self.indexes:
            _write_indexes(w, self.indexes)

    @classmethod
    def read(cls, r: WireReader) -> Self:
        if r.remaining == 0:
            return cls()
        message = r.utf8("error message")
        return cls(message, _read_indexes(r, "index list") if r.remaining else ())
