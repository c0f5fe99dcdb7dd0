"""Which one of a node's processes runs the work that must run once.

``iinode serve --workers N`` starts N processes on one data directory.  They all
serve the HTTP API from the shared stores, but the embedded MQTT broker, the
telemetry ingest, the monitoring sender, heartbeats and notice pulls must run
in exactly one of them.  That process holds :class:`ProcessLease`: an exclusive
``flock`` on ``<data-dir>/extensions.lock``.  The kernel drops the lock when
its holder exits, however it exits, so another process can take over.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from iinode.errors import ConfigurationError

LEASE_FILE = "extensions.lock"


class ProcessLease:
    """An exclusive, non-blocking lock on ``path``, held until released or exit.

    The holder writes its process id into the file (for operators and tests);
    the lock, not the content, is what counts.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lease if no other open file holds it; ``True`` if this process has it."""
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigurationError(f"cannot open the lease file {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> int | None:
        """The process id the current holder wrote, if any."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock


__all__ = ["LEASE_FILE", "ProcessLease"]
