"""The public surface of iinode.proto, and its promise to do no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import iinode.proto

EXPECTED = {
    "CLOSED", "DEFAULT_PORT", "ENVELOPE_SIZE", "HEADER_SIZE", "NEED_DATA", "PROTOCOL_VERSION",
    "REQUEST_BODIES", "RESPONSE_BODIES", "SUCCESS_BODIES", "UDP_PACKET_SIZE", "UDP_PAYLOAD_SIZE",
    "Body", "ChallengeAnswer", "ChallengeBody", "Credential", "CredentialType", "DigestAlgorithm",
    "EmptyBody", "Envelope", "EnvelopeFlag", "ErrorBody", "Frame", "HandleBody", "Header",
    "KeyExchangeMode", "ListHandlesResponse", "Message", "OpCode", "OpFlag", "OpaqueBody",
    "OptionalHandleBody", "ProtoLimits", "ReassemblyStats", "ReferralResponse",
    "RemoveValueRequest", "RequestDigest", "ResolutionRequest", "ResolutionResponse",
    "SessionExchangeKeyRequest", "SessionSetupRequest", "SessionSetupResponse",
    "SiteInfoResponse", "TcpFramer", "UdpReassembler", "ValuesRequest", "VerifyRequest",
    "VerifyResponse", "body_type", "packet_count", "to_packets", "CLIENT_VERSION",
    "DEFAULT_MESSAGE_LIFETIME", "MAX_MESSAGE_LENGTH", "NODE_VERSION", "digest_algorithm_for",
}  # fmt: skip

FORBIDDEN = {"socket", "asyncio", "selectors", "ssl"}


def test_all_is_pinned() -> None:
    assert set(iinode.proto.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(iinode.proto, name) is not None


def test_proto_imports_no_io_modules() -> None:
    package = Path(iinode.proto.__file__).parent
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & FORBIDDEN, f"{path.name} imports {names & FORBIDDEN}"
