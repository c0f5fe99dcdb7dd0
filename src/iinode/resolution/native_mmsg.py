"""Batched datagram I/O for the UDP fast path: Linux ``recvmmsg``/``sendmmsg`` through ctypes.

A plain ``recvfrom``/``sendto`` loop pays two system calls and two Python calls per answer, which
is most of a warm answer's cost.  ``DatagramBatch`` receives up to ``size`` datagrams with one
``recvmmsg`` call (blocking until the first arrives, then taking whatever else is queued), lets the
caller rewrite each received datagram in place into its answer, and sends all answers with one
``sendmmsg`` call, back to the addresses they came from.

The kernel structures are laid out once in ctypes buffers.  The per-datagram work in Python is
slicing a ``memoryview`` and packing two integers.  The standard library offers no batched
datagram calls, and no maintained package does this for a blocking Python loop, so it is done
here with ctypes (no compiled code to build).  ``DatagramBatch.available()`` says whether the
platform has the calls; elsewhere the transport keeps its ``recvfrom`` loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
import sys
from typing import Any

#: Room for one received datagram; a Handle UDP packet is at most 512 octets.
SLOT_SIZE = 2048
_SOCKADDR_SIZE = 128  # sizeof(struct sockaddr_storage)
_MSG_WAITFORONE = 0x10000


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint32)]


_ENTRY = ctypes.sizeof(_MMsgHdr)
_LEN_AT = _MMsgHdr.len.offset
_NAMELEN_AT = _MsgHdr.namelen.offset
_IOV_LEN_AT = _IoVec.len.offset
_IOV_SIZE = ctypes.sizeof(_IoVec)
_U32 = struct.Struct("=I")
_SIZE_T = struct.Struct("@N")


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                                  ctypes.c_void_p]  # fmt: skip
        libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        libc.recvmmsg.restype = libc.sendmmsg.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


class DatagramBatch:
    """``size`` datagram slots over one socket: ``receive`` fills them, ``send`` answers them.

    After ``receive`` returns ``n``, ``buffer[offset(i) : offset(i) + length(i)]`` holds datagram
    ``i``.  To answer it, write the answer into the same slot and call ``reply(i, length)``; the
    answers are sent by ``send`` in one call, each to its datagram's sender.
    """

    def __init__(self, sock: socket.socket, size: int = 64) -> None:
        if _LIBC is None:
            raise OSError("recvmmsg/sendmmsg are not available on this platform")
        self._fd = sock.fileno()
        self.size = size
        self._data = (ctypes.c_char * (SLOT_SIZE * size))()
        self._names = (ctypes.c_char * (_SOCKADDR_SIZE * size))()
        self._iov = (_IoVec * size)()
        self._msgs = (_MMsgHdr * size)()
        data_at = ctypes.addressof(self._data)
        names_at = ctypes.addressof(self._names)
        iov_at = ctypes.addressof(self._iov)
        for i in range(size):
            self._iov[i].base = data_at + i * SLOT_SIZE
            self._iov[i].len = SLOT_SIZE
            hdr = self._msgs[i].hdr
            hdr.name = names_at + i * _SOCKADDR_SIZE
            hdr.namelen = _SOCKADDR_SIZE
            hdr.iov = iov_at + i * _IOV_SIZE
            hdr.iovlen = 1
        #: the received datagrams, slot by slot (writable: answers are written in place)
        self.buffer = memoryview(self._data).cast("B")
        self._msg_view = memoryview(self._msgs).cast("B")
        self._names_view = memoryview(self._names).cast("B")
        self._iov_view = memoryview(self._iov).cast("B")
        self._pristine_msgs = bytes(self._msg_view)
        self._pristine_iov = bytes(self._iov_view)
        self._replies = 0
        self._received = 0
        self._compact = False

    @staticmethod
    def available() -> bool:
        return _LIBC is not None

    @staticmethod
    def offset(i: int) -> int:
        return i * SLOT_SIZE

    def receive(self) -> int:
        """Block for at least one datagram; return how many slots were filled."""
        self._msg_view[:] = self._pristine_msgs
        self._iov_view[:] = self._pristine_iov
        self._replies = 0
        self._compact = False
        n: int = _LIBC.recvmmsg(self._fd, self._msgs, self.size, _MSG_WAITFORONE, None)
        if n < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self._received = n
        return n

    def length(self, i: int) -> int:
        """The length of received datagram ``i``."""
        length: int = _U32.unpack_from(self._msg_view, i * _ENTRY + _LEN_AT)[0]
        return length

    def datagram(self, i: int) -> bytes:
        at = i * SLOT_SIZE
        return self.buffer[at : at + self.length(i)].tobytes()

    def peer(self, i: int) -> tuple[Any, ...]:
        """Datagram ``i``'s sender as the socket module writes addresses."""
        at = i * _SOCKADDR_SIZE
        raw = self._names_view[at : at + 28].tobytes()
        family = int.from_bytes(raw[:2], sys.byteorder)
        port = int.from_bytes(raw[2:4], "big")
        if family == socket.AF_INET6:
            flow = int.from_bytes(raw[4:8], "big")
            scope = int.from_bytes(raw[24:28], sys.byteorder)
            return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flow, scope)
        return (socket.inet_ntop(socket.AF_INET, raw[4:8]), port)

    def reply(self, i: int, length: int) -> None:
        """Queue slot ``i`` (already rewritten in place) as a ``length``-octet answer."""
        _SIZE_T.pack_into(self._iov_view, i * _IOV_SIZE + _IOV_LEN_AT, length)
        j = self._replies
        if j != i:  # an earlier datagram got no answer here: move this one down
            entry = self._msg_view
            entry[j * _ENTRY : (j + 1) * _ENTRY] = entry[i * _ENTRY : (i + 1) * _ENTRY]
        self._replies = j + 1

    def send(self) -> int:
        """Send every queued answer; return how many the kernel took."""
        count = self._replies
        if count == 0:
            return 0
        sent: int = _LIBC.sendmmsg(self._fd, self._msgs, count, 0)
        self._replies = 0
        return max(sent, 0)


__all__ = ["SLOT_SIZE", "DatagramBatch"]
