"""Errors of the monitoring subsystem, rooted in the project's one exception tree.

::

    IinodeError
    └── MonitoringError                 base of every monitoring error
        ├── OutboxFull                  the durable outbox reached its disk bound
        ├── EventInvalid                an event or notice does not validate
        ├── FeedInvalid                 a CVE feed file is not NVD JSON 2.0
        ├── ReplyInvalid                a peer's 200 answer is not what was asked for
        └── ReportRefused               a report was refused (carries ``status``, ``reason``)
            ├── ReportMalformed         400: the body does not parse or validate
            ├── ReportUnauthenticated   401: no or wrong credentials
            ├── ReportForbidden         403: sender reports for a prefix it does not own
            ├── ReportReplayed          409: this batch id was already received
            └── ReportTooLarge          413: more events or bytes than the receiver accepts

``ReportRefused`` is raised on the receiving side and mapped one-to-one to HTTP
status codes by ``iinode.api.monitoring``; the sender turns the same status
codes back into the same classes.
"""

from __future__ import annotations

from typing import ClassVar

from iinode.errors import IinodeError


class MonitoringError(IinodeError):
    """Base of every monitoring error."""


class OutboxFull(MonitoringError):
    """Enqueueing would exceed the outbox's bound; nothing was written."""

    def __init__(self, message: str, *, pending: int, pending_bytes: int) -> None:
        super().__init__(message)
        self.pending = pending
        self.pending_bytes = pending_bytes


class EventInvalid(MonitoringError):
    """An event, report or notice does not validate."""


class FeedInvalid(MonitoringError):
    """A CVE feed is not valid NVD CVE API 2.0 JSON."""


class ReplyInvalid(MonitoringError):
    """A peer answered 200 with something that is not the expected reply.

    A receipt that does not parse or does not match the batch sent, a notice
    list that is not one: nothing is acknowledged, and the request is retried.
    """


class ReportRefused(MonitoringError):
    """A report was refused by the receiving node."""

    status: ClassVar[int] = 400
    reason: ClassVar[str] = "refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @classmethod
    def for_status(cls, status: int, message: str) -> ReportRefused:
        """The subclass for an HTTP status (plain ``ReportRefused`` if none)."""
        for sub in cls.__subclasses__():
            if sub.status == status:
                return sub(message)
        return ReportRefused(message)


class ReportMalformed(ReportRefused):
    status = 400
    reason = "malformed"


class ReportUnauthenticated(ReportRefused):
    status = 401
    reason = "unauthenticated"


class ReportForbidden(ReportRefused):
    status = 403
    reason = "forbidden"


class ReportReplayed(ReportRefused):
    status = 409
    reason = "replayed"


class ReportTooLarge(ReportRefused):
    status = 413
    reason = "too_large"
