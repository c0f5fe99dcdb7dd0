"""A response replaced by an error keeps its header identity and round-trips on the wire."""

from __future__ import annotations

from iinode.codes import ResponseCode
from iinode.proto import ErrorBody, Message, OpCode, ResolutionRequest, ResolutionResponse


def test_as_error_keeps_opcode_ids_and_version() -> None:
    request = Message(
        OpCode.RESOLUTION, ResolutionRequest("88.118.8/X"), request_id=4242, session_id=7
    )
    answer = request.reply(ResolutionResponse("88.118.8/X", ()))
    error = answer.as_error("too big", ResponseCode.SERVER_BUSY)
    decoded = Message.from_wire(error.to_wire())
    assert (decoded.opcode, decoded.request_id, decoded.session_id) == (OpCode.RESOLUTION, 4242, 7)
    assert decoded.version == answer.version
    assert decoded.response_code is ResponseCode.SERVER_BUSY
    assert isinstance(decoded.body, ErrorBody)
    assert decoded.body.message == "too big"
