"""Notices downward: issue, target, deliver through the hierarchy, track who acted.

A ``Notice`` is issued at the national or a provincial node and kept on that
node's ``NoticeBoard``.  Each child pulls the notices meant for it from its
parent (``GET /monitoring/notices``); a provincial node puts what it pulled from
the national node on its own board, so notices flow down level by level.
Targeting by province and industry is decided on the way down; targeting by
asset (a CPE pattern, asset kinds) is decided by the enterprise node against its
own inventory.  Every state change of a notice at an enterprise becomes a
``notice_status`` event in its outbox, and climbs up like any other event; the
issuer reads the states from its ``EventStore``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from iinode.errors import InvalidHandle, TransportError
from iinode.identifiers import Prefix
from iinode.monitoring.auth import basic_username
from iinode.monitoring.cpe import Cpe
from iinode.monitoring.errors import EventInvalid, ReplyInvalid, ReportRefused
from iinode.monitoring.events import Event, EventKind, Severity
from iinode.monitoring.inventory import Asset
from iinode.monitoring.sqlite import SqliteFile
from iinode.monitoring.store import EventStore

_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}\Z")


class NoticeState(enum.StrEnum):
    DELIVERED = "delivered"
    NOT_AFFECTED = "not_affected"
    ACKNOWLEDGED = "acknowledged"
    COMPLETED = "completed"


def _matches(wanted: frozenset[str], have: str) -> bool:
    """A dimension matches when untargeted, unknown at an aggregating node, or listed."""
    return not wanted or not have or have in wanted


@dataclass(frozen=True, slots=True)
class NoticeTarget:
    provinces: frozenset[str] = frozenset()
    industries: frozenset[str] = frozenset()
    asset_kinds: frozenset[str] = frozenset()
    cpe: Cpe | None = None

    def matches_node(self, province: str, industry: str) -> bool:
        return _matches(self.provinces, province) and _matches(self.industries, industry)

    def to_json(self) -> dict[str, Any]:
        return {
            "provinces": sorted(self.provinces),
            "industries": sorted(self.industries),
            "asset_kinds": sorted(self.asset_kinds),
            "cpe": None if self.cpe is None else str(self.cpe),
        }

    @classmethod
    def from_json(cls, data: Any) -> NoticeTarget:
        if not isinstance(data, dict):
            raise EventInvalid("notice target must be an object")
        try:
            cpe = data.get("cpe")
            return cls(
                provinces=frozenset(map(str, data.get("provinces", []))),
                industries=frozenset(map(str, data.get("industries", []))),
                asset_kinds=frozenset(map(str, data.get("asset_kinds", []))),
                cpe=None if cpe is None else Cpe.parse(cpe),
            )
        except (TypeError, ValueError) as exc:
            raise EventInvalid(f"notice target is invalid: {exc}") from None


@dataclass(frozen=True, slots=True)
class Notice:
    id: str
    issuer: Prefix
    issued_at: float
    title: str
    action: str
    target: NoticeTarget = NoticeTarget()
    deadline: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise EventInvalid(f"notice id {self.id!r} must be 1-128 of [A-Za-z0-9._:-]")
        if not isinstance(self.title, str) or not self.title.strip():
            raise EventInvalid("notice needs a title")
        if not isinstance(self.action, str):
            raise EventInvalid("notice action must be text")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "issuer": self.issuer.text,
            "issued_at": self.issued_at,
            "title": self.title,
            "action": self.action,
            "target": self.target.to_json(),
            "deadline": self.deadline,
        }

    @classmethod
    def from_json(cls, data: Any) -> Notice:
        if not isinstance(data, dict):
            raise EventInvalid("a notice must be a JSON object")
        try:
            deadline = data.get("deadline")
            return cls(
                id=data["id"],
                issuer=Prefix(data["issuer"]),
                issued_at=float(data["issued_at"]),
                title=data["title"],
                action=data.get("action", ""),
                target=NoticeTarget.from_json(data.get("target", {})),
                deadline=None if deadline is None else float(deadline),
            )
        except KeyError as exc:
            raise EventInvalid(f"notice is missing field {exc.args[0]!r}") from None
        except InvalidHandle as exc:
            raise EventInvalid(f"notice issuer: {exc.message}") from None
        except (TypeError, ValueError) as exc:
            raise EventInvalid(f"notice field is invalid: {exc}") from None


@dataclass(frozen=True, slots=True)
class NoticeProgress:
    """Who has and has not acted on a notice, as the issuing level sees it."""

    notice: Notice
    states: dict[str, str]
    pending: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"notice": self.notice.to_json(), "states": self.states, "pending": self.pending}


_BOARD_SCHEMA = """
CREATE TABLE IF NOT EXISTS notices (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS local_states (id TEXT PRIMARY KEY, state TEXT NOT NULL,
    at REAL NOT NULL, assets TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class NoticeBoard:
    """Notices known at this node, in arrival order (``seq``), durable in SQLite."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self.db = SqliteFile(path, schema=_BOARD_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add(self, notice: Notice) -> bool:
        """Keep a notice; False if it was already on the board."""
        return (
            self.db.run(
                "INSERT OR IGNORE INTO notices (id, body) VALUES (?, ?)",
                (notice.id, orjson.dumps(notice.to_json()).decode()),
            )
            == 1
        )

    def set_state(
        self, notice_id: str, state: NoticeState, at: float, assets: Sequence[str] = ()
    ) -> None:
        """Record this node's own state for a notice (an enterprise's answer)."""
        self.db.run(
            "INSERT INTO local_states VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " state = excluded.state, at = excluded.at, assets = excluded.assets",
            (notice_id, state.value, at, orjson.dumps(list(assets)).decode()),
        )

    def state(self, notice_id: str) -> tuple[NoticeState, float, list[str]] | None:
        """This node's own state for a notice, if it has answered it."""
        row = self.db.row("SELECT state, at, assets FROM local_states WHERE id = ?", (notice_id,))
        if row is None:
            return None
        return NoticeState(row[0]), float(row[1]), list(orjson.loads(row[2]))

    def unanswered(self) -> list[Notice]:
        """Notices on the board that this node has not answered yet, oldest first."""
        rows = self.db.rows(
            "SELECT n.body FROM notices n LEFT JOIN local_states s ON s.id = n.id"
            " WHERE s.id IS NULL ORDER BY n.seq"
        )
        return [Notice.from_json(orjson.loads(b)) for (b,) in rows]

    def cursor(self, name: str) -> int:
        row = self.db.row("SELECT value FROM cursors WHERE name = ?", (name,))
        return 0 if row is None else int(row[0])

    def set_cursor(self, name: str, value: int) -> None:
        self.db.run(
            "INSERT INTO cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = ?",
            (name, value, value),
        )

    def get(self, notice_id: str) -> Notice | None:
        row = self.db.row("SELECT body FROM notices WHERE id = ?", (notice_id,))
        return None if row is None else Notice.from_json(orjson.loads(row[0]))

    def since(self, seq: int = 0) -> list[tuple[int, Notice]]:
        rows = self.db.rows("SELECT seq, body FROM notices WHERE seq > ? ORDER BY seq", (seq,))
        return [(int(s), Notice.from_json(orjson.loads(b))) for s, b in rows]

    def for_node(self, province: str, industry: str, since: int = 0) -> list[tuple[int, Notice]]:
        """Notices after ``since`` whose province/industry targeting admits this node."""
        return [(s, n) for s, n in self.since(since) if n.target.matches_node(province, industry)]

    def progress(self, notice_id: str, store: EventStore, *, now: float) -> NoticeProgress:
        """States reported by enterprises, and targeted nodes that have not answered."""
        notice = self.get(notice_id)
        if notice is None:
            raise KeyError(notice_id)
        states = {o: s for o, (s, _, _) in store.notice_states(notice_id).items()}
        targeted = [
            n.origin
            for n in store.nodes(now=now, stale_after=float("inf"))
            if n.province and n.industry and notice.target.matches_node(n.province, n.industry)
        ]
        pending = sorted(o for o in targeted if o not in states)
        return NoticeProgress(notice, states, pending)


#: The state changes an operator may make after the first answer.
NEXT_STATES: dict[NoticeState, frozenset[NoticeState]] = {
    NoticeState.DELIVERED: frozenset({NoticeState.ACKNOWLEDGED, NoticeState.COMPLETED}),
    NoticeState.NOT_AFFECTED: frozenset({NoticeState.ACKNOWLEDGED}),
    NoticeState.ACKNOWLEDGED: frozenset({NoticeState.COMPLETED}),
    NoticeState.COMPLETED: frozenset(),
}


def affected_assets(notice: Notice, assets: Sequence[tuple[str, str, Sequence[Cpe]]]) -> list[str]:
    """Handles of assets ``(handle, kind, cpes)`` that a notice's asset target selects."""
    t = notice.target
    out: list[str] = []
    for handle, kind, cpes in assets:
        if t.asset_kinds and kind not in t.asset_kinds:
            continue
        if t.cpe is not None and not any(t.cpe.matches(c) for c in cpes):
            continue
        out.append(handle)
    return out


def status_event(
    notice: Notice,
    node: Prefix,
    state: NoticeState,
    observed_at: float,
    *,
    assets: Sequence[str] = (),
    province: str = "",
    industry: str = "",
) -> Event:
    """The ``notice_status`` event an enterprise sends upward; one id per (notice, state)."""
    return Event(
        id=f"notice.{notice.id}.{state.value}",
        origin=node,
        kind=EventKind.NOTICE_STATUS,
        severity=Severity.INFO,
        observed_at=observed_at,
        province=province,
        industry=industry,
        detail={"notice": notice.id, "state": state.value, "assets": list(assets)},
    )


async def pull_notices(
    client: httpx.AsyncClient,
    parent_url: str,
    username: str,
    password: str,
    since: int = 0,
    *,
    on_invalid: Callable[[str], None] | None = None,
) -> tuple[int, list[Notice]]:
    """Fetch the notices for this node from its parent: ``(next_since, notices)``.

    An answer that is not a notice list raises ``ReplyInvalid`` (the cursor
    stays, the pull is retried).  A single notice that does not validate is
    skipped and passed to ``on_invalid`` with the reason, so that one bad
    entry cannot block every later notice.
    """
    try:
        response = await client.get(
            parent_url.rstrip("/") + "/monitoring/notices",
            params={"since": since},
            auth=(basic_username(username), password),
        )
    except httpx.HTTPError as exc:
        raise TransportError(f"notice pull from {parent_url} failed: {exc!r}") from exc
    if response.status_code != 200:
        raise ReportRefused.for_status(
            response.status_code, f"parent refused notice pull: {response.text[:200]}"
        )
    try:
        data = orjson.loads(response.content)
        next_since = data["next"]
        raw = data["notices"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ReplyInvalid(f"parent answered 200 without a notice list: {exc!r}") from None
    if isinstance(next_since, bool) or not isinstance(next_since, int) or next_since < since:
        raise ReplyInvalid(f"notice list cursor {next_since!r} is not an integer >= {since}")
    if not isinstance(raw, list):
        raise ReplyInvalid("notice list 'notices' is not a list")
    notices: list[Notice] = []
    for item in raw:
        try:
            notices.append(Notice.from_json(item))
        except EventInvalid as exc:
            if on_invalid is not None:
                on_invalid(str(exc))
    return next_since, notices


def evaluate(notice: Notice, assets: Sequence[Asset]) -> tuple[NoticeState, list[str]]:
    """The first state an enterprise reports: delivered (with its affected assets) or not."""
    hit = affected_assets(notice, [(str(a.handle), a.kind.value, a.cpes) for a in assets])
    return (NoticeState.DELIVERED if hit else NoticeState.NOT_AFFECTED), hit
