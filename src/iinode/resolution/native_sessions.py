"""What the native server remembers between messages: challenges, sessions, counters.

Open challenges live in the node's shared ``node.challenges`` table, as
``PendingChallenge.to_bytes``, so that an answer reaching any process is accepted.

``OffenderTally`` keeps, per source address, the protocol errors,
authentication failures and drops since it was last taken; it is written only
where those are counted (never on the UDP fast path) and is bounded.

Everything else is plain in-memory state of one server process, bounded in size and
driven by the caller's clock; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from enum import Enum
from itertools import islice

from iinode.identifiers import HandleName, IndexedHandle
from iinode.identifiers.wire import WireReader, WireWriter
from iinode.node.ratelimit import source_of
from iinode.proto import Message

#: How far behind the highest request id of a session a late request may be.
REPLAY_WINDOW = 4096
#: Unbound sessions (set up, nobody authenticated yet) one source address may hold;
#: opening another drops its earliest-expiring one.  IPv6 counts per /64.
MAX_UNBOUND_PER_SOURCE = 16
#: The address a session is being opened for (set by the handler around an
#: opening it does not make itself, such as ``native_trust``'s Diffie-Hellman one).
OPENING_SOURCE: ContextVar[str | None] = ContextVar("OPENING_SOURCE", default=None)


@dataclass(slots=True)
class NativeCounters:
    """Counters of one server process, read by the monitoring side."""

    requests: int = 0
    fast_hits: int = 0
    protocol_errors: int = 0
    dropped: int = 0
    auth_failures: int = 0
    internal_errors: int = 0
    sessions_opened: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


#: What ``OffenderTally`` counts per address, in record order.
OFFENCES: tuple[str, ...] = ("protocol_errors", "auth_failures", "dropped")
_OFFENCE_INDEX = {name: i for i, name in enumerate(OFFENCES)}


class OffenderTally:
    """Protocol errors, authentication failures and drops per source address.

    ``note`` is called where ``NativeCounters`` count those (the event loop
    thread only); ``take`` hands the ``top`` addresses with the most offences
    since the last ``take`` to the publisher and starts afresh.  At most
    ``max_addresses`` addresses are tracked between two takes; offences of
    further addresses stay in the node-wide counters only.
    """

    __slots__ = ("_counts", "max_addresses")

    def __init__(self, max_addresses: int = 4096) -> None:
        self.max_addresses = max_addresses
        self._counts: dict[str, list[int]] = {}

    def note(self, address: str | None, offence: str, count: int = 1) -> None:
        if not address:
            return
        counts = self._counts.get(address)
        if counts is None:
            if len(self._counts) >= self.max_addresses:
                return
            counts = self._counts[address] = [0] * len(OFFENCES)
        counts[_OFFENCE_INDEX[offence]] += count

    def __len__(self) -> int:
        return len(self._counts)

    def take(self, top: int) -> dict[str, tuple[int, ...]]:
        """The ``top`` addresses by offences since the last take (then forgets all)."""
        counts, self._counts = self._counts, {}
        ranked = sorted(counts.items(), key=lambda item: (-sum(item[1]), item[0]))[:top]
        return {address: tuple(values) for address, values in ranked}


@dataclass(frozen=True, slots=True)
class PendingChallenge:
    """An administrative request waiting for its challenge answer.

    Kept in the node's shared ``ChallengeTable`` (any worker process may get
    the answer) as ``to_bytes``: the request as received (envelope, header,
    body, credential), the nonce, the request digest, and the identity a
    SESSION_SETUP named (empty: any).
    """

    request: Message
    nonce: bytes
    digest: bytes
    claimed: IndexedHandle | None = None

    def to_bytes(self) -> bytes:
        claimed = self.claimed
        w = WireWriter().byte_string(self.request.to_wire())
        w.byte_string(self.nonce).byte_string(self.digest)
        w.utf8("" if claimed is None else str(claimed.handle))
        return w.u32(0 if claimed is None else claimed.index).getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> PendingChallenge:
        r = WireReader(raw)
        request = Message.from_wire(r.byte_string("request"))
        nonce, digest = r.byte_string("nonce"), r.byte_string("digest")
        handle, index = r.utf8("claimed handle"), r.u32("claimed index")
        claimed = IndexedHandle(index, HandleName.parse(handle)) if handle else None
        return cls(request, nonce, digest, claimed)


@dataclass(slots=True)
class PeerState:
    """Per-client state: one TCP connection, or one UDP source address."""

    #: The client's address (failed authentications are counted per address).
    address: str | None = None


@dataclass(slots=True)
class Session:
    """A session: requests MAC'd with ``key`` act as ``identity``.

    A Diffie-Hellman session (``native_dh``) opens before its client has proved
    anything, as on a Handle.Net server: ``identity`` is then ``None`` (its
    requests are answered as anonymous and challenged) until a challenge answer
    in the session succeeds (``authenticate``).  ``claimed`` is the identity the
    SESSION_SETUP named, if any: only that identity may authenticate it.
    """

    session_id: int
    identity: IndexedHandle | None
    key: bytes
    expires: float
    #: The highest request id (or session counter) accepted so far.
    highest: int = 0
    #: Request ids accepted within ``REPLAY_WINDOW`` below ``highest``.
    seen: set[int] = field(default_factory=set)
    claimed: IndexedHandle | None = None
    #: The session counter of the last answer MAC'd with ``key`` (Handle.Net layout).
    sent: int = 0
    #: Set up the Handle.Net way (Diffie-Hellman): MACs in Handle.Net's layout only.
    handle_net: bool = False
    #: The address (IPv6: /64) that opened it, for the cap on unbound sessions.
    source: str = ""
    #: Counters up to this one are refused (set when the session is bound).
    floor: int = 0

    def authenticate(self, identity: IndexedHandle) -> bool:
        """Bind the session to ``identity`` after a successful challenge answer."""
        if self.claimed is not None and identity != self.claimed:
            return False
        self.identity = identity
        self.floor = max(self.floor, self.highest)  # nothing sent before binding replays
        return True

    def next_counter(self) -> int:
        self.sent += 1
        return self.sent

    def mac(self, signed_data: bytes) -> bytes:
        return session_mac(self.key, signed_data)

    @property
    def low_water(self) -> int:
        """Request ids up to this one are refused outright."""
        return self.highest - REPLAY_WINDOW

    def first_use(self, request_id: int) -> bool:
        """False for a replay: a request id already used, or too far behind.

        A sliding window with a low-water mark (like IPsec's): ids above the
        highest so far are accepted and move the window; ids within
        ``REPLAY_WINDOW`` below it are accepted once (requests may arrive a
        little out of order); anything older is refused, however many requests
        came in between, so memory stays bounded and no old request replays.

        While nobody has authenticated the session (anyone may set one up), ids must
        strictly increase and only the highest is kept; binding the session refuses
        every id up to it.
        """
        if request_id <= self.floor or request_id <= self.low_water or request_id in self.seen:
            return False
        if self.identity is None:
            if request_id <= self.highest:
                return False
            self.highest = request_id
            return True
        self.seen.add(request_id)
        if request_id > self.highest:
            self.highest = request_id
            if len(self.seen) > 2 * REPLAY_WINDOW:
                low = self.low_water
                self.seen = {seen for seen in self.seen if seen > low}
        return True


def session_mac(key: bytes, signed_data: bytes) -> bytes:
    """The HS_MAC credential of a session request: HMAC-SHA256 over header and body."""
    return hmac.new(key, signed_data, hashlib.sha256).digest()


class Evictable(Enum):
    """What ``SessionTable`` evicts when full, in this order, earliest first."""

    #: Ended sessions kept only for their replay state (a shared table's closed rows).
    CLOSED = "closed"
    #: Sessions nobody has authenticated yet (anyone may set one up).
    UNBOUND = "unbound"
    #: Any session, bound ones included.
    ANY = "any"


class SessionTable:
    """Open sessions of one server process, bounded and expiring.

    At most ``max_sessions``; when full, unbound sessions (anyone may set one up)
    go first, earliest expiring first, and a bound one only when no unbound one
    is left.  One source address holds at most ``max_unbound_per_source``
    unbound sessions.

    ``open`` and that eviction policy (``_drop_unbound_of``, ``_evict``) are the
    same for every backend; a backend supplies the storage steps they are made
    of: ``_transaction``, ``_drop_expired``, ``_store``, ``_unbound_of``,
    ``_earliest``, ``_count`` and ``_delete``.  Here they act on the in-memory
    table, where "earliest" is the order of opening (the timeout may differ;
    close enough) and an expired session goes when it is asked for.
    """

    def __init__(
        self,
        *,
        max_sessions: int = 10_000,
        default_timeout: float = 3600.0,
        max_timeout: float = 86_400.0,
        random: Callable[[int], bytes] = os.urandom,
        max_unbound_per_source: int = MAX_UNBOUND_PER_SOURCE,
    ) -> None:
        self.max_sessions = max_sessions
        self.default_timeout = default_timeout
        self.max_timeout = max_timeout
        self.max_unbound_per_source = max_unbound_per_source
        self._random = random
        self._sessions: OrderedDict[int, Session] = OrderedDict()
        #: Unbound sessions, in order of opening.
        self._unbound: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(
        self,
        identity: IndexedHandle | None,
        now: float,
        timeout: int = 0,
        *,
        key: bytes | None = None,
        claimed: IndexedHandle | None = None,
        handle_net: bool = False,
        source: str | None = None,
    ) -> Session:
        """A new session (``key``: an agreed session key; default a random one).

        ``source``: the client's address (default ``OPENING_SOURCE``).
        """
        with self._transaction():
            self._drop_expired(now)
            while True:
                session = self._new_session(
                    identity, now, timeout, key=key, claimed=claimed, handle_net=handle_net,
                    source=source,
                )  # fmt: skip
                if identity is None:
                    self._drop_unbound_of(session.source, self.max_unbound_per_source - 1)
                if self._store(session):
                    break
            self._evict()
        return session

    def _new_session(
        self,
        identity: IndexedHandle | None,
        now: float,
        timeout: int,
        *,
        key: bytes | None,
        claimed: IndexedHandle | None,
        handle_net: bool,
        source: str | None,
    ) -> Session:
        seconds = min(float(timeout) if timeout else self.default_timeout, self.max_timeout)
        while True:
            # Positive as a Java int: Handle.Net clients treat ids above 2**31 - 1 as none.
            session_id = int.from_bytes(self._random(4), "big") & 0x7FFFFFFF
            if session_id and session_id not in self._sessions:
                break
        session_key = self._random(32) if key is None else key
        address = source if source is not None else OPENING_SOURCE.get()
        return Session(
            session_id, identity, session_key, now + seconds, claimed=claimed,
            handle_net=handle_net, source=source_of(address) if address else "",
        )  # fmt: skip

    # -- the eviction policy ------------------------------------------------------
    def _drop_unbound_of(self, source: str, keep: int) -> None:
        """Down to the ``keep`` latest unbound sessions of ``source``."""
        mine = self._unbound_of(source)
        self._delete(mine[: max(0, len(mine) - keep)])

    def _evict(self) -> None:
        """Down to ``max_sessions``: each kind of ``Evictable`` in turn, earliest first."""
        excess = self._count() - self.max_sessions
        for kind in Evictable:
            if excess <= 0:
                return
            ids = self._earliest(kind, excess)
            self._delete(ids)
            excess -= len(ids)

    # -- storage steps (in memory) ------------------------------------------------
    def _transaction(self) -> AbstractContextManager[object]:
        """What ``open`` runs in: all of it or nothing (in memory: nothing can fail)."""
        return nullcontext()

    def _drop_expired(self, now: float) -> None:
        """Delete what has expired by ``now`` (in memory: left to ``get``)."""

    def _store(self, session: Session) -> bool:
        """Add ``session``; False when its id turns out taken (draw again)."""
        self._remember(session)
        if session.identity is None:
            self._unbound[session.session_id] = None
        return True

    def _unbound_of(self, source: str) -> list[int]:
        """The unbound sessions opened from ``source``, earliest first."""
        return [i for i in self._unbound if self._sessions[i].source == source]

    def _earliest(self, kind: Evictable, limit: int) -> list[int]:
        """At most ``limit`` sessions of ``kind``, earliest first."""
        if kind is Evictable.CLOSED:
            return []  # an ended session is forgotten at once
        order = self._unbound if kind is Evictable.UNBOUND else self._sessions
        return list(islice(order, limit))

    def _count(self) -> int:
        """What counts against ``max_sessions``."""
        return len(self._sessions)

    def _delete(self, session_ids: Iterable[int]) -> None:
        for session_id in session_ids:
            self._forget(session_id)

    def _remember(self, session: Session) -> None:
        self._sessions[session.session_id] = session

    def _forget(self, session_id: int) -> bool:
        self._unbound.pop(session_id, None)
        return self._sessions.pop(session_id, None) is not None

    def get(self, session_id: int, now: float) -> Session | None:
        session = self._sessions.get(session_id)
        if session is not None and session.expires <= now:
            self._forget(session_id)
            return None
        return session

    def close(self, session_id: int) -> bool:
        return self._forget(session_id)

    def shutdown(self) -> None:
        """Release what the table holds open (a file for a shared table)."""

    # What a table shared by several processes (``shared_sessions``) keeps in step.
    def first_use(self, session: Session, number: int) -> bool:
        """False for a replayed request id or session counter (``Session.first_use``)."""
        return session.first_use(number)

    def bind(self, session: Session, identity: IndexedHandle) -> bool:
        """Bind an unbound session to ``identity`` (``Session.authenticate``)."""
        if not session.authenticate(identity):
            return False
        self._unbound.pop(session.session_id, None)
        return True

    def next_counter(self, session: Session) -> int:
        """The session counter of the next answer MAC'd with the session key."""
        return session.next_counter()
