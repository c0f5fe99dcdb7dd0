"""Protocol code tables shared by every front end (RFC 3652 section 2.2.2.3).

Each table is an ``IntEnum`` that tolerates values it does not know: an unknown
code becomes a pseudo-member named ``UNKNOWN_<n>`` instead of raising, because a
peer may speak a newer revision of the protocol.
"""

from __future__ import annotations

import enum
from typing import Self


class TolerantIntEnum(enum.IntEnum):
    """An ``IntEnum`` that round-trips to text and accepts unknown values."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, int):
            return None
        pseudo = int.__new__(cls, value)
        pseudo._name_ = f"UNKNOWN_{value}"
        pseudo._value_ = value
        return pseudo

    @classmethod
    def from_text(cls, text: str) -> Self:
        """Parse a member name (``"HANDLE_NOT_FOUND"``) or a decimal value."""
        key = text.strip().upper()
        if key in cls.__members__:
            return cls.__members__[key]
        if key.startswith("UNKNOWN_"):
            key = key.removeprefix("UNKNOWN_")
        try:
            return cls(int(key))
        except ValueError:
            raise ValueError(f"unknown {cls.__name__} {text!r}") from None

    def to_text(self) -> str:
        return self.name or f"UNKNOWN_{int(self)}"


class ResponseCode(TolerantIntEnum):
    """Handle response codes (RFC 3652 section 2.2.2.3)."""

    RESERVED = 0
    SUCCESS = 1
    ERROR = 2
    SERVER_BUSY = 3
    PROTOCOL_ERROR = 4
    OPERATION_DENIED = 5
    RECUR_LIMIT_EXCEEDED = 6
    HANDLE_NOT_FOUND = 100
    HANDLE_ALREADY_EXISTS = 101
    INVALID_HANDLE = 102
    VALUES_NOT_FOUND = 200
    VALUE_ALREADY_EXISTS = 201
    VALUE_INVALID = 202
    EXPIRED_SITE_INFO = 300
    SERVER_NOT_RESP = 301
    SERVICE_REFERRAL = 302
    PREFIX_REFERRAL = 303
    NOT_AUTHORIZED = 400
    ACCESS_DENIED = 401
    AUTHENTICATION_NEEDED = 402
    AUTHENTICATION_FAILED = 403
    INVALID_CREDENTIAL = 404
    AUTHENTICATION_TIMEOUT = 405
    AUTHENTICATION_ERROR = 406
    SESSION_TIMEOUT = 500
    SESSION_FAILED = 501
    NO_SESSION_KEY = 502
    SESSION_NO_SUPPORT = 503
    SESSION_KEY_INVALID = 504
    TRYING = 900
    FORWARDED = 901
    QUEUED = 902


#: HTTP status for each response code, as the Handle.Net REST API maps them.
HTTP_STATUS: dict[ResponseCode, int] = {
    ResponseCode.SUCCESS: 200,
    ResponseCode.ERROR: 500,
    ResponseCode.SERVER_BUSY: 503,
    ResponseCode.PROTOCOL_ERROR: 400,
    ResponseCode.OPERATION_DENIED: 403,
    ResponseCode.RECUR_LIMIT_EXCEEDED: 508,
    ResponseCode.HANDLE_NOT_FOUND: 404,
    ResponseCode.HANDLE_ALREADY_EXISTS: 409,
    ResponseCode.INVALID_HANDLE: 400,
    ResponseCode.VALUES_NOT_FOUND: 400,
    ResponseCode.VALUE_ALREADY_EXISTS: 409,
    ResponseCode.VALUE_INVALID: 400,
    # Handle.Net's REST API answers "server not responsible for handle" with 400.
    ResponseCode.SERVER_NOT_RESP: 400,
    ResponseCode.SERVICE_REFERRAL: 307,
    ResponseCode.PREFIX_REFERRAL: 307,
    ResponseCode.NOT_AUTHORIZED: 403,
    ResponseCode.ACCESS_DENIED: 403,
    ResponseCode.AUTHENTICATION_NEEDED: 401,
    ResponseCode.AUTHENTICATION_FAILED: 401,
    ResponseCode.INVALID_CREDENTIAL: 401,
    ResponseCode.AUTHENTICATION_TIMEOUT: 401,
    ResponseCode.AUTHENTICATION_ERROR: 401,
}


def http_status(code: ResponseCode) -> int:
    """The HTTP status a REST front end answers with for ``code``."""
    return HTTP_STATUS.get(code, 500)
