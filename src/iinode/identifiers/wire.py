"""Bounds-checked readers and writers for the Handle wire primitives (RFC 3651 s2).

Integers are big-endian; a UTF8-String and a byte string are a 4-octet length
followed by that many octets.  Every read checks the bounds and raises
``RemoteProtocolError``, the one error a malformed input can cause.
"""

from __future__ import annotations

import struct

from iinode.errors import RemoteProtocolError

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")

#: No single string or byte field inside a message may exceed this.
MAX_FIELD_BYTES = 16 * 1024 * 1024


class WireReader:
    """Reads primitives from a buffer; every read is bounds-checked."""

    __slots__ = ("_buf", "_end", "_pos")

    def __init__(self, data: bytes | memoryview, start: int = 0, end: int | None = None) -> None:
        self._buf = memoryview(data)
        self._pos = start
        self._end = len(self._buf) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0 or self._pos + n > self._end:
            raise RemoteProtocolError(
                f"truncated {what}: need {n} bytes at offset {self._pos}, have {self.remaining}"
            )
        view = self._buf[self._pos : self._pos + n]
        self._pos += n
        return view

    def u8(self, what: str = "octet") -> int:
        return int(_U8.unpack(self._take(1, what))[0])

    def u16(self, what: str = "2-octet integer") -> int:
        return int(_U16.unpack(self._take(2, what))[0])

    def u32(self, what: str = "4-octet integer") -> int:
        return int(_U32.unpack(self._take(4, what))[0])

    def i32(self, what: str = "4-octet integer") -> int:
        return int(_I32.unpack(self._take(4, what))[0])

    def raw(self, n: int, what: str = "bytes") -> bytes:
        return bytes(self._take(n, what))

    def byte_string(self, what: str = "byte string") -> bytes:
        n = self.u32(f"length of {what}")
        if n > MAX_FIELD_BYTES:
            raise RemoteProtocolError(f"{what} claims {n} bytes, more than allowed")
        return bytes(self._take(n, what))

    def utf8(self, what: str = "UTF8-String") -> str:
        data = self.byte_string(what)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"{what} is not valid UTF-8") from None

    def count(self, what: str, min_item_bytes: int = 1) -> int:
        """A 4-octet item count that cannot exceed what the buffer could hold."""
        n = self.u32(f"count of {what}")
        if n * max(min_item_bytes, 1) > self.remaining:
            raise RemoteProtocolError(f"{what} count {n} exceeds the remaining bytes")
        return n

    def rest(self) -> bytes:
        return self.raw(self.remaining, "rest")

    def expect_end(self, what: str) -> None:
        if self._pos != self._end:
            raise RemoteProtocolError(f"{self.remaining} unexpected trailing bytes after {what}")


class WireWriter:
    """Appends primitives to a growing buffer."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, v: int) -> WireWriter:
        self._parts.append(_U8.pack(v))
        return self

    def u16(self, v: int) -> WireWriter:
        self._parts.append(_U16.pack(v))
        return self

    def u32(self, v: int) -> WireWriter:
        self._parts.append(_U32.pack(v))
        return self

    def i32(self, v: int) -> WireWriter:
        self._parts.append(_I32.pack(v))
        return self

    def raw(self, b: bytes) -> WireWriter:
        self._parts.append(b)
        return self

    def byte_string(self, b: bytes) -> WireWriter:
        self._parts.append(_U32.pack(len(b)))
        self._parts.append(b)
        return self

    def utf8(self, s: str) -> WireWriter:
        return self.byte_string(s.encode("utf-8"))

    def getvalue(self) -> bytes:
        return b"".join(self._parts)
