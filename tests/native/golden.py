"""Requests and response parsing written from the RFC 3652 field layouts, not from iinode.proto."""

from __future__ import annotations

import socket
import struct
import time


def utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">I", len(raw)) + raw


def resolution_request(handle: str, request_id: int, *, types: tuple[str, ...] = ()) -> bytes:
    body = utf8(handle) + struct.pack(">I", 0) + struct.pack(">I", len(types))
    body += b"".join(utf8(t) for t in types)
    # header: opcode 1, response code 0, op flags 0, serial 0, recursion 0, reserved, expiration
    header = struct.pack(">IIIHBBII", 1, 0, 0, 0, 0, 0, 0, len(body))
    payload = header + body + struct.pack(">I", 0)  # no credential
    envelope = struct.pack(">BBHIIII", 2, 1, 0, 0, request_id, 0, len(payload))
    return envelope + payload


#: Op flags (RFC 3652 s2.2.2.3, bit 0 the most significant).
AT, CT, ENC, REC, CA, CN, KA, PO, RD, DNRF = (
    1 << 31,
    1 << 30,
    1 << 29,
    1 << 28,
    1 << 27,
    1 << 26,
    1 << 25,
    1 << 24,
    1 << 23,
    1 << 20,
)
#: What a Handle.Net 9 HandleResolver sets on a resolution.
STOCK_FLAGS = REC | CA | PO


def stock_request(
    handle: str,
    request_id: int,
    *,
    version: tuple[int, int] = (2, 10),
    suggested: tuple[int, int] | None = (2, 11),
    flags: int = STOCK_FLAGS,
    expiration: int | None = None,
    serial: int = 1,
    session: int = 0,
) -> bytes:
    """A resolution request as a Handle.Net 9 client writes it: the suggested version in
    the MessageFlag (major in the low two bits of its first octet, minor in its second),
    the site's serial, ExpirationTime now + 12 hours."""
    if expiration is None:
        expiration = int(time.time()) + 43_200
    body = utf8(handle) + struct.pack(">II", 0, 0)
    header = struct.pack(">IIIHBBII", 1, 0, flags, serial, 0, 0, expiration, len(body))
    payload = header + body + struct.pack(">I", 0)
    message_flag = 0 if suggested is None else suggested[0] << 8 | suggested[1]
    envelope = struct.pack(">BBHIIII", version[0], version[1], message_flag, session,
                           request_id, 0, len(payload))  # fmt: skip
    return envelope + payload


def parse_response(data: bytes) -> dict[str, object]:
    major, minor, mflags, _session, request_id, seq, length = struct.unpack_from(">BBHIIII", data)
    opcode, code, flags, serial, _rec, _res, expiration, body_len = struct.unpack_from(
        ">IIIHBBII", data, 20
    )
    body = data[44 : 44 + body_len]
    out: dict[str, object] = {
        "version": (major, minor), "request_id": request_id, "opcode": opcode, "code": code,
        "length": length, "body": body, "flags": flags, "message_flags": mflags, "seq": seq,
        "serial": serial, "expiration": expiration,
    }  # fmt: skip
    assert length == len(data) - 20
    if flags & RD:  # a request digest first: algorithm octet, then the digest
        size = {1: 16, 2: 20, 3: 32}[body[0]]
        out["digest"] = body[: 1 + size]
        body = body[1 + size :]
    if code == 1 and opcode == 1:
        (n,) = struct.unpack_from(">I", body)
        out["handle"] = body[4 : 4 + n].decode()
        pos = 4 + n
        (count,) = struct.unpack_from(">I", body, pos)
        pos += 4
        values = []
        for _ in range(count):
            index, _ts, _ttl_type, _ttl, _perm = struct.unpack_from(">IIBiB", body, pos)
            pos += 14
            (tlen,) = struct.unpack_from(">I", body, pos)
            vtype = body[pos + 4 : pos + 4 + tlen].decode()
            pos += 4 + tlen
            (dlen,) = struct.unpack_from(">I", body, pos)
            vdata = body[pos + 4 : pos + 4 + dlen]
            pos += 4 + dlen
            (refs,) = struct.unpack_from(">I", body, pos)
            pos += 4
            assert refs == 0
            values.append((index, vtype, vdata))
        out["values"] = values
    return out


def udp_ask(address: tuple[str, int], datagram: bytes, timeout: float = 2.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(datagram, address)
        return s.recv(65535)


def tcp_ask(address: tuple[str, int], message: bytes, timeout: float = 2.0) -> bytes:
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(message)
        buf = b""
        while len(buf) < 20 or len(buf) < 20 + struct.unpack_from(">I", buf, 16)[0]:
            chunk = s.recv(65535)
            if not chunk:
                break
            buf += chunk
        return buf
