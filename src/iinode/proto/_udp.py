"""UDP: split a message into 512-octet packets and put packets back together (RFC 3652 s2.3).

Every packet carries the message envelope.  Its SequenceNumber says which
fragment it is (0, 1, ...), each fragment but the last holding 492 octets, and
its MessageLength is the length of the whole message, the same in every packet.
A request of several packets has the TC flag in each of them: a Handle.Net
server reassembles only packets so marked.  An answer of several packets does
not (the Handle.Net server sends its answers with the request's flags).

``UdpReassembler`` is sans-IO: the caller passes each datagram with its source
and the current time, and gets a ``Frame`` back when a message is complete.
Memory is bounded by ``ProtoLimits``: partial messages are few, small, and
forgotten after a timeout.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from iinode.errors import RemoteProtocolError
from iinode.proto._envelope import Envelope, pack_envelope
from iinode.proto._message import Frame, Message
from iinode.proto._tables import ENVELOPE_SIZE, UDP_PAYLOAD_SIZE, EnvelopeFlag, ProtoLimits


def packet_count(length: int) -> int:
    """How many packets carry a message of ``length`` octets (at least one)."""
    return max(1, -(-length // UDP_PAYLOAD_SIZE))


def to_packets(message: Message) -> list[bytes]:
    """The UDP packets of ``message``, each at most 512 octets."""
    payload = message.payload()
    flags, length = message.flag_word, len(payload)
    if length > UDP_PAYLOAD_SIZE and not message.is_response:
        flags |= EnvelopeFlag.TC
    return [
        pack_envelope(message.version, flags, message.session_id, message.request_id, seq, length)
        + payload[seq * UDP_PAYLOAD_SIZE : (seq + 1) * UDP_PAYLOAD_SIZE]
        for seq in range(packet_count(length))
    ]


@dataclass(slots=True)
class _Partial:
    envelope: Envelope
    deadline: float
    chunks: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class ReassemblyStats:
    """Counters a server can export; each names what happened to datagrams or messages."""

    completed: int = 0
    rejected: int = 0
    duplicates: int = 0
    expired: int = 0
    evicted: int = 0


class UdpReassembler:
    """Collects the packets of multi-packet messages, per source and request id."""

    def __init__(self, limits: ProtoLimits | None = None) -> None:
        self.limits = limits or ProtoLimits()
        self.stats = ReassemblyStats()
        self._pending: OrderedDict[tuple[Hashable, int], _Partial] = OrderedDict()
        self._pending_bytes = 0

    @property
    def pending_messages(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """Octets reserved by partial messages (their announced lengths)."""
        return self._pending_bytes

    def receive(self, source: Hashable, datagram: bytes, now: float) -> Frame | None:
        """Take one datagram; return the message it completes, if any.

        Raises ``RemoteProtocolError`` for a datagram that cannot be a packet of a
        message (a partial message it contradicts is dropped).
        """
        try:
            return self._receive(source, datagram, now)
        except RemoteProtocolError:
            self.stats.rejected += 1
            raise

    def _receive(self, source: Hashable, datagram: bytes, now: float) -> Frame | None:
        env = Envelope.from_wire(datagram)
        data = datagram[ENVELOPE_SIZE:]
        if env.length > self.limits.max_udp_message_bytes:
            raise RemoteProtocolError(f"UDP message of {env.length} octets is too large")
        count = packet_count(env.length)
        if env.sequence >= count:
            raise RemoteProtocolError(
                f"packet {env.sequence} of a message of {count} packets does not exist"
            )
        expected = min(UDP_PAYLOAD_SIZE, env.length - env.sequence * UDP_PAYLOAD_SIZE)
        if len(data) != expected:
            raise RemoteProtocolError(
                f"packet {env.sequence} carries {len(data)} octets, expected {expected}"
            )
        if count == 1:
            self.stats.completed += 1
            return Frame(env, bytes(data))
        self.expire(now)
        key = (source, env.request_id)
        partial = self._pending.get(key)
        if partial is None:
            partial = self._start(key, env, now)
        elif not _same_message(partial.envelope, env):
            self._drop(key)
            raise RemoteProtocolError("packet contradicts the earlier packets of its message")
        if env.sequence in partial.chunks:
            self.stats.duplicates += 1
            return None
        partial.chunks[env.sequence] = bytes(data)
        if len(partial.chunks) < count:
            return None
        self._drop(key)
        self.stats.completed += 1
        payload = b"".join(partial.chunks[i] for i in range(count))
        return Frame(partial.envelope, payload)

    def _start(self, key: tuple[Hashable, int], env: Envelope, now: float) -> _Partial:
        limits = self.limits
        while self._pending and (
            len(self._pending) >= limits.max_pending_messages
            or self._pending_bytes + env.length > limits.max_pending_bytes
        ):
            oldest = next(iter(self._pending))
            self._drop(oldest)
            self.stats.evicted += 1
        first = Envelope(env.request_id, env.session_id, 0, env.length, env.flags, env.version)
        partial = _Partial(first, now + limits.reassembly_timeout)
        self._pending[key] = partial
        self._pending_bytes += env.length
        return partial

    def _drop(self, key: tuple[Hashable, int]) -> None:
        partial = self._pending.pop(key)
        self._pending_bytes -= partial.envelope.length

    def expire(self, now: float) -> int:
        """Forget partial messages whose time is up; return how many."""
        count = 0
        while self._pending:
            key, partial = next(iter(self._pending.items()))
            if partial.deadline > now:
                break
            self._drop(key)
            count += 1
        self.stats.expired += count
        return count


def _same_message(a: Envelope, b: Envelope) -> bool:
    return (a.length, a.session_id, a.flags, a.version) == (b.length, b.session_id, b.flags,
                                                            b.version)  # fmt: skip
