"""What every REST route shares: reading a request and answering it.

Bodies are read only up to ``MAX_BODY_BYTES`` (``read_body``; a larger
``Content-Length`` is refused before reading), JSON is recognised by its
Content-Type as Handle.Net recognises it (``is_json``), integers are read as Java
reads them (``java_int``), HTTP Basic credentials name an ``index:handle``
(``authenticate``, which reports failures to the node's ``Authorizer``), and an
error message quotes at most ``QUOTE_LIMIT`` characters of the input it refuses
(``quoted``, ``bounded_message``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote

import orjson
from fastapi import Request, Response

from iinode.errors import (
    AuthenticationFailed,
    AuthenticationNeeded,
    InvalidCredential,
    InvalidHandle,
    RemoteProtocolError,
)
from iinode.identifiers import IndexedHandle
from iinode.node.auth import Credentials
from iinode.node.service import HandleService

#: Largest request body ``read_body`` accepts.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Characters of an offending input quoted in an error message, and of a whole message.
QUOTE_LIMIT = 64
MESSAGE_LIMIT = 4 * QUOTE_LIMIT

_JAVA_INT = re.compile(r"[+-]?[0-9]{1,10}\Z")
_INT32 = 2**31
_LONG_QUOTE = re.compile(rf"""(['"])([^'"]{{{QUOTE_LIMIT}}})[^'"]+\1""")
_JSON_TYPE = re.compile(r"application/json\s*(;.*)?\Z", re.DOTALL)


class RequestTooLarge(RemoteProtocolError):
    """A request body over the limit (answered with HTTP 413)."""

    http_status = 413


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """At most ``limit`` characters of ``text``, marked when cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def quoted(text: str) -> str:
    """``text`` as an error message quotes it: bounded, with escapes."""
    return repr(clip(text))


def bounded_message(message: str) -> str:
    """``message`` with every quoted run cut to ``QUOTE_LIMIT`` characters, and the
    whole cut to ``MESSAGE_LIMIT`` (for messages from layers that quote in full)."""
    return clip(_LONG_QUOTE.sub(_cut_quote, message), MESSAGE_LIMIT)


def _cut_quote(match: re.Match[str]) -> str:
    quote_mark = match[1]
    return f"{quote_mark}{match[2]}...{quote_mark}"


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def java_int(name: str, raw: str) -> int:
    """``raw`` as Java's ``Integer.parseInt`` reads it (a 32-bit integer), else 400."""
    if _JAVA_INT.match(raw):
        value = int(raw)
        if -_INT32 <= value < _INT32:
            return value
    raise RemoteProtocolError(f"{name}={quoted(raw)} is not a 32-bit integer")


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON, as Handle.Net's REST API accepts it."""
    return content_type is not None and bool(_JSON_TYPE.match(content_type.strip().lower()))


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused once it would exceed ``limit`` octets.

    A declared ``Content-Length`` over the limit is refused before any of the
    body is read; a body without one is read only up to the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise RemoteProtocolError(f"Content-Length {quoted(declared)} is not a number")
        if int(declared) > limit:
            raise RequestTooLarge(f"request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(f"request body is larger than {limit} bytes")
    return bytes(body)


def _credentials(request: Request) -> Credentials | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidCredential(
            f"authorization scheme {quoted(scheme)} is not supported; use Basic"
        )
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidCredential("Basic credentials are not valid base64 UTF-8") from None
    user, _, secret = text.partition(":")
    if (
        user.isascii() and user.isdecimal()
    ):  # an identity sent without percent-encoding: "300:0.NA/x:secret"
        handle, _, secret = secret.partition(":")
        user = f"{user}:{handle}"
    try:
        identity = IndexedHandle.parse(unquote(user, errors="strict"))
    except UnicodeDecodeError:
        raise InvalidCredential("user name is not valid UTF-8 once percent-decoded") from None
    except InvalidHandle as exc:
        raise InvalidCredential(
            f"user name must be index:handle ({bounded_message(exc.message)})"
        ) from None
    return Credentials(identity, secret)


async def authenticate(
    service: HandleService, request: Request, *, required: bool
) -> IndexedHandle | None:
    peer = request.client.host if request.client is not None else None
    try:
        creds = _credentials(request)
    except InvalidCredential:
        service.auth.failed("rest", "", peer)
        raise
    if creds is None:
        if required:
            raise AuthenticationNeeded(
                "this operation needs HTTP Basic authentication as index:handle"
            )
        return None
    try:
        return await service.auth.authenticate(creds, peer=peer)
    except AuthenticationFailed:
        service.auth.failed("rest", str(creds.identity), peer)
        raise
