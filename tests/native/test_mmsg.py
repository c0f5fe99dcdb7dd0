"""Batched datagram I/O: many datagrams in one call, answers in place, back to each sender."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from iinode.resolution.native_mmsg import SLOT_SIZE, DatagramBatch

pytestmark = pytest.mark.skipif(not DatagramBatch.available(), reason="needs recvmmsg (Linux)")


@pytest.fixture
def server() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def clients(count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(2)
        socks.append(s)
    return socks


def test_receives_queued_datagrams_in_one_call_and_answers_each_sender(
    server: socket.socket,
) -> None:
    peers = clients(5)
    for n, peer in enumerate(peers):
        peer.sendto(f"ask-{n}".encode(), server.getsockname())
    batch = DatagramBatch(server, size=8)
    got = 0
    received: dict[bytes, tuple[str, int]] = {}
    while got < 5:
        count = batch.receive()
        for i in range(count):
            data = batch.datagram(i)
            received[data] = batch.peer(i)
            if data == b"ask-2":
                continue  # no answer for this one: the later answers move down
            answer = b"ANS" + data
            at = batch.offset(i)
            batch.buffer[at : at + len(answer)] = answer
            batch.reply(i, len(answer))
        got += count
        batch.send()
    assert set(received) == {f"ask-{n}".encode() for n in range(5)}
    for n, peer in enumerate(peers):
        assert received[f"ask-{n}".encode()] == peer.getsockname()
        if n == 2:
            peer.settimeout(0.2)
            with pytest.raises(TimeoutError):
                peer.recvfrom(100)
        else:
            assert peer.recvfrom(100) == (f"ANSask-{n}".encode(), server.getsockname())
    for peer in peers:
        peer.close()


def test_slots_are_reset_between_batches(server: socket.socket) -> None:
    (peer,) = clients(1)
    batch = DatagramBatch(server, size=4)
    for text in (b"x" * 1500, b"short"):
        peer.sendto(text, server.getsockname())
        assert batch.receive() == 1
        assert batch.length(0) == len(text) <= SLOT_SIZE
        assert batch.datagram(0) == text
        batch.reply(0, 3)
        assert batch.send() == 1
        assert peer.recvfrom(100)[0] == text[:3]
    peer.close()
