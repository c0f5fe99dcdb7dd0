"""Three-level monitoring: metrics, durable outbox, upward reports, notices, security events."""

from iinode.monitoring.auth import (
    Authenticator,
    MemoryAuthenticator,
    basic_username,
    handle_identity,
    parse_basic,
)
from iinode.monitoring.errors import (
    EventInvalid,
    FeedInvalid,
    MonitoringError,
    OutboxFull,
    ReplyInvalid,
    ReportForbidden,
    ReportMalformed,
    ReportRefused,
    ReportReplayed,
    ReportTooLarge,
    ReportUnauthenticated,
)
from iinode.monitoring.events import Event, EventKind, Severity, new_event_id
from iinode.monitoring.metrics import (
    CONTENT_TYPE,
    CallbackCollector,
    NodeMetrics,
    new_registry,
    render,
)
from iinode.monitoring.notices import (
    Notice,
    NoticeBoard,
    NoticeProgress,
    NoticeState,
    NoticeTarget,
)
from iinode.monitoring.outbox import Outbox, OutboxItem, OutboxSettings
from iinode.monitoring.protocol import Receipt, ReportBatch, decode_batch, encode_batch
from iinode.monitoring.receiver import (
    ChildCheck,
    ForwardPolicy,
    ReceiverSettings,
    ReportReceiver,
    children_of,
)
from iinode.monitoring.sender import Backoff, ReportSender, SenderSettings
from iinode.monitoring.store import EventStore, NodeStatus
from iinode.monitoring.supervise import Supervised

__all__ = [
    "CONTENT_TYPE",
    "Authenticator",
    "Backoff",
    "CallbackCollector",
    "ChildCheck",
    "Event",
    "EventInvalid",
    "EventKind",
    "EventStore",
    "FeedInvalid",
    "ForwardPolicy",
    "MemoryAuthenticator",
    "MonitoringError",
    "NodeMetrics",
    "NodeStatus",
    "Notice",
    "NoticeBoard",
    "NoticeProgress",
    "NoticeState",
    "NoticeTarget",
    "Outbox",
    "OutboxFull",
    "OutboxItem",
    "OutboxSettings",
    "Receipt",
    "ReceiverSettings",
    "ReplyInvalid",
    "ReportBatch",
    "ReportForbidden",
    "ReportMalformed",
    "ReportReceiver",
    "ReportRefused",
    "ReportReplayed",
    "ReportSender",
    "ReportTooLarge",
    "ReportUnauthenticated",
    "SenderSettings",
    "Severity",
    "Supervised",
    "basic_username",
    "children_of",
    "decode_batch",
    "encode_batch",
    "handle_identity",
    "new_event_id",
    "new_registry",
    "parse_basic",
    "render",
]
