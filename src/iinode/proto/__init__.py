"""Sans-IO codec of the Handle protocol (RFC 3651/3652): bytes in, messages out.

Nothing here opens a socket or imports asyncio.  Transports feed octets to a
framer (``TcpFramer`` for streams, ``UdpReassembler`` for datagrams), decode
each ``Frame`` with ``Message.from_frame``, and send ``Message.to_wire()`` (TCP)
or ``to_packets(message)`` (UDP).  Malformed input raises ``RemoteProtocolError``;
building something the protocol cannot carry raises ``LocalProtocolError``.
"""

from iinode.proto._auth_bodies import (
    ChallengeAnswer,
    ChallengeBody,
    SessionExchangeKeyRequest,
    SessionSetupRequest,
    SessionSetupResponse,
    VerifyRequest,
    VerifyResponse,
)
from iinode.proto._bodies import (
    Body,
    EmptyBody,
    ErrorBody,
    HandleBody,
    ListHandlesResponse,
    OpaqueBody,
    OptionalHandleBody,
    ReferralResponse,
    RemoveValueRequest,
    ResolutionRequest,
    ResolutionResponse,
    SiteInfoResponse,
    ValuesRequest,
)
from iinode.proto._credential import Credential, RequestDigest
from iinode.proto._envelope import Envelope, Header
from iinode.proto._message import Frame, Message
from iinode.proto._registry import REQUEST_BODIES, RESPONSE_BODIES, SUCCESS_BODIES, body_type
from iinode.proto._tables import (
    CLIENT_VERSION,
    DEFAULT_MESSAGE_LIFETIME,
    DEFAULT_PORT,
    ENVELOPE_SIZE,
    HEADER_SIZE,
    MAX_MESSAGE_LENGTH,
    NODE_VERSION,
    PROTOCOL_VERSION,
    UDP_PACKET_SIZE,
    UDP_PAYLOAD_SIZE,
    CredentialType,
    DigestAlgorithm,
    EnvelopeFlag,
    KeyExchangeMode,
    OpCode,
    OpFlag,
    ProtoLimits,
    digest_algorithm_for,
)
from iinode.proto._tcp import CLOSED, NEED_DATA, TcpFramer
from iinode.proto._udp import ReassemblyStats, UdpReassembler, packet_count, to_packets

__all__ = [
    "CLIENT_VERSION",
    "CLOSED",
    "DEFAULT_MESSAGE_LIFETIME",
    "DEFAULT_PORT",
    "ENVELOPE_SIZE",
    "HEADER_SIZE",
    "MAX_MESSAGE_LENGTH",
    "NEED_DATA",
    "NODE_VERSION",
    "PROTOCOL_VERSION",
    "REQUEST_BODIES",
    "RESPONSE_BODIES",
    "SUCCESS_BODIES",
    "UDP_PACKET_SIZE",
    "UDP_PAYLOAD_SIZE",
    "Body",
    "ChallengeAnswer",
    "ChallengeBody",
    "Credential",
    "CredentialType",
    "DigestAlgorithm",
    "EmptyBody",
    "Envelope",
    "EnvelopeFlag",
    "ErrorBody",
    "Frame",
    "HandleBody",
    "Header",
    "KeyExchangeMode",
    "ListHandlesResponse",
    "Message",
    "OpCode",
    "OpFlag",
    "OpaqueBody",
    "OptionalHandleBody",
    "ProtoLimits",
    "ReassemblyStats",
    "ReferralResponse",
    "RemoveValueRequest",
    "RequestDigest",
    "ResolutionRequest",
    "ResolutionResponse",
    "SessionExchangeKeyRequest",
    "SessionSetupRequest",
    "SessionSetupResponse",
    "SiteInfoResponse",
    "TcpFramer",
    "UdpReassembler",
    "ValuesRequest",
    "VerifyRequest",
    "VerifyResponse",
    "body_type",
    "digest_algorithm_for",
    "packet_count",
    "to_packets",
]
