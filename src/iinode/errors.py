"""The one exception tree of iinode.

::

    IinodeError
    ├── ConfigurationError          bad settings or node configuration
    ├── StorageError                the backing store failed (not bad input)
    ├── TransportError              a network peer could not be reached or timed out
    └── HandleError                 carries a Handle response code (``.code``)
        ├── LocalProtocolError      we were asked to send something invalid
        ├── RemoteProtocolError     a peer sent bytes that do not parse
        ├── HandleNotFound                  100
        ├── HandleAlreadyExists             101
        ├── InvalidHandle                   102
        ├── ValuesNotFound                  200
        ├── ValueAlreadyExists              201
        ├── ValueInvalid                    202
        ├── ServerNotResponsible            301
        ├── ServerBusy                        3
        ├── OperationDenied                   5
        ├── RecursionLimitExceeded            6
        ├── NotAuthorized                   400
        ├── AuthenticationNeeded            402
        ├── AuthenticationFailed            403
        └── InvalidCredential               404

Every ``HandleError`` knows the response code a protocol front end answers with,
so the REST API and the native protocol map errors the same way.  Errors from
third-party libraries are converted at the boundary that calls them.
"""

from __future__ import annotations

from typing import ClassVar

from iinode.codes import ResponseCode


class IinodeError(Exception):
    """Base of every error iinode raises on purpose."""


class ConfigurationError(IinodeError):
    """Settings or the node configuration are invalid."""


class StorageError(IinodeError):
    """The backing store failed for a reason other than the caller's input."""


class TransportError(IinodeError):
    """A peer could not be reached, closed the connection or timed out."""


class HandleError(IinodeError):
    """An error with a Handle response code."""

    code: ClassVar[ResponseCode] = ResponseCode.ERROR

    def __init__(self, message: str, *, handle: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.handle = handle

    @classmethod
    def for_code(cls, code: ResponseCode, message: str, handle: str | None = None) -> HandleError:
        """The most specific subclass for ``code`` (plain ``HandleError`` if none)."""
        for sub in _all_subclasses(HandleError):
            if sub.code == code and sub not in (LocalProtocolError,):
                return sub(message, handle=handle)
        err = HandleError(message, handle=handle)
        err.code = code  # type: ignore[misc]
        return err


def _all_subclasses(cls: type[HandleError]) -> list[type[HandleError]]:
    out: list[type[HandleError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


class LocalProtocolError(HandleError):
    """We were asked to encode something the protocol cannot carry."""

    code = ResponseCode.PROTOCOL_ERROR


class RemoteProtocolError(HandleError):
    """A peer sent bytes that are not a valid message."""

    code = ResponseCode.PROTOCOL_ERROR


class ServerNotResponsible(HandleError):
    """The handle's prefix is not served by this node."""

    code = ResponseCode.SERVER_NOT_RESP


class ServerBusy(HandleError):
    code = ResponseCode.SERVER_BUSY


class OperationDenied(HandleError):
    code = ResponseCode.OPERATION_DENIED


class RecursionLimitExceeded(HandleError):
    code = ResponseCode.RECUR_LIMIT_EXCEEDED


class HandleNotFound(HandleError):
    code = ResponseCode.HANDLE_NOT_FOUND


class HandleAlreadyExists(HandleError):
    code = ResponseCode.HANDLE_ALREADY_EXISTS


class InvalidHandle(HandleError):
    code = ResponseCode.INVALID_HANDLE


class ValuesNotFound(HandleError):
    code = ResponseCode.VALUES_NOT_FOUND


class ValueAlreadyExists(HandleError):
    code = ResponseCode.VALUE_ALREADY_EXISTS


class ValueInvalid(HandleError):
    code = ResponseCode.VALUE_INVALID


class NotAuthorized(HandleError):
    code = ResponseCode.NOT_AUTHORIZED


class AuthenticationNeeded(HandleError):
    code = ResponseCode.AUTHENTICATION_NEEDED


class AuthenticationFailed(HandleError):
    code = ResponseCode.AUTHENTICATION_FAILED


class InvalidCredential(HandleError):
    code = ResponseCode.INVALID_CREDENTIAL
