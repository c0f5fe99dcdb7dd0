"""Reject counts shared between the processes of one node.

Only the process holding the node's lease (:mod:`iinode.api.lease`) ingests
telemetry, so only it counts rejected readings.  It writes the counts to
``<data-dir>/telemetry-rejects.json`` (temporary file, then rename) when they
change; the node's other processes read that file into their own
:class:`~iinode.telemetry.validation.RejectLog`, so ``/telemetry/rejects``
answers the same whichever process serves it.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import orjson

from iinode.telemetry.validation import RejectLog, RejectReason

REJECTS_FILE = "telemetry-rejects.json"
log = logging.getLogger(__name__)


class RejectsSnapshot:
    """Writes a ``RejectLog``'s counts to ``path`` and reads them back elsewhere."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: dict[str, int] | None = None
        self._seen: tuple[int, int] | None = None

    def write(self, rejects: RejectLog) -> bool:
        """Write the counts if they changed since the last write; ``True`` if written."""
        counts = {r.value: n for r, n in sorted(rejects.counts.items()) if n}
        if counts == self._written:
            return False
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps({"v": 1, "counts": counts}))
        os.replace(tmp, self.path)
        self._written = counts
        return True

    def read_into(self, rejects: RejectLog) -> bool:
        """Replace ``rejects.counts`` with the file's if it changed; ``True`` if read."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._seen:
            return False
        try:
            body = orjson.loads(self.path.read_bytes())
            counts = Counter(
                {RejectReason(k): int(v) for k, v in body["counts"].items() if int(v) > 0}
            )
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("%s is unreadable; keeping the last reject counts", self.path)
            return False
        rejects.counts = counts
        self._seen = stamp
        return True


__all__ = ["REJECTS_FILE", "RejectsSnapshot"]
