"""Which body class a message carries, by opcode and response code."""

from __future__ import annotations

from iinode.codes import ResponseCode
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
from iinode.proto._tables import OpCode

#: Body of each request, by opcode.
REQUEST_BODIES: dict[OpCode, type[Body]] = {
    OpCode.RESOLUTION: ResolutionRequest,
    OpCode.GET_SITEINFO: OptionalHandleBody,
    OpCode.CREATE_HANDLE: ValuesRequest,
    OpCode.DELETE_HANDLE: HandleBody,
    OpCode.ADD_VALUE: ValuesRequest,
    OpCode.REMOVE_VALUE: RemoveValueRequest,
    OpCode.MODIFY_VALUE: ValuesRequest,
    OpCode.LIST_HANDLES: HandleBody,
    OpCode.LIST_NAS: HandleBody,
    OpCode.CHALLENGE_RESPONSE: ChallengeAnswer,
    OpCode.VERIFY_RESPONSE: VerifyRequest,
    OpCode.SESSION_SETUP: SessionSetupRequest,
    OpCode.SESSION_TERMINATE: OptionalHandleBody,
    OpCode.SESSION_EXCHANGEKEY: SessionExchangeKeyRequest,
}

#: Body of each successful response, by opcode.
SUCCESS_BODIES: dict[OpCode, type[Body]] = {
    OpCode.RESOLUTION: ResolutionResponse,
    OpCode.GET_SITEINFO: SiteInfoResponse,
    OpCode.CREATE_HANDLE: OptionalHandleBody,
    OpCode.DELETE_HANDLE: EmptyBody,
    OpCode.ADD_VALUE: EmptyBody,
    OpCode.REMOVE_VALUE: EmptyBody,
    OpCode.MODIFY_VALUE: EmptyBody,
    OpCode.LIST_HANDLES: ListHandlesResponse,
    OpCode.LIST_NAS: ListHandlesResponse,
    OpCode.VERIFY_RESPONSE: VerifyResponse,
    OpCode.SESSION_SETUP: SessionSetupResponse,
    OpCode.SESSION_TERMINATE: EmptyBody,
    OpCode.SESSION_EXCHANGEKEY: EmptyBody,
}

#: Body of other responses, by response code; any code not listed carries an ``ErrorBody``.
RESPONSE_BODIES: dict[ResponseCode, type[Body]] = {
    ResponseCode.SERVICE_REFERRAL: ReferralResponse,
    ResponseCode.PREFIX_REFERRAL: ReferralResponse,
    ResponseCode.AUTHENTICATION_NEEDED: ChallengeBody,
}


def body_type(opcode: OpCode, response_code: ResponseCode) -> type[Body]:
    """The body class a message with this opcode and response code carries."""
    if response_code == ResponseCode.RESERVED:
        return REQUEST_BODIES.get(opcode, OpaqueBody)
    if response_code == ResponseCode.SUCCESS:
        return SUCCESS_BODIES.get(opcode, OpaqueBody)
    return RESPONSE_BODIES.get(response_code, ErrorBody)
