"""What the native server remembers between messages: challenges, sessions, counters.

All of it is plain in-memory state of one server process, bounded in size and
driven by the caller's clock; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from iinode.identifiers import IndexedHandle
from iinode.proto import Message

#: Challenges a peer may have open at once (oldest dropped first).
MAX_PENDING_CHALLENGES = 16
#: Request ids remembered per session to refuse a replayed MAC'd request.
REPLAY_WINDOW = 4096


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


@dataclass(slots=True)
class PendingChallenge:
    """An administrative request waiting for the client's challenge answer."""

    request: Message
    nonce: bytes
    digest: bytes
    expires: float
    claimed: IndexedHandle | None = None
    parameters_sent: bool = False


@dataclass(slots=True)
class PeerState:
    """Per-client state: one TCP connection, or one UDP source address."""

    pending: OrderedDict[int, PendingChallenge] = field(default_factory=OrderedDict)

    def add(self, request_id: int, challenge: PendingChallenge) -> None:
        self.pending[request_id] = challenge
        self.pending.move_to_end(request_id)
        while len(self.pending) > MAX_PENDING_CHALLENGES:
            self.pending.popitem(last=False)


@dataclass(slots=True)
class Session:
    """An authenticated session: requests MAC'd with ``key`` act as ``identity``."""

    session_id: int
    identity: IndexedHandle
    key: bytes
    expires: float
    seen: OrderedDict[int, None] = field(default_factory=OrderedDict)

    def mac(self, signed_data: bytes) -> bytes:
        return session_mac(self.key, signed_data)

    def first_use(self, request_id: int) -> bool:
        """False if this request id was already used in the session (a replay)."""
        if request_id in self.seen:
            return False
        self.seen[request_id] = None
        if len(self.seen) > REPLAY_WINDOW:
            self.seen.popitem(last=False)
        return True


def session_mac(key: bytes, signed_data: bytes) -> bytes:
    """The HS_MAC credential of a session request: HMAC-SHA256 over header and body."""
    return hmac.new(key, signed_data, hashlib.sha256).digest()


class SessionTable:
    """Open sessions of one server process, bounded and expiring."""

    def __init__(
        self,
        *,
        max_sessions: int = 10_000,
        default_timeout: float = 3600.0,
        max_timeout: float = 86_400.0,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.max_sessions = max_sessions
        self.default_timeout = default_timeout
        self.max_timeout = max_timeout
        self._random = random
        self._sessions: OrderedDict[int, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, identity: IndexedHandle, now: float, timeout: int = 0) -> Session:
        seconds = min(float(timeout) if timeout else self.default_timeout, self.max_timeout)
        while True:
            session_id = int.from_bytes(self._random(4), "big")
            if session_id and session_id not in self._sessions:
                break
        session = Session(session_id, identity, self._random(32), now + seconds)
        self._sessions[session_id] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: int, now: float) -> Session | None:
        session = self._sessions.get(session_id)
        if session is not None and session.expires <= now:
            del self._sessions[session_id]
            return None
        return session

    def close(self, session_id: int) -> bool:
        return self._sessions.pop(session_id, None) is not None
